"""Cases for threads and what writes them: create, get, list, update (and other owners'
threads), append, extend, and the import of exported records."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from conftest import EXPORT_T0, export_call, export_header, export_message, export_summary
from hypothesis import strategies as st

import contextkit
from contextkit import NotFound, ValidationError

from .data import ALICE, EXISTING, MODEL, OTHER_OWNERS, SQLISH, tool_call
from .oracle import READ, Case, case
from .strategies import (
    bad_context_tokens,
    bad_ids,
    bad_keys,
    bad_metadata,
    bad_models,
    bad_owners,
    bad_system,
    bad_text,
    fresh_ids,
    invalid_messages,
    valid_message,
    valid_text,
    wrong_types,
)


def _owned_by(owner: str) -> Callable[[Any], None]:
    def check(threads: list[contextkit.Thread]) -> None:
        assert all(t.owner == owner for t in threads), [(t.id, t.owner) for t in threads]
        seeded = {tid for tid, o in EXISTING if o == owner}
        assert seeded <= {t.id for t in threads}

    return check


@st.composite
def thread_cases(draw: st.DrawFn) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "new:id",
                "new:owner",
                "new:model",
                "new:setting",
                "existing:setting",
                "update",
                "other-owner",
                "other-owner:get",
                "missing",
                "get:bad",
                "admin",
                "threads",
                "same-owner",
            ]
        )
    )
    settings_bad = {
        "system": bad_system,
        "max_context_tokens": bad_context_tokens,
        "metadata": bad_metadata,
    }
    if kind == "new:id":
        return case("store.thread", draw(bad_ids), model=MODEL, tags="id")
    if kind == "new:owner":
        return case(
            "store.thread", draw(fresh_ids), model=MODEL, owner=draw(bad_owners), tags="owner"
        )
    if kind == "new:model":
        model = draw(st.one_of(st.none(), bad_models))
        tag = "model:missing" if model is None else "model"
        return case("store.thread", draw(fresh_ids), model=model, owner="z", tags=tag)
    if kind in ("new:setting", "existing:setting", "update"):
        name = draw(st.sampled_from(sorted(settings_bad)))
        value = draw(settings_bad[name])
        if kind == "update":
            return case("alice.update", **{name: value}, tags=name)
        tid, owner = (draw(fresh_ids), "z") if kind == "new:setting" else (ALICE, "alice")
        return case("store.thread", tid, model=MODEL, owner=owner, **{name: value}, tags=name)
    if kind in ("other-owner", "other-owner:get"):
        tid, true_owner = draw(st.sampled_from(EXISTING))
        owner = draw(st.sampled_from(OTHER_OWNERS).filter(lambda o: o != true_owner))
        # ids are unique per owner: another owner's id is unknown to this one, answered
        # exactly as a missing id is (nothing confirms that the id exists)
        if kind == "other-owner:get":
            return case("store.get_thread", tid, owner=owner, want=NotFound, tags="owner:other")
        changes = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "system": st.sampled_from(["Evil.", "", "Be brief."]),
                    "max_context_tokens": st.integers(1, 131_072),
                    "metadata": st.sampled_from([{}, {"owned": True}]),
                },
            )
        )
        return case(
            "store.thread", tid, owner=owner, **changes, want=ValidationError, tags="owner:other"
        )
    if kind == "missing":
        tid = draw(st.one_of(st.sampled_from(SQLISH), valid_text.filter(bool), fresh_ids))
        owner = draw(st.one_of(st.sampled_from(OTHER_OWNERS), st.just("alice")))
        existing = {t for t, _ in EXISTING}
        if tid in existing or len(tid) > 255:
            tid = f"missing-{tid[:200]}"
        if draw(st.booleans()):
            return case("store.get_thread", tid, owner=owner, want=NotFound, tags="id:missing")
        return case("store.thread", tid, owner=owner, want=ValidationError, tags="model:missing")
    if kind == "get:bad":
        if draw(st.booleans()):
            return case("store.get_thread", draw(bad_ids), owner="alice", tags="id")
        return case("store.get_thread", ALICE, owner=draw(bad_owners), tags="owner")
    if kind == "admin":
        if draw(st.booleans()):
            return case("store.admin_thread", draw(bad_ids), tags="id")
        return case("store.admin_thread", draw(st.sampled_from(SQLISH)), expect=READ)
    if kind == "threads":
        choice = draw(st.sampled_from(["owner", "bad-owner", "page_size"]))
        if choice == "owner":
            owner = draw(st.sampled_from([*OTHER_OWNERS, "alice", "carol"]))
            return case("store.threads", owner=owner, expect=READ, post=_owned_by(owner))
        if choice == "bad-owner":
            return case("store.threads", owner=draw(bad_owners), tags="owner")
        size = draw(st.one_of(st.integers(-3, 3), st.sampled_from([1.5, "2", None, 10**30])))
        return case("store.threads", owner="alice", page_size=size, expect=READ, tags="page_size")
    tid, owner = draw(st.sampled_from(EXISTING))
    return case("store.thread", tid, owner=owner, expect=READ, post=lambda t: t.info())


@st.composite
def append_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["message", "message", "message", "key", "key-reuse", "pinned"]))
    if kind == "message":
        message, tag = draw(invalid_messages())
        key = draw(st.one_of(st.none(), fresh_ids))
        return case(
            "alice.append", message, idempotency_key=key, pinned=draw(st.booleans()), tags=tag
        )
    if kind == "key":
        message = draw(valid_message())
        return case("alice.append", message, idempotency_key=draw(bad_keys), tags="idempotency_key")
    if kind == "key-reuse":
        message = draw(valid_message())
        if message == {"role": "user", "content": "Thanks"}:
            return case("alice.append", message, idempotency_key="key-1", expect=READ)
        return case("alice.append", message, idempotency_key="key-1", tags="idempotency_key:reused")
    message = {"role": "assistant", "content": None, "tool_calls": [tool_call(draw(fresh_ids))]}
    return case("alice.append", message, pinned=True, tags="pinned:tool_calls")


@st.composite
def extend_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["one-bad", "one-bad", "one-bad", "in-txn", "not-a-list", "empty"]))
    valid = st.lists(st.one_of(valid_message("user"), valid_message("assistant")), max_size=4)
    if kind == "one-bad":
        bad, tag = draw(invalid_messages())
        messages = [*draw(valid), bad, *draw(valid)]
        if draw(st.booleans()):
            return case("alice.extend", tuple(messages), tags=tag)
        return case("alice.extend", iter(messages), tags=tag)
    if kind == "in-txn":
        i = draw(fresh_ids)
        call = {"role": "assistant", "content": None, "tool_calls": [tool_call(i)]}
        answer = {"role": "tool", "tool_call_id": i, "content": "1"}
        bad, tag = draw(
            st.sampled_from(
                [
                    ([call, answer, answer], "tool_call_id:answered-twice"),
                    ([call, call], "tool_calls:pending-twice"),
                    ([call, {**answer, "tool_call_id": "call_b1"}], "tool_call_id:other-thread"),
                    ([answer], "tool_call_id:unknown"),
                    ([{**answer, "tool_call_id": "call_a1"}], "tool_call_id:answered"),
                ]
            )
        )
        prefix = draw(st.integers(0, 60)) if draw(st.integers(0, 9)) == 0 else 0
        head = [{"role": "user", "content": f"bulk {n}"} for n in range(prefix)]
        return case("alice.extend", [*head, *draw(valid), *bad], tags=tag)
    if kind == "not-a-list":
        value = draw(
            st.one_of(
                st.sampled_from([None, 5, 1.5, True, object(), Ellipsis]),
                st.sampled_from(["user", b"ab", {"role": "user", "content": "x"}]),
            )
        )
        tag = "messages:scalar" if isinstance(value, (str, bytes, dict)) else "messages:type"
        return case("alice.extend", value, tags=tag)
    return case("alice.extend", draw(st.sampled_from([[], (), iter([])])), expect=READ)


not_int = st.one_of(
    st.sampled_from(["5", "", "x", 1.5, math.nan, True, [1], {}, b"1", Decimal(1)]),
    st.sampled_from([10**30, -(10**30)]),
)
not_float = st.sampled_from(["1.5", "", "x", [1.5], {}, b"1", object()])
not_text = st.one_of(st.sampled_from([5, 1.5, True, ["t"], {}, b"t"]), bad_text)
not_time = st.one_of(
    st.sampled_from([None, 5, 1.5, b"2024", [EXPORT_T0], "", "yesterday", "2024-13-45", "\x00"]),
    bad_text,
)
IMPORT_FIELDS: dict[str, dict[str, tuple[st.SearchStrategy[Any], bool]]] = {
    "summary": {
        "n": (not_int, True),
        "from_seq": (not_int, True),
        "upto_seq": (not_int, True),
        "text": (not_text, True),
        "token_count": (not_int, True),
        "summarizer": (not_text, True),
        "model": (not_text, False),
        "prompt_tokens": (not_int, True),
        "completion_tokens": (not_int, True),
        "cost_usd": (not_float, False),
        "created_at": (not_time, True),
    },
    "call": {
        "n": (not_int, True),
        "message_seq": (not_int, False),
        "response_id": (not_text, False),
        "model": (not_text, True),
        "prompt_tokens": (not_int, True),
        "completion_tokens": (not_int, True),
        "reasoning_tokens": (not_int, True),
        "cache_hit_tokens": (not_int, True),
        "cache_miss_tokens": (not_int, True),
        "predicted_prompt_tokens": (not_int, False),
        "predicted_cache_hit_tokens": (not_int, False),
        "structure": (not_text, False),
        "cost_usd": (not_float, False),
        "latency_ms": (not_float, False),
        "finish_reason": (not_text, False),
        "window_start": (not_int, False),
        "created_at": (not_time, True),
    },
}
"""Per export record field: values of the wrong type, and whether the field is required."""


@st.composite
def import_cases(draw: st.DrawFn) -> Case:
    tid = draw(fresh_ids)
    header = export_header(tid)
    messages = [export_message(tid, s) for s in range(1, draw(st.integers(2, 4)) + 1)]
    extras = [export_summary(tid), export_call(tid)]
    kind = draw(
        st.sampled_from(
            ["records", "record", "header", "header", "message", "message", "summary", "call"]
        )
    )
    if kind == "records":
        value = draw(st.one_of(wrong_types, st.sampled_from(["records", b"{}"])))
        return case("transfer.import_records", value, expect=READ, tags="records")
    if kind == "record":
        junk = draw(
            st.sampled_from(
                [
                    5,
                    None,
                    "thread",
                    [header],
                    {},
                    {"type": None},
                    {"type": ["thread"]},
                    {"type": {"thread": 1}},
                    {"type": "threads"},
                    {"type": "message", "thread": tid},
                    {"type": "message", "thread": ALICE, "seq": 7, "message": {}},
                ]
            )
        )
        where = draw(st.sampled_from(["first", "after-header"]))
        records = [junk] if where == "first" else [header, junk]
        return case("transfer.import_records", records, tags="record")
    if kind == "header":
        field = draw(
            st.sampled_from(
                [
                    "id",
                    "id:existing",
                    "owner",
                    "model",
                    "system",
                    "max_context_tokens",
                    "metadata",
                    "window_start",
                    "window_start:range",
                    "created_at",
                    "updated_at",
                ]
            )
        )
        strategies: dict[str, st.SearchStrategy[Any]] = {
            "id": bad_ids,
            "id:existing": st.sampled_from(EXISTING),  # (id, owner): ids are per owner
            "owner": bad_owners,
            "model": st.one_of(st.none(), bad_models),
            "system": bad_system,
            "max_context_tokens": bad_context_tokens,
            "metadata": bad_metadata,
            "window_start": st.sampled_from(["x", [1], "\x00", "1.5", b"x"]),
            "window_start:range": st.sampled_from([-5, 10**6, 2**40, 10**30]),
            "created_at": not_time,
            "updated_at": not_time,
        }
        value = draw(strategies[field])
        key = field.split(":")[0]
        if field == "id:existing":
            value, header["owner"] = value
        header[key] = value
        if key == "id":
            for m in messages:
                m["thread"] = value
            return case("transfer.import_records", [header, *messages], tags=f"header:{field}")
        return case("transfer.import_records", [header, *messages, *extras], tags=f"header:{field}")
    if kind == "message":
        target = draw(st.sampled_from(messages))
        field = draw(
            st.sampled_from(
                ["seq", "message", "message:tool", "created_at", "idempotency_key", "pinned"]
            )
        )
        if field == "seq":
            target["seq"] = draw(st.sampled_from([0, -1, 99, None, "1", 1.5, [1], 10**30]))
            if target["seq"] == 1.5:
                target["seq"] = 2.5
        elif field == "message":
            target["message"], inner = draw(invalid_messages())
            field = f"message:{inner}"
        elif field == "message:tool":
            target["message"] = {"role": "tool", "tool_call_id": "call_a1", "content": "x"}
        elif field == "created_at":
            target["created_at"] = draw(not_time)
        elif field == "idempotency_key":
            target["idempotency_key"] = draw(bad_keys)
        else:
            target["pinned"] = True
            target["message"] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("c")],
            }
        return case("transfer.import_records", [header, *messages], tags=f"message:{field}")
    record = extras[0] if kind == "summary" else extras[1]
    field = draw(st.sampled_from(sorted(IMPORT_FIELDS[kind])))
    junk, required = IMPORT_FIELDS[kind][field]
    if required and draw(st.integers(0, 4)) == 0:
        del record[field]
        tag = f"{kind}:{field}:missing"
    else:
        record[field] = draw(junk)
        tag = f"{kind}:{field}"
    return case("transfer.import_records", [header, *messages, *extras], tags=tag)
