"""build(): layout, budget, reasoning replay, tool-call integrity, prefix stability, cut point."""

from __future__ import annotations

import itertools
import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextkit.compaction import CompactionPolicy
from contextkit.errors import ContextOverflowError, ValidationError
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


actions = st.lists(
    st.one_of(
        st.tuples(st.just("user"), st.integers(1, 120)),
        st.tuples(st.just("assistant"), st.integers(1, 120), st.booleans()),
        st.tuples(st.just("tools"), st.integers(1, 3), st.integers(1, 80), st.booleans()),
        st.tuples(st.just("pin"), st.integers(1, 30)),
        st.tuples(st.just("build"), st.integers(1, 300)),
    ),
    min_size=5,
    max_size=60,
)


@settings(
    max_examples=int(os.environ.get("CONTEXTKIT_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(actions=actions, seed=st.integers(0, 10**6), summarize=st.booleans())
def test_property_random_threads(sqlite_store, actions, seed, summarize):
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
        if kind == "user":
            t.append({"role": "user", "content": text(action[1], n)})
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
            max_tokens = action[1]
            try:
                p = t.prepare(max_tokens=max_tokens, compaction=CompactionPolicy(enabled=summarize))
            except ContextOverflowError as err:
                assert err.needed > err.budget == budget - max_tokens
                continue
            out = p.to_list()
            # (a) budget
            assert p.calibrated_tokens + max_tokens <= budget
            assert p.prompt_tokens == count_messages(out)
            # (b) tool-call integrity
            seen: dict[str, int] = {}
            for m in out:
                for c in m.get("tool_calls", []):
                    seen[c["id"]] = 0
                if m["role"] == "tool":
                    assert m["tool_call_id"] in seen
                    seen[m["tool_call_id"]] += 1
            assert all(v == 1 for v in seen.values())
            # (c) reasoning exactly on tool-call turns (judged on the whole stored history)
            flow = [m for m in t.messages() if not m.pinned]
            kept = kept_reasoning(
                [m.to_openai() for m in flow], thinking=True, policy=ReasoningReplay.TOOL_TURNS
            )
            expect = {m.seq: k for m, k in zip(flow, kept, strict=True)}
            # a tool turn with a message without reasoning (of those sent) goes as text in
            # thinking mode: its calls as assistant text, its results as user text
            as_text: set[int | None] = set()
            stored = {m.seq: m for m in t.messages()}
            sent = [stored[seq] for seq in p.seqs if seq is not None and not stored[seq].pinned]
            for turn in _turns(sent):
                bare = [m for m in turn if m.role == "assistant" and m.reasoning_content is None]
                if bare and any(m.tool_calls for m in turn):
                    as_text |= {m.seq for m in turn}
            for seq, m in zip(p.seqs, out, strict=True):
                if seq in as_text:
                    assert "tool_calls" not in m and "reasoning_content" not in m, (seq, m)
                    assert m["role"] != "tool", (seq, m)
                elif m["role"] == "assistant" and seq in expect:
                    assert ("reasoning_content" in m) == expect[seq], (seq, m)
            # (d) prefix stability between moves
            if last is not None and not p.moved and pins_since == 0 and not flipped:
                assert out[: len(last)] == last
            last, pins_since, flipped = out, 0, False


def _reply(prompt, message: dict) -> dict:
    return {
        "id": f"r-{prompt.call_key}",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {
            "prompt_tokens": prompt.prompt_tokens,
            "completion_tokens": 5,
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": prompt.prompt_tokens,
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
