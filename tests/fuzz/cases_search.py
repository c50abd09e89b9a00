"""Cases for recall: thread and store search with hostile queries and options, every owner's
view (never another owner's hits), the recall tool's executor, pin and unpin."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

import contextkit
from contextkit import ValidationError

from .data import EXISTING, HUGE, OTHER_OWNERS, SQLISH
from .oracle import ANY, READ, Case, case
from .strategies import bad_owners, bad_text, valid_text, wrong_types

OPERATORS = (
    '"',
    '""',
    '"Alice',
    "Alice\"'\\",
    "AND",
    "OR OR OR",
    "NOT Alice",
    "NEAR(Alice sunny, 2)",
    "Alice*",
    "*",
    "a*",
    "Ali* sun*",
    "name:Alice",
    "body:Alice",
    "search_fts:Alice",
    "-Alice +Paris ^weather",
    "Alice & sunny | !Paris <-> x:*",
    "'Alice':*",
    "(sunny)",
    "{Alice}",
    "[Paris]",
    "\\'",
    "Oslo",
    "weather Oslo",
    "Remember my name",
    "订单号",
    "Ωμέγα",
    "café",
)
queries = st.one_of(
    st.sampled_from(OPERATORS),
    st.sampled_from(SQLISH),
    valid_text,
    st.lists(st.sampled_from(OPERATORS + SQLISH), min_size=2, max_size=6).map(" ".join),
    st.integers(0, 63).flatmap(
        lambda n: (
            st.sampled_from([HUGE, "x" * 2_001, "word " * 65])
            if n == 0
            else st.sampled_from(["x" * 2_000, "Alice " * 60])
        )
    ),
)
"""Queries that must give results or a ValidationError (hostile but text)."""
bad_queries = st.one_of(wrong_types, bad_text, st.sampled_from(["", "   ", "***", "\x00"]))
"""Input that is no query: a ValidationError, always."""
bad_limits = st.one_of(st.sampled_from([0, -1, 1_001, 10**30, 1.5, math.nan, "5", True, None, [5]]))
bad_roles = st.sampled_from(
    [["bot"], [], "users", [5], {"user": 1}, 5, [None], ["user", "USER"], b"user"]
)
OWNERS = sorted({o for _, o in EXISTING} | set(OTHER_OWNERS))


def _only(owner: str) -> Callable[[Any], None]:
    """A search result: hits of `owner`'s seeded threads only."""
    theirs = {tid for tid, o in EXISTING if o == owner}

    def check(hits: list[contextkit.SearchHit]) -> None:
        assert all(h.owner == owner and h.thread_id in theirs for h in hits), [
            (h.thread_id, h.owner) for h in hits
        ]

    return check


def _recall_text(text: str) -> None:
    assert isinstance(text, str) and text.startswith("[recall] "), text[:80]


@st.composite
def search_cases(draw: st.DrawFn) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "thread",
                "thread",
                "thread:option",
                "thread:bad",
                "store",
                "store",
                "store:bad",
                "recall",
                "recall:bad",
                "pin",
                "pin:bad",
            ]
        )
    )
    if kind == "thread":
        options = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "limit": st.integers(1, 1_000),
                    "roles": st.sampled_from([["user"], ["tool", "summary"], ("assistant",)]),
                    "before_seq": st.integers(1, 10**6),
                },
            )
        )
        return case("alice.search", draw(queries), **options, expect=READ, post=_only("alice"))
    if kind == "thread:option":
        name, value = draw(
            st.sampled_from(["limit", "roles", "before_seq"]).flatmap(
                lambda n: st.tuples(
                    st.just(n),
                    {"limit": bad_limits, "roles": bad_roles, "before_seq": bad_limits}[n],
                )
            )
        )
        if name == "before_seq" and (value is None or (isinstance(value, int) and value >= 1)):
            value = 0  # None and a positive int are valid there
        return case("alice.search", "weather", **{name: value}, want=ValidationError, tags=name)
    if kind == "thread:bad":
        return case("alice.search", draw(bad_queries), want=ValidationError, tags="query")
    if kind == "store":
        owner = draw(st.sampled_from(OWNERS))
        return case(
            "store.search",
            draw(queries),
            owner=owner,
            limit=draw(st.integers(1, 50)),
            expect=READ,
            post=_only(owner),
            tags="owner:other" if owner != "alice" else (),
        )
    if kind == "store:bad":
        if draw(st.booleans()):
            return case("store.search", draw(bad_queries), owner="alice", want=ValidationError)
        return case("store.search", "weather", owner=draw(bad_owners), want=ValidationError)
    if kind == "recall":
        arguments = draw(
            st.one_of(
                queries.map(lambda q: {"query": q}),
                st.builds(lambda q, n: {"query": q, "limit": n}, queries, st.integers(-3, 2_000)),
                st.sampled_from(
                    ["{", "[]", "5", "null", '{"query": 5}', '{"q": "x"}', "{}", '"x"', ""]
                ),
                valid_text,
            )
        )
        return case("recall.run", arguments, expect=READ, post=_recall_text, tags="arguments")
    if kind == "recall:bad":
        option = draw(st.sampled_from(["max_tokens", "limit"]))
        wrong = {"max_tokens": [63, 100_001], "limit": [0, 1_001]}[option]
        value = draw(st.sampled_from([*wrong, -1, 10**30, 1.5, "800", None, True]))
        return case("alice_recall_tool", **{option: value}, tags=option)
    if kind == "pin":
        # the seeded thread: 1 pinned user, 2 user + image, 3 tool call, 4 tool result,
        # 5 assistant, 6 user, 7 recorded reply; pins of 3 or 4 are refused
        seq = draw(st.integers(1, 8))
        method = draw(st.sampled_from(["pin", "unpin"]))
        return case(f"alice.{method}", seq, expect=ANY, tags=f"seq:{seq}")
    value = draw(
        st.one_of(
            st.sampled_from([0, -1, 10**6, 2**63, 10**30, 1.5, "1", None, True, [1]]),
            st.sampled_from(SQLISH),
        )
    )
    return case(f"alice.{draw(st.sampled_from(['pin', 'unpin']))}", value, tags="seq")
