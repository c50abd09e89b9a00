"""Cases for a call's round trip: building the prompt (prepare, build, reads, compact) and
recording the response."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from .data import HUGE, MODEL, PNG64, SEED_RESPONSE, SQLISH, data_url, tool_call
from .oracle import ANY, INVALID, READ, Case, case
from .strategies import (
    BIG_INTS,
    bad_text,
    bad_tools,
    fresh_ids,
    invalid_messages,
    rarely,
    valid_text,
    wrong_types,
)

bad_max_tokens = st.one_of(
    st.sampled_from([0, -1, -(10**12), 131_072, 131_073, 384_000, 384_001, 10**12, 10**30]),
    st.sampled_from([True, False, None, 1.5, 100.0, "100", b"100", [100], Decimal(100)]),
    st.floats(),
    st.integers(max_value=0),
)
good_max_tokens = st.one_of(st.integers(1, 4_000), st.integers(125_000, 131_071))
bad_extra = st.one_of(
    st.sampled_from([5, 1.5, b"x", object(), [5], [None], ["x"], {"role": "wizard"}]),
    bad_text,
    st.sampled_from(
        [
            {"role": "tool", "tool_call_id": "call_a1", "content": "1"},
            [{"role": "assistant", "content": None, "tool_calls": [tool_call("x")]}],
        ]
    ),
).map(lambda v: (v, "extra")) | invalid_messages().filter(
    lambda m: m[1] not in ("not-a-message", "sdk")
).map(lambda m: (m[0], f"extra:{m[1]}"))
"""(extra, tag): values `extra=` must refuse."""
adversarial_extra = st.one_of(
    st.none(),
    st.sampled_from(SQLISH),
    rarely(st.just(HUGE), valid_text),
    st.just([{"role": "user", "content": [{"type": "text", "text": "look"}]}]),
    st.just({"role": "user", "content": [{"type": "image_url", "image_url": data_url(PNG64)}]}),
)


@st.composite
def build_cases(draw: st.DrawFn) -> Case:
    op = draw(st.sampled_from(["alice.prepare", "alice.build"]))
    kind = draw(
        st.sampled_from(
            [
                "max_tokens",
                "max_tokens",
                "option",
                "option",
                "adversarial",
                "read",
                "compact",
            ]
        )
    )
    if kind == "max_tokens":
        return case(op, max_tokens=draw(bad_max_tokens), tags="max_tokens")
    if kind == "option":
        options = {
            "extra": bad_extra,
            "tools": bad_tools,
            "reasoning_effort": st.one_of(
                st.sampled_from(["", "HIGH", "extreme", 5, ["high"], b"high", "high\x00"]),
                st.sampled_from(SQLISH),
            ),
            "low_water": st.one_of(
                st.sampled_from([0, -1, 1.01, 2, math.inf, math.nan, "0.5", None, [0.5]]),
                st.floats(max_value=0.0),
            ),
            "compaction": st.sampled_from(["off", 5, {"enabled": False}, object()]),
        }
        if op == "alice.build":
            options["format"] = st.sampled_from(["OpenAI", "", None, 5, "anthropic\x00", "gemini"])
        name = draw(st.sampled_from(sorted(options)))
        value, tag = draw(options[name]), name
        if name == "extra":
            value, tag = value
        return case(op, max_tokens=draw(good_max_tokens), **{name: value}, tags=tag)
    if kind == "adversarial":
        return case(
            op,
            max_tokens=draw(good_max_tokens),
            extra=draw(adversarial_extra),
            thinking=draw(st.sampled_from([None, True, False, 0, "no", [], object()])),
            summarizer=draw(st.sampled_from([None, "x", 5, object()])),
            expect=ANY,
        )
    if kind == "read":
        junk_int = st.one_of(
            st.integers(-5, 20),
            st.sampled_from([None, 1.5, "3", b"3", [3], 10**30, -(10**30), True, math.nan]),
        )
        read = draw(st.sampled_from(["messages", "get", "history", "stats", "summaries", "info"]))
        if read == "messages":
            kwargs = draw(
                st.fixed_dictionaries(
                    {}, optional={"after": junk_int, "before": junk_int, "page_size": junk_int}
                )
            )
            return case("alice.messages", **kwargs, expect=READ, tags=[f"{k}" for k in kwargs])
        if read == "get":
            return case("alice.get", draw(junk_int), expect=READ, tags="seq")
        if read == "history":
            return case("alice.history", page_size=draw(junk_int), expect=READ, tags="page_size")
        return case(f"alice.{read}", expect=READ)
    which = draw(st.sampled_from(["max_tokens", "max_tokens:int", "policy", "summarizer"]))
    if which == "max_tokens":
        value = draw(st.sampled_from([None, 1.5, "100", b"1", [1], math.nan, Decimal(1)]))
        return case("alice.compact", max_tokens=value, tags="max_tokens")
    if which == "max_tokens:int":
        value = draw(st.one_of(st.integers(-(10**6), 10**6), st.sampled_from(BIG_INTS)))
        return case("alice.compact", max_tokens=value, expect=ANY, tags="max_tokens:int")
    if which == "policy":
        value = draw(st.sampled_from(["p", 5, {"high_water": 0.5}, object()]))
        return case("alice.compact", policy=value, tags="policy")
    value = draw(st.sampled_from(["s", 5, object()]))
    return case("alice.compact", summarizer=value, expect=ANY)


def response(message: Any = None, **changes: Any) -> dict[str, Any]:
    """A valid chat completion (new id) with `changes` applied (None values: removed)."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": message or {"role": "assistant", "content": "Sure."},
        "finish_reason": changes.pop("finish_reason", "stop"),
    }
    out: dict[str, Any] = {
        "id": changes.pop("id", "resp-new"),
        "object": "chat.completion",
        "model": MODEL,
        "choices": [choice],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5},
    }
    out.update(changes)
    return out


@st.composite
def record_cases(draw: st.DrawFn) -> Case:
    rid = draw(fresh_ids)
    kind = draw(
        st.sampled_from(
            [
                "response",
                "choices",
                "message",
                "usage",
                "id",
                "kwarg",
                "kwarg",
                "replay",
                "finish_reason",
            ]
        )
    )
    if kind == "response":
        value = draw(st.one_of(wrong_types, valid_text, st.sampled_from([{}, {"id": rid}])))
        return case("alice.record", value, tags="response")
    if kind == "choices":
        choices = draw(
            st.sampled_from(
                [None, [], (), "c", 5, {"0": {}}, [None], [5], ["c"], [{}], [{"message": None}]]
            )
        )
        return case("alice.record", response(id=rid, choices=choices), tags="choices")
    if kind == "message":
        message = draw(
            st.one_of(
                invalid_messages().map(lambda m: m[0]),
                st.sampled_from(
                    [
                        {"role": "user", "content": "I am the assistant"},
                        {"role": "system", "content": "x"},
                        {"role": "tool", "tool_call_id": "call_a1", "content": "x"},
                    ]
                ),
            )
        )
        out = response(id=rid)
        out["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
        return case("alice.record", out, tags="message")
    if kind == "usage":
        field = draw(st.sampled_from(["prompt_tokens", "completion_tokens"]))
        usage: Any = {"prompt_tokens": 100, "completion_tokens": 5}
        expect = INVALID
        choice = draw(st.integers(0, 4))
        if choice == 0:
            usage = draw(st.sampled_from(["u", 5, [1, 2], b"u", object()]))
            tag = "usage"
        elif choice == 1:
            usage[field] = draw(
                st.sampled_from([-1, None, "100", 1.5, True, [1], math.nan, -(10**30)])
            )
            tag = "usage:field"
        elif choice == 2:
            usage[field] = draw(st.sampled_from([2**31, 2**40, 2**63 - 1]))
            tag, expect = "usage:int32", ANY  # a 64-bit count: SQLite stores it, PG refuses
        elif choice == 3:
            usage[field] = draw(st.sampled_from([2**63, 10**30]))
            tag = "usage:int64"
        else:
            extra = draw(
                st.sampled_from(
                    [
                        {"prompt_cache_hit_tokens": 101},
                        {"prompt_cache_hit_tokens": -1},
                        {"prompt_cache_hit_tokens": "5"},
                        {"prompt_cache_miss_tokens": 1.5},
                        {"prompt_tokens_details": "d"},
                        {"prompt_tokens_details": {"cached_tokens": "5"}},
                        {"prompt_tokens_details": {"cached_tokens": 1.5}},
                        {"prompt_tokens_details": {"cached_tokens": [5]}},
                        {"completion_tokens_details": {"reasoning_tokens": -3}},
                        {"completion_tokens_details": 7},
                    ]
                )
            )
            usage.update(extra)
            tag = "usage:details"
        return case("alice.record", response(id=rid, usage=usage), tags=tag, expect=expect)
    if kind == "id":
        value = draw(st.one_of(st.sampled_from([5, b"id", ["id"], "", "r" * 256]), bad_text))
        return case("alice.record", response(id=value), tags="id")
    if kind == "kwarg":
        name, values = draw(
            st.sampled_from(
                [
                    ("latency_ms", st.sampled_from(["12", b"1", [1], {}, object(), 10**400])),
                    ("predicted_cache_hit_tokens", st.sampled_from(["5", [5], 1.5, {}, b"5"])),
                    ("predicted_cache_hit_tokens:int", st.sampled_from([-1, 2**70])),
                    ("prompt", st.sampled_from(["p", 5, object(), {"prompt_tokens": 1}])),
                ]
            )
        )
        return case(
            "alice.record", response(id=rid), **{name.split(":")[0]: draw(values)}, tags=name
        )
    if kind == "finish_reason":
        value, tag = draw(
            st.sampled_from(
                [
                    ("s" * 33, "finish_reason:long"),
                    ("x" * 10_000, "finish_reason:long"),
                    ("stop\x00", "finish_reason:nul"),
                    ("\ud800", "finish_reason:surrogate"),
                ]
            )
        )
        return case("alice.record", response(id=rid, finish_reason=value), tags=tag)
    # A provider id seen before names nothing (servers reuse ids across restarts): without a
    # prompt of this handle the reply is a new call, stored like any other (invariant 8).
    if draw(st.booleans()):
        return case("alice.record", SEED_RESPONSE, expect=ANY, tags="id:reused")
    changed = response(id="resp-seed", message={"role": "assistant", "content": "Other."})
    return case("alice.record", changed, expect=ANY, tags="id:reused-other-text")
