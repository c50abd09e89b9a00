"""Counts and renderings checked against DeepSeek's own V4 chat encoder, not against our code.

`data/deepseek_v4_encoder.jsonl.gz` holds 816 requests rendered by `encoding/encoding_dsv4.py`
of the DeepSeek-V4-Flash/-Pro repositories (the launch encoder) and tokenized with the V4
tokenizer (HF `tokenizers`): plain chats, thinking, reasoning on earlier turns, agent loops,
declared tools, effort, edge content, developer messages, structural seams.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

import contextkit
from contextkit.models import get_model
from contextkit.tokens.deepseek_v4 import DeepSeekV4Template

GOLDEN = Path(__file__).parent / "data" / "deepseek_v4_encoder.jsonl.gz"
with gzip.open(GOLDEN, "rt", encoding="utf-8") as _lines:
    RECORDS: list[dict[str, Any]] = [json.loads(line) for line in _lines]
LAUNCH = attrs.evolve(get_model("deepseek-v4-flash"), template=DeepSeekV4Template("launch"))
"""The encoder generation the golden data was rendered with."""


def options(record: dict[str, Any]) -> dict[str, Any]:
    request = record["request"]
    return {
        "tools": request["tools"],
        "thinking": request["thinking"],
        "reasoning_effort": request["reasoning_effort"],
        "model": LAUNCH,
    }


def test_the_golden_set_is_complete() -> None:
    assert len(RECORDS) == 816
    assert Counter(r["category"] for r in RECORDS) == {
        "a": 150, "b": 150, "c": 100, "d": 100, "g": 81, "e": 80, "f": 65, "i": 50, "h": 40,
    }  # fmt: skip


def test_every_golden_record_renders_and_counts_exactly() -> None:
    render_misses, count_misses = [], []
    for record in RECORDS:
        messages = record["request"]["messages"]
        if contextkit.render_prompt(messages, **options(record)) != record["prompt"]:
            render_misses.append((record["id"], record["case"]))
        if contextkit.count_messages(messages, **options(record)) != record["prompt_tokens"]:
            count_misses.append((record["id"], record["case"]))
    assert render_misses == [] and count_misses == [], (render_misses[:10], count_misses[:10])


def test_the_ga_generation_differs_only_by_its_effort_preamble() -> None:
    for record in RECORDS:
        messages, opts = record["request"]["messages"], options(record)
        ga = contextkit.render_prompt(messages, **{**opts, "model": "deepseek-v4-flash"})
        if not opts["thinking"] or opts["reasoning_effort"] == "max":
            # GA's `max` has a text of its own; without thinking there is no preamble at all
            assert opts["thinking"] or ga == record["prompt"]
            continue
        # launch: no preamble below `max`; GA: `high` (the API's default) adds one
        preamble = ga[: len(ga) - len(record["prompt"]) + len("<｜begin▁of▁sentence｜>")]
        assert preamble.startswith("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum")
        assert ga == preamble + record["prompt"][len("<｜begin▁of▁sentence｜>") :]


def thread_request(record: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]] | None:
    """The golden request as a thread holds it: a first system message becomes the thread's
    system prompt; requests a thread cannot hold (a later system or developer message, an
    assistant message first, a pending tool call) are left out."""
    messages = [dict(m) for m in record["request"]["messages"]]
    system = None
    if messages and messages[0]["role"] == "system":
        system = messages.pop(0)["content"] or None
    if not messages or messages[0]["role"] != "user":
        return None
    if any(m["role"] in ("system", "developer") for m in messages):
        return None
    return system, messages


@pytest.mark.parametrize("category", ["a", "b", "c", "d", "e", "f", "g", "h", "i"])
def test_prepare_reports_the_encoders_count_for_what_it_sends(
    store: contextkit.Store, category: str
) -> None:
    """A thread built from a golden request predicts the golden count whenever it sends the
    golden messages; where it sends something else (invariant 4 strips reasoning from turns
    without tool calls), the count is the encoder's for what it sends."""
    contextkit.register_model(attrs.evolve(LAUNCH, name="v4-launch-golden"), replace=True)
    same = other = 0
    for record in RECORDS:
        if record["category"] != category:
            continue
        held = thread_request(record)
        if held is None:
            continue
        system, messages = held
        thread = store.thread(
            f"golden-{record['id']}", model="v4-launch-golden", system=system,
            max_context_tokens=1_000_000,
        )  # fmt: skip
        try:
            thread.extend(messages)
        except contextkit.ValidationError:
            continue  # e.g. a result for a call the request never made
        request = record["request"]
        prompt = thread.prepare(
            max_tokens=1_000,
            tools=request["tools"],
            thinking=request["thinking"],
            reasoning_effort=request["reasoning_effort"],
        )
        sent = [{k: v for k, v in m.items() if k != "name"} for m in prompt.to_list()]
        golden = [
            {k: v for k, v in m.items() if k != "name" and not (k == "content" and v is None)}
            for m in request["messages"]
        ]
        sent_cmp = [
            {k: v for k, v in m.items() if not (k == "content" and v is None)} for m in sent
        ]
        if sent_cmp == golden:
            assert prompt.prompt_tokens == record["prompt_tokens"], record["id"]
            same += 1
        else:
            assert prompt.prompt_tokens == contextkit.count_messages(sent, **options(record))
            other += 1
    print(f"category {category}: {same} sent as the golden request, {other} otherwise")
    # c carries reasoning on earlier turns without tool calls: a thread never sends that
    assert (same > 0) if category != "c" else (other > 0), (same, other)
