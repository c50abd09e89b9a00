"""build(): layout, budget, reasoning replay, tool-call integrity, prefix stability, cut point."""

from __future__ import annotations

import itertools
import json
import os
import random

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contextkit.compaction import CompactionPolicy
from contextkit.errors import CompactionWarning, ContextOverflowError, ValidationError
from contextkit.tokens import count_messages, kept_reasoning
from contextkit.tokens.template import ReasoningReplay

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
]


def text(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def call(i: str, name: str = "lookup") -> dict:
    return {"id": i, "type": "function", "function": {"name": name, "arguments": '{"q":1}'}}


def dumps(messages) -> str:
    return json.dumps(messages, ensure_ascii=False)


def test_layout_order_and_replay_form(store):
    t = store.thread("t", model="deepseek-v4-flash", system="Be brief.")
    t.append({"role": "user", "content": "facts: the sky is green"}, pinned=True)
    t.append({"role": "user", "content": "hi"})
    t.append({"role": "assistant", "content": "hello", "reasoning_content": "greeting"})
    t.append({"role": "user", "content": "weather?"})
    t.append(
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "use tool",
            "tool_calls": [call("c1")],
        }
    )
    t.append({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    t.append({"role": "assistant", "content": "Sunny.", "reasoning_content": "answer"})
    out = t.build(max_tokens=100, extra="time: 12:00")
    assert [m["role"] for m in out] == [
        "system",
        "user",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "system",
    ]
    assert out[0] == {"role": "system", "content": "Be brief."}
    assert out[1]["content"] == "facts: the sky is green"
    assert "reasoning_content" not in out[3]  # turn without tool calls: stripped
    assert out[5]["reasoning_content"] == "use tool"  # tool-call turn: kept verbatim
    assert out[7]["reasoning_content"] == "answer"
    assert out[-1] == {"role": "system", "content": "time: 12:00"}
    assert list(out[5]) == ["role", "content", "reasoning_content", "tool_calls"]
    # every stored message is still there, reasoning included
    assert [m.reasoning_content for m in t.messages()][2] == "greeting"


def test_prompt_tokens_are_exact(store):
    t = store.thread("t", model="deepseek-v4-pro", system="System prompt here.")
    t.append({"role": "user", "content": "  leading spaces and 数字 123"})
    t.append({"role": "assistant", "content": "ok", "reasoning_content": "r"})
    t.append({"role": "user", "content": "call it"})
    t.append(
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "x",
            "tool_calls": [call("a"), call("b", "other")],
        }
    )
    t.append({"role": "tool", "tool_call_id": "b", "content": "B"})
    t.append({"role": "tool", "tool_call_id": "a", "content": "A"})
    for thinking in (True, False):
        p = t.prepare(max_tokens=64, thinking=thinking, extra="now")
        assert p.prompt_tokens == count_messages(p.to_list(), "deepseek-v4-pro", thinking=thinking)
        if not thinking:
            assert all("reasoning_content" not in m for m in p.to_list())


def test_deterministic_serialization(store):
    t = store.thread("t", model="deepseek-v4-flash", system="s")
    t.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x.test/i.png", "detail": "low"},
                },
            ],
        }
    )
    t.append({"role": "assistant", "content": "b", "name": "bot"})
    first = dumps(t.build(max_tokens=10))
    again = store.thread("t")
    assert dumps(again.build(max_tokens=10)) == first
    assert '"image_url": {"url": "https://x.test/i.png", "detail": "low"}' in first


def test_flip_when_a_turn_later_makes_tool_calls(store):
    t = store.thread("t", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "do it"})
    t.append({"role": "assistant", "content": "thinking aloud", "reasoning_content": "plan"})
    before = t.build(max_tokens=10)
    assert "reasoning_content" not in before[1]
    t.append(
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "call",
            "tool_calls": [call("k")],
        }
    )
    t.append({"role": "tool", "tool_call_id": "k", "content": "done"})
    after = t.prepare(max_tokens=10)
    assert after.to_list()[1]["reasoning_content"] == "plan"
    assert after.prompt_tokens == count_messages(after.to_list())
    assert t.info().total_tokens == sum(m.token_count for m in t.messages())


def test_unanswered_tool_call_is_named(store):
    t = store.thread("t", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "go"})
    t.append({"role": "assistant", "content": None, "tool_calls": [call("c-1"), call("c-2")]})
    t.append({"role": "tool", "tool_call_id": "c-1", "content": "ok"})
    with pytest.raises(ValidationError, match="'c-2'"):
        t.build(max_tokens=10)
    t.append({"role": "tool", "tool_call_id": "c-2", "content": "ok"})
    assert len(t.build(max_tokens=10)) == 4


def test_overflow_carries_numbers(store):
    t = store.thread("t", model="deepseek-v4-flash", max_context_tokens=300)
    t.append({"role": "user", "content": text(400)})
    with pytest.raises(ContextOverflowError) as err:
        t.build(max_tokens=50)
    assert err.value.budget == 250 and err.value.needed > 250
    with pytest.raises(ContextOverflowError):
        t.build(max_tokens=300)
    with pytest.raises(ValidationError):
        t.build(max_tokens=0)


def test_cut_moves_in_large_steps_and_is_stored(store):
    t = store.thread("t", model="deepseek-v4-flash", system="sys", max_context_tokens=2_000)
    prompts, moves = [], 0
    for i in range(60):
        t.append({"role": "user", "content": text(40, i)})
        p = t.prepare(max_tokens=200)
        assert p.prompt_tokens + 200 <= 2_000
        if prompts and not p.moved:
            prev = prompts[-1].to_list()
            assert p.to_list()[: len(prev)] == prev
            assert dumps(p.to_list()).startswith(dumps(prev)[:-1])
        moves += p.moved
        prompts.append(p)
        t.append({"role": "assistant", "content": text(30, 1000 + i)})
    assert 2 <= moves <= 8, moves
    # the cut point is stored: a fresh handle builds the same prompt
    assert store.thread("t").build(max_tokens=200)[:3] == t.build(max_tokens=200)[:3]
    assert store.thread("t").prepare(max_tokens=200).window_start > 1


def test_agent_loop_cuts_between_tool_groups(store):
    t = store.thread("agent", model="deepseek-v4-flash", max_context_tokens=3_000)
    t.append({"role": "user", "content": "research the topic"})
    for i in range(40):
        t.append(
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": text(10, i),
                "tool_calls": [call(f"s{i}")],
            }
        )
        t.append({"role": "tool", "tool_call_id": f"s{i}", "content": text(40, i)})
        out = t.build(max_tokens=300)
        # the turn's task stays first after any summary (invariant 7), then whole groups
        flow = [m for m in out if m["role"] != "system"]
        assert flow[0] == {"role": "user", "content": "research the topic"}
        assert flow[1]["role"] == "assistant"
        ids = {c["id"] for m in out for c in m.get("tool_calls", [])}
        assert all(m["tool_call_id"] in ids for m in out if m["role"] == "tool")
        assert all("reasoning_content" in m for m in out if m["role"] == "assistant")


_THREAD_IDS = itertools.count()


def _turns(flow):
    """Stored messages split at user messages (the messages before the first form one)."""
    turns: list[list] = [[]]
    for m in flow:
        if m.role == "user" and turns[-1]:
            turns.append([])
        turns[-1].append(m)
    return turns


def _png_url(width: int, height: int) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (width % 256, 90, height % 256)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _smallest_prompt(t, thinking: bool, extra_forms: list[dict]) -> list[dict]:
    """The least any correct window can send, judged from the stored history alone: the
    system prompt, every pinned message, the latest summary, the current turn's user
    message, the messages from the last point a window may start at (an unpinned message
    that is not a tool result: a tool result goes with its call) to the end, and `extra`;
    each in the form the provider needs (reasoning on tool-call turns in thinking mode, a
    transcript for a tool turn without its reasoning)."""
    from contextkit.formats.transcript import transcribe_turns
    from contextkit.summarizers import summary_message

    stored = list(t.messages())
    flow = [m for m in stored if not m.pinned]
    rule = ReasoningReplay.TOOL_TURNS
    flags = kept_reasoning([m.to_openai() for m in flow], thinking=True, policy=rule)
    kept = dict(zip((m.seq for m in flow), flags, strict=True))
    start = max((i for i, m in enumerate(flow) if m.role != "tool"), default=len(flow))
    tail = flow[start:]
    users = [m for m in flow[: start + 1] if m.role == "user"]
    if users and users[-1] not in tail:
        tail.insert(0, users[-1])
    forms = [{"role": "system", "content": "You help."}]
    forms += [m.to_openai(reasoning=False) for m in stored if m.pinned]
    summaries = t.summaries()
    if summaries:
        forms.append(summary_message(summaries[-1].text))
    fixed = len(forms)
    forms += [m.to_openai(reasoning=kept[m.seq] and thinking) for m in tail]
    if thinking:
        forms = transcribe_turns(forms, fixed)
    return forms + extra_forms


actions = st.lists(
    st.one_of(
        st.tuples(st.just("user"), st.one_of(st.integers(1, 120), st.integers(300, 900))),
        st.tuples(st.just("assistant"), st.integers(1, 120), st.booleans()),
        st.tuples(st.just("tools"), st.integers(1, 3), st.integers(1, 80), st.booleans()),
        st.tuples(st.just("pin"), st.integers(1, 30)),
        st.tuples(st.just("image"), st.integers(32, 700), st.integers(32, 700)),
        st.tuples(
            st.just("build"),
            st.one_of(st.integers(1, 300), st.integers(1_000, 1_450)),  # max_tokens
            st.booleans(),  # thinking
            st.sampled_from([None, "time: 12:00", "retrieved: " + text(40, 7)]),  # extra
            st.one_of(st.none(), st.integers(-40, 60)),  # record a reply: reported - counted
        ),
    ),
    min_size=5,
    max_size=60,
)


@pytest.mark.filterwarnings("ignore::contextkit.errors.CompactionWarning")
@settings(
    max_examples=int(os.environ.get("CONTEXTKIT_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(actions=actions, seed=st.integers(0, 10**6), summarize=st.booleans())
def test_property_random_threads(sqlite_store, actions, seed, summarize):
    """Random histories (chat, tool calls with and without reasoning, pins, images) built
    with random max_tokens, thinking on and off, `extra`, and replies recorded with usage
    that differs from the count (so calibration is learned, both signs). Every prompt:
    within the budget with the learned correction, counted exactly, the newest message in
    it, laid out system, pinned, summary, window, extra; tool groups whole; reasoning where
    the rule wants it; prefix-stable between moves. An overflow only when even the smallest
    prompt the history allows, counted independently, cannot fit."""
    from contextkit.summarizers import SUMMARY_HEADER

    budget = 1_500
    t = sqlite_store.thread(
        f"p{next(_THREAD_IDS)}",
        model="deepseek-v4-flash",
        system="You help.",
        max_context_tokens=budget,
    )
    n = 0
    last = None
    pins_since = 0
    turn_stripped = turn_calls = turn_bare = flipped = False
    for action in actions:
        n += 1
        kind = action[0]
        if kind in ("user", "image"):
            if kind == "user":
                t.append({"role": "user", "content": text(action[1], n)})
            else:
                part = {"type": "image_url", "image_url": {"url": _png_url(*action[1:])}}
                t.append({"role": "user", "content": [{"type": "text", "text": "see"}, part]})
            turn_stripped = turn_calls = turn_bare = False
        elif kind == "assistant":
            r = text(5, n) if action[2] else None
            turn_stripped = turn_stripped or (action[2] and not turn_calls)
            # a tool turn that gains a message without reasoning goes as text from now on
            was_text = turn_calls and turn_bare
            turn_bare = turn_bare or not action[2]
            flipped = flipped or (turn_calls and turn_bare and not was_text)
            t.append({"role": "assistant", "content": text(action[1], n), "reasoning_content": r})
        elif kind == "tools":
            # a turn that becomes a tool-call turn now replays its earlier reasoning, or
            # goes as text if one of its messages has none
            flipped = flipped or (turn_stripped and not turn_calls)
            was_text = turn_calls and turn_bare
            turn_calls = True
            turn_bare = turn_bare or not action[3]
            flipped = flipped or (turn_bare and not was_text)
            ids = [f"c{n}-{k}" for k in range(action[1])]
            r = text(5, n) if action[3] else None
            t.append(
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": r,
                    "tool_calls": [call(i) for i in ids],
                }
            )
            for i in ids:
                t.append({"role": "tool", "tool_call_id": i, "content": text(action[2], n)})
        elif kind == "pin":
            t.append({"role": "user", "content": text(action[1], n)}, pinned=True)
            pins_since += 1
        else:
            _, max_tokens, thinking, extra, reported = action
            extra_forms = [] if extra is None else [{"role": "system", "content": extra}]
            try:
                p = t.prepare(
                    max_tokens=max_tokens,
                    thinking=thinking,
                    extra=extra,
                    compaction=CompactionPolicy(enabled=summarize),
                )
            except ContextOverflowError as err:
                assert err.needed > err.budget == budget - max_tokens
                # (f) only when even the smallest prompt the history allows cannot fit, with
                # the largest correction learned for any structure
                least = _smallest_prompt(t, thinking, extra_forms)
                smallest = count_messages(least, thinking=thinking)
                learned = sqlite_store.calibration("deepseek-v4-flash").as_dict()
                headroom = max([0, *learned.values()])
                assert smallest + headroom > budget - max_tokens, (smallest, headroom, err)
                event("overflow")
                continue
            out = p.to_list()
            stored = {m.seq: m for m in t.messages()}
            # (a) budget, with the correction learned from the recorded usage
            correction = sqlite_store.calibration("deepseek-v4-flash").correction(p.structure)
            event(f"correction {'>' if correction > 0 else '<' if correction < 0 else '='} 0")
            event(f"sections {'+'.join(map(str, map(bool, p.sections)))}")
            assert p.calibrated_tokens == p.prompt_tokens + max(correction, 0)
            assert p.calibrated_tokens + max_tokens <= budget
            assert p.prompt_tokens == count_messages(out, thinking=thinking)
            # (b) the newest message is in the prompt
            assert not stored or max(stored) in p.seqs
            # (c) layout: system, pinned (in seq order), summary, window (in seq order), extra
            n_sys, n_pin, n_sum, n_live, n_extra = p.sections
            assert (n_sys, len(out)) == (1, sum(p.sections))
            assert out[0] == {"role": "system", "content": "You help."}
            pinned = [seq for seq, m in stored.items() if m.pinned]
            assert list(p.seqs[1 : 1 + n_pin]) == pinned
            if n_sum:
                assert p.seqs[1 + n_pin] is None
                assert out[1 + n_pin]["content"].startswith(SUMMARY_HEADER)
            live = p.seqs[1 + n_pin + n_sum : 1 + n_pin + n_sum + n_live]
            assert list(live) == sorted(live) and not any(stored[s].pinned for s in live)
            assert out[len(out) - n_extra :] == extra_forms
            # (d) tool-call integrity
            seen: dict[str, int] = {}
            for m in out:
                for c in m.get("tool_calls", []):
                    seen[c["id"]] = 0
                if m["role"] == "tool":
                    assert m["tool_call_id"] in seen
                    seen[m["tool_call_id"]] += 1
            assert all(v == 1 for v in seen.values())
            # (e) reasoning exactly on tool-call turns (judged on the whole stored history),
            # and only in thinking mode
            flow = [m for m in stored.values() if not m.pinned]
            kept = kept_reasoning(
                [m.to_openai() for m in flow], thinking=True, policy=ReasoningReplay.TOOL_TURNS
            )
            expect = {m.seq: k for m, k in zip(flow, kept, strict=True)}
            # a tool turn with a message without reasoning (of those sent) goes as text in
            # thinking mode: its calls as assistant text, its results as user text
            as_text: set[int | None] = set()
            sent = [stored[seq] for seq in p.seqs if seq is not None and not stored[seq].pinned]
            for turn in _turns(sent):
                bare = [m for m in turn if m.role == "assistant" and m.reasoning_content is None]
                if thinking and bare and any(m.tool_calls for m in turn):
                    as_text |= {m.seq for m in turn}
            for seq, m in zip(p.seqs, out, strict=True):
                if seq in as_text:
                    assert "tool_calls" not in m and "reasoning_content" not in m, (seq, m)
                    assert m["role"] != "tool", (seq, m)
                elif m["role"] == "assistant" and seq in expect:
                    assert ("reasoning_content" in m) == (expect[seq] and thinking), (seq, m)
            # (g) prefix stability between moves (same mode; extra is the volatile tail)
            body = out[: len(out) - n_extra]
            extends = last is not None and last[0] == thinking
            if extends and not p.moved and pins_since == 0 and not flipped:
                assert body[: len(last[1])] == last[1]
            last, pins_since, flipped = (thinking, body), 0, False
            if reported is not None:  # the reply, with usage that differs from the count
                reply = {"role": "assistant", "content": text(8, n), "reasoning_content": "r"}
                usage = max(p.prompt_tokens + reported, 0)
                t.record(_reply(p, reply, prompt_tokens=usage), prompt=p)
                turn_stripped = turn_stripped or not turn_calls


def _reply(prompt, message: dict, prompt_tokens: int | None = None) -> dict:
    reported = prompt.prompt_tokens if prompt_tokens is None else prompt_tokens
    return {
        "id": f"r-{prompt.call_key}",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {
            "prompt_tokens": reported,
            "completion_tokens": 5,
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": reported,
        },
    }


def test_a_turn_that_becomes_a_tool_turn_is_a_named_prefix_break(store):
    """The one change a stored message's replay form ever gets: an earlier assistant message
    of a turn gains its reasoning when a later message of that turn makes a tool call. The
    prompt after it does not extend the previous one, and says so (`reasoning`), once."""
    t = store.thread("flip", model="deepseek-v4-flash", system="s")
    t.append({"role": "user", "content": "do it"})
    first = t.prepare(max_tokens=50)
    said = {"role": "assistant", "content": "Let me see.", "reasoning_content": "plan"}
    t.record(_reply(first, said), prompt=first)
    second = t.prepare(max_tokens=50)
    assert second.prefix_break is None and "reasoning_content" not in second.to_list()[2]
    t.record(
        _reply(
            second,
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "call",
                "tool_calls": [call("k")],
            },
        ),
        prompt=second,
    )
    t.append({"role": "tool", "tool_call_id": "k", "content": "done"})
    third = t.prepare(max_tokens=50)
    assert third.to_list()[2]["reasoning_content"] == "plan"  # gained: the prefix changed
    assert third.to_list()[: len(second.messages)] != second.to_list()
    assert third.prefix_break == "reasoning"
    assert t.prepare(max_tokens=50, thinking=False).prefix_break == "mode"
    t.record(
        _reply(third, {"role": "assistant", "content": "Done.", "reasoning_content": "ok"}),
        prompt=third,
    )
    fourth = t.prepare(max_tokens=50)
    assert fourth.prefix_break is None
    assert fourth.to_list()[: len(third.messages)] == third.to_list()
    assert t.stats().prefix_breaks == {"reasoning": 1}


def test_a_tool_turn_that_goes_as_a_transcript_from_now_on_is_a_named_prefix_break(store):
    t = store.thread("text", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "look it up"})
    t.append(
        {"role": "assistant", "content": None, "reasoning_content": "r", "tool_calls": [call("a")]}
    )
    t.append({"role": "tool", "tool_call_id": "a", "content": "found"})
    first = t.prepare(max_tokens=50)
    assert first.to_list()[1]["tool_calls"]  # native
    t.record(_reply(first, {"role": "assistant", "content": "Found it."}), prompt=first)
    t.append({"role": "user", "content": "thanks"})
    second = t.prepare(max_tokens=50)
    assert "tool_calls" not in second.to_list()[1]  # the turn goes as text now
    assert second.prefix_break == "reasoning"
    assert t.prepare(max_tokens=50, thinking=False).prefix_break == "mode"


def test_a_learned_correction_that_tips_the_prompt_over_moves_the_cut(store):
    """The count with the learned correction is over the budget while the stored weights
    say it fits: the cut still moves (to the newest turn) instead of a ContextOverflowError,
    which is only for a newest turn that cannot fit."""

    def fill(thread_id):
        t = store.thread(thread_id, model="deepseek-v4-flash", max_context_tokens=1_500)
        t.append({"role": "user", "content": text(767, 1)})
        t.append({"role": "user", "content": text(56, 2)})
        t.append({"role": "user", "content": text(21, 3)}, pinned=True)
        return t

    twin = fill("twin")
    seen = twin.prepare(max_tokens=273, compaction=CompactionPolicy(enabled=False))
    assert seen.seqs == (3, 1, 2)
    over = 1_500 - 273 - seen.prompt_tokens + 1  # the provider counts one token too many
    reply = {"role": "assistant", "content": "ok", "reasoning_content": "r"}
    twin.record(_reply(seen, reply, prompt_tokens=seen.prompt_tokens + over), prompt=seen)
    t = fill("t")
    p = t.prepare(max_tokens=273, compaction=CompactionPolicy(enabled=False))
    assert p.structure == seen.structure and p.calibrated_tokens + 273 <= 1_500
    assert p.seqs == (3, 2) and p.moved


def test_a_window_that_starts_inside_a_finished_turn_keeps_its_user_message(store):
    """A cut inside a long turn keeps that turn's user message (invariant 7); when the next
    turn begins, it stays until the cut moves again, so the next prompt still extends the
    previous one (prefix stability) instead of losing its second message unannounced."""
    t = store.thread("long", model="deepseek-v4-flash", max_context_tokens=1_500)
    t.append({"role": "user", "content": text(560, 1)})
    t.append({"role": "assistant", "content": text(400, 2)})
    t.append({"role": "assistant", "content": text(33, 3)})
    t.append({"role": "assistant", "content": None, "tool_calls": [call("a"), call("b")]})
    t.append({"role": "tool", "tool_call_id": "a", "content": text(68, 4)})
    t.append({"role": "tool", "tool_call_id": "b", "content": text(68, 5)})
    off = CompactionPolicy(enabled=False)
    with pytest.warns(CompactionWarning, match="messages 2..3 of the current turn"):
        first = t.prepare(max_tokens=1, thinking=False, compaction=off)
    assert first.seqs == (1, 4, 5, 6) and first.moved  # the task, then the tool group
    t.append({"role": "user", "content": "thanks"})
    second = t.prepare(max_tokens=1, thinking=False, compaction=off)
    assert not second.moved and second.prefix_break is None
    assert second.to_list()[: len(first.messages)] == first.to_list()
    assert second.seqs == (1, 4, 5, 6, 7)


def test_a_moved_cut_is_stored_and_moves_again_only_many_turns_later(store):
    """Without compaction the cut moves when the prompt would not fit, in one step down to
    the low-water mark, and is stored: the builds after a move start where it moved (their
    prompts extend each other) until the window fills up again."""
    import sqlalchemy as sa

    off = CompactionPolicy(enabled=False)
    t = store.thread("cut", model="deepseek-v4-flash", system="sys", max_context_tokens=2_000)
    moves, last = [], None
    for i in range(60):
        t.append({"role": "user", "content": text(40, i)})
        p = t.prepare(max_tokens=200, compaction=off)
        with store.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT window_start FROM threads")).scalar_one()
        assert stored == p.window_start  # the cut point the prompt used is the stored one
        if p.moved:
            moves.append(i)
            assert p.prefix_break == "window" or last is None
            # the live part drops to about the low-water mark, not just below the budget
            assert p.prompt_tokens <= 0.6 * 1_800 + 150, p.prompt_tokens
        elif last is not None:
            assert p.to_list()[: len(last)] == last
        last = p.to_list()
        t.record(_reply(p, {"role": "assistant", "content": text(30, 1000 + i)}), prompt=p)
    assert 2 <= len(moves) <= 10, moves
    assert min(b - a for a, b in itertools.pairwise(moves)) >= 4, moves  # rare, large steps
