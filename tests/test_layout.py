"""Window assembly and compaction planning as pure functions: no database in these tests.

The budget decisions (`assemble`, `cut_threshold`, `fixed_weight`, `keep_threshold`,
`chunk_end`) and the layout are computed from values built here; the counts they report are
checked against a full render of the same messages (`count_messages`), a different code path
from the per-message accounting the window sums.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

import contextkit
import contextkit.counting
from contextkit import accounting
from contextkit.compaction import chunk_end, keep_threshold
from contextkit.db.threads import ThreadState
from contextkit.models import get_model
from contextkit.policy import MAX_FOLD, CompactionPolicy
from contextkit.summarizers import Summary
from contextkit.types import Message
from contextkit.window import (
    Request,
    Snapshot,
    assemble,
    cut_threshold,
    fixed_weight,
    layout,
)

SPEC = get_model("deepseek-v4-flash")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def state(**changes: Any) -> ThreadState:
    values: dict[str, Any] = {
        "pk": 1,
        "id": "t",
        "owner": "",
        "model": SPEC.name,
        "system": "You are terse.",
        "max_context_tokens": 10_000,
        "metadata": {},
        "last_seq": 0,
        "total_tokens": 0,
        "created_at": NOW,
        "updated_at": NOW,
        "window_start": 1,
        "cum_weight": 0,
        "turn_seq": 0,
        "turn_tool_calls": False,
        "pending_calls": 0,
        "call_count": 0,
        "summary_n": 0,
    }
    values.update(changes)
    return ThreadState(**values)


def stored(*raw: dict[str, Any]) -> list[tuple[Message, bool, str | None]]:
    """Messages with the bookkeeping an append gives them, computed without a database."""
    turn = accounting.TurnState()
    out = []
    for seq, message in enumerate(raw, 1):
        parsed = Message.parse(message)
        entry = accounting.account(parsed, SPEC, turn, seq)
        out.append(
            (
                attrs.evolve(parsed, seq=seq, token_count=entry.token_count),
                entry.reasoning_kept,
                entry.lead,
            )
        )
    return out


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TURNS = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "Look it up.", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
    {"role": "assistant", "content": "Sunny, 21 C.", "reasoning_content": "Answer."},
    {"role": "user", "content": "Thanks. And tomorrow?"},
]


def request(max_tokens: int = 500, **options: Any) -> Request:
    return Request.create(
        SPEC,
        max_tokens,
        options.get("extra"),
        options.get("tools"),
        options.get("thinking"),
        options.get("reasoning_effort"),
        0.6,
    )


def snapshot(live: list[Any], *, summary: Summary | None = None, **changes: Any) -> Snapshot:
    thread = state(last_seq=len(live), **changes)
    return Snapshot(thread, (), tuple(live), 1, False, changes.pop("correction", 0), summary, 0)


def test_layout_order_is_system_pinned_summary_live_extra() -> None:
    live = stored(*TURNS)
    pinned = stored({"role": "user", "content": "Always answer in French."})
    summary = Summary(
        n=1, from_seq=1, upto_seq=3, text="- User: lives in Paris", token_count=12,
        summarizer="extractive", model=None, cost_usd=0.0, created_at=NOW,
    )  # fmt: skip
    snap = Snapshot(state(last_seq=9), tuple(pinned), tuple(live), 4, False, 0, summary, 0)
    prompt, _ = assemble(snap, request(extra="Now: Tuesday"))
    assert prompt is not None
    roles = [m["role"] for m in prompt.messages]
    assert roles == ["system", "user", "system", *(m["role"] for m in TURNS), "system"]
    assert prompt.messages[0]["content"] == "You are terse."
    assert prompt.messages[2]["content"].endswith("lives in Paris")
    assert prompt.messages[-1]["content"] == "Now: Tuesday"
    assert prompt.sections == (1, 1, 1, len(TURNS), 1)
    assert prompt.seqs == (None, 1, None, 1, 2, 3, 4, 5, None)


@pytest.mark.parametrize("thinking", [True, False])
def test_assembled_count_equals_a_full_render(thinking: bool) -> None:
    snap = snapshot(stored(*TURNS))
    prompt, calibrated = assemble(snap, request(thinking=thinking))
    assert prompt is not None
    full = contextkit.count_messages(list(prompt.messages), model=SPEC.name, thinking=thinking)
    assert prompt.prompt_tokens == full
    assert calibrated == full


def test_reasoning_is_sent_only_on_the_tool_call_turn() -> None:
    prompt, _ = assemble(snapshot(stored(*TURNS)), request(thinking=True))
    assert prompt is not None
    sent = {i: "reasoning_content" in m for i, m in enumerate(prompt.messages)}
    assert sent[2] and sent[4]  # both assistant messages of the turn that called a tool
    plain = stored({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello",
                   "reasoning_content": "greet"}, {"role": "user", "content": "bye"})  # fmt: skip
    prompt, _ = assemble(snapshot(plain), request(thinking=True))
    assert prompt is not None
    assert "reasoning_content" not in prompt.messages[2]


def test_the_budget_is_exact_to_the_token() -> None:
    live = stored(*TURNS)
    prompt, needed = assemble(snapshot(live), request(max_tokens=500))
    assert prompt is not None
    exact = needed + 500
    fits, _ = assemble(snapshot(live, max_context_tokens=exact), request(max_tokens=500))
    assert fits is not None and fits.budget == needed
    over, again = assemble(snapshot(live, max_context_tokens=exact - 1), request(max_tokens=500))
    assert over is None and again == needed


def test_a_positive_calibration_counts_against_the_budget_a_negative_one_does_not() -> None:
    live = stored(*TURNS)
    base, needed = assemble(snapshot(live), request())
    assert base is not None
    raised = Snapshot(state(last_seq=5), (), tuple(live), 1, False, 7, None, 0)
    prompt, calibrated = assemble(raised, request())
    assert prompt is not None
    assert (prompt.prompt_tokens, calibrated) == (needed, needed + 7)
    lowered = Snapshot(state(last_seq=5), (), tuple(live), 1, False, -50, None, 0)
    prompt, calibrated = assemble(lowered, request())
    assert prompt is not None and calibrated == needed
    tight = Snapshot(state(last_seq=5, max_context_tokens=needed + 500 + 6), (), tuple(live),
                     1, False, 7, None, 0)  # fmt: skip
    assert assemble(tight, request())[0] is None


def test_reasoning_sent_before_the_last_user_message_costs_nothing_without_tools() -> None:
    live = stored(*TURNS)  # the tool turn's reasoning is sent (the API requires it) ...
    forms, _ = layout(snapshot(live), thinking=True)
    assert "reasoning_content" in forms[2] and "reasoning_content" in forms[4]
    bare = [{k: v for k, v in f.items() if k != "reasoning_content"} for f in forms]
    prompt, _ = assemble(snapshot(live), request(thinking=True))
    assert prompt is not None
    # ... but DeepSeek's encoder drops reasoning before the last user message, so it is free
    assert prompt.prompt_tokens == contextkit.count_messages(bare, model=SPEC.name, thinking=True)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools, _ = assemble(snapshot(live), request(thinking=True, tools=tools))
    assert with_tools is not None
    # declared tools switch dropping off: every assistant message renders its reasoning
    assert with_tools.prompt_tokens > contextkit.count_messages(
        bare, model=SPEC.name, thinking=True, tools=tools
    )


def test_fixed_weight_and_cut_threshold() -> None:
    pinned = stored({"role": "user", "content": "Always answer in French."})
    req = request(extra="Now: Tuesday")
    extra_weight = req.extra_weight
    fixed = fixed_weight(state(system=None), pinned, None, req, extra_weight)
    assert fixed == extra_weight + (pinned[0][0].token_count or 0) + accounting.PAD
    with_system = fixed_weight(state(), pinned, None, req, extra_weight)
    assert with_system > fixed
    assert cut_threshold(10_000, 4_000, 0.5, 500) == 10_000 - 1_500
    assert cut_threshold(10_000, 4_000, 0.5, 3_000) == 10_000  # fixed part beyond low water


def test_compaction_keeps_the_recent_share_and_folds_four_budgets_a_chunk() -> None:
    policy = CompactionPolicy(keep_recent=0.25)
    thread = state(max_context_tokens=10_000, cum_weight=50_000)
    assert keep_threshold(thread, policy, 2_000) == 50_000 - 2_000
    assert chunk_end(0, 8_000) == MAX_FOLD * 8_000 == 32_000
    assert chunk_end(20_000, 8_000) == 52_000
