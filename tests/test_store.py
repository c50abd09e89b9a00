"""The Thread API on both databases: get-or-create, owners, appends, paging, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import table_counts

import contextkit
from contextkit import Message, NotFound, ValidationError


def test_thread_get_or_create(store: contextkit.Store) -> None:
    t = store.thread("s-1", model="deepseek-v4-flash", owner="alice", system="Be brief.")
    assert (t.id, t.owner, t.model, t.system) == ("s-1", "alice", "deepseek-v4-flash", "Be brief.")
    assert t.max_context_tokens == contextkit.get_model("deepseek-v4-flash").default_context_tokens
    again = store.thread("s-1", owner="alice")
    assert again.info().created_at == t.info().created_at
    assert again.system == "Be brief."
    assert table_counts(store)["threads"] == 1


def test_creating_needs_a_model(store: contextkit.Store) -> None:
    with pytest.raises(ValidationError, match="pass model="):
        store.thread("nope", owner="alice")
    assert table_counts(store)["threads"] == 0


@pytest.mark.parametrize(
    "changed",
    [
        {"system": "v2"},
        {"model": "deepseek-v4-pro"},
        {"max_context_tokens": 16_000},
        {"metadata": {"plan": "pro"}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_get_or_create_never_changes_an_existing_thread(
    store: contextkit.Store, changed: dict[str, object]
) -> None:
    """Opening with other settings is refused, names `thread.update`, and writes nothing."""
    settings: dict[str, object] = {
        "model": "deepseek-v4-flash",
        "system": "v1",
        "max_context_tokens": 8_000,
        "metadata": {"plan": "free"},
    }
    t = store.thread("s", owner="alice", **settings)  # type: ignore[arg-type]
    before = t.info()
    (name,) = changed
    with pytest.raises(ValidationError, match=rf"thread.update\({name}=") as err:
        store.thread("s", owner="alice", **{**settings, **changed})  # type: ignore[arg-type]
    assert "exists with other settings" in str(err.value)
    assert store.get_thread("s", owner="alice").info() == before
    # the same settings, or none, open it as it is
    assert store.thread("s", owner="alice", **settings).info() == before  # type: ignore[arg-type]
    assert store.thread("s", owner="alice").info() == before
    # changing is what update() is for
    info = t.update(**changed)  # type: ignore[arg-type]
    assert getattr(info, name) == changed[name]
    assert store.thread("s", owner="alice", **changed).info() == info  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_context_tokens": 0}, "max_context_tokens"),
        ({"max_context_tokens": 2_000_000}, "window"),
        ({"max_context_tokens": "8000"}, "must be an int"),
        ({"max_context_tokens": True}, "must be an int"),
        ({"metadata": {"x": object()}}, "JSON-serializable"),
        ({"metadata": ["not", "a", "mapping"]}, "mapping"),
        ({"system": 42}, "system must be a string"),
        ({"system": "nul\x00"}, "NUL"),
    ],
)
def test_bad_thread_settings(
    store: contextkit.Store, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        store.thread("s", model="deepseek-v4-flash", **kwargs)  # type: ignore[arg-type]
    assert table_counts(store)["threads"] == 0


@pytest.mark.parametrize("bad_id", ["", "x" * 256, 42, None, "a\x00b", "\ud800"])
def test_bad_thread_ids(store: contextkit.Store, bad_id: object) -> None:
    with pytest.raises(ValidationError):
        store.thread(bad_id, model="deepseek-v4-flash")  # type: ignore[arg-type]


def test_unknown_model_rejected(store: contextkit.Store) -> None:
    with pytest.raises(contextkit.UnknownModelError, match="deepseek-v4-flash"):
        store.thread("s", model="gpt-nonexistent")
    assert table_counts(store)["threads"] == 0


def test_owner_isolation(store: contextkit.Store) -> None:
    """Ids are unique per owner: another owner's id names another thread, so guessing ids
    reveals nothing (no PermissionDenied that would confirm the id exists)."""
    alice = store.thread("shared-id", model="deepseek-v4-flash", owner="alice", system="A")
    alice.append({"role": "user", "content": "my secret order is 5512"})
    store.thread("bob-1", model="deepseek-v4-flash", owner="bob").append(
        {"role": "user", "content": "bob here"}
    )
    # bob asking for alice's id is told what he would be told for any unknown id
    with pytest.raises(NotFound) as bobs:
        store.get_thread("shared-id", owner="bob")
    with pytest.raises(NotFound) as unknown:
        store.get_thread("never-used", owner="bob")
    assert str(bobs.value).replace("shared-id", "X") == str(unknown.value).replace(
        "never-used", "X"
    )
    with pytest.raises(ValidationError, match="pass model="):
        store.thread("shared-id", owner="bob")
    with pytest.raises(NotFound):
        store.get_thread("shared-id")  # the anonymous owner is an owner too
    # bob's own "shared-id" is a new, empty thread with his settings
    bobs_shared = store.thread("shared-id", model="deepseek-v4-pro", owner="bob")
    assert (bobs_shared.owner, bobs_shared.model, bobs_shared.system, len(bobs_shared)) == (
        "bob",
        "deepseek-v4-pro",
        None,
        0,
    )
    bobs_shared.append({"role": "user", "content": "bob's own"})
    assert {t.id for t in store.threads(owner="bob")} == {"bob-1", "shared-id"}
    assert [t.id for t in store.threads(owner="alice")] == ["shared-id"]
    assert list(store.threads(owner="mallory")) == []
    assert len(list(store.threads(all_owners=True))) == 3
    assert [m.content for m in alice.messages()] == ["my secret order is 5512"]
    assert [m.content for m in store.get_thread("shared-id", owner="bob").messages()] == [
        "bob's own"
    ]
    # deleting bob's leaves alice's alone
    bobs_shared.delete()
    assert [m.content for m in store.get_thread("shared-id", owner="alice").messages()] == [
        "my secret order is 5512"
    ]
    assert table_counts(store) == {
        "threads": 2,
        "messages": 2,
        "tool_calls": 0,
        "calls": 0,
        "calibrations": 0,
        "summaries": 0,
        "blobs": 0,
        "search_docs": 2,
    }


def test_operators_name_the_owner_when_an_id_is_shared(store: contextkit.Store) -> None:
    store.thread("t", model="deepseek-v4-flash", owner="alice")
    assert store.admin_thread("t").owner == "alice"  # type: ignore[union-attr]
    store.thread("t", model="deepseek-v4-flash", owner="bob")
    with pytest.raises(ValidationError, match="2 owners have a thread 't'"):
        store.admin_thread("t")
    assert store.admin_thread("t", owner="bob").owner == "bob"  # type: ignore[union-attr]
    assert store.admin_thread("t", owner="carol") is None


def test_sql_looking_ids_and_owners_are_just_strings(store: contextkit.Store) -> None:
    evil = "x'; DROP TABLE messages; --"
    t = store.thread(evil, model="deepseek-v4-flash", owner=evil)
    t.append({"role": "user", "content": evil})
    assert store.get_thread(evil, owner=evil).get(1).content == evil
    assert table_counts(store)["messages"] == 1


def test_append_and_read_back(store: contextkit.Store) -> None:
    t = store.thread("s", model="deepseek-v4-flash")
    m1 = t.append({"role": "user", "content": "hello"})
    m2 = t.append(
        {
            "role": "assistant",
            "content": "hi!",
            "reasoning_content": "The user greets me.",
        }
    )
    assert (m1.seq, m2.seq) == (1, 2)
    assert m1.created_at is not None
    stored = list(t.messages())
    assert [m.to_openai() for m in stored] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi!", "reasoning_content": "The user greets me."},
    ]
    assert stored == [m1, m2]
    assert len(t) == 2
    assert t.get(2) == m2
    with pytest.raises(NotFound):
        t.get(3)


def test_messages_pages_without_loading_everything(store: contextkit.Store) -> None:
    t = store.thread("s", model="deepseek-v4-flash")
    t.extend({"role": "user", "content": f"m{i}"} for i in range(1, 26))
    pages = t.messages(page_size=7)
    first = next(pages)
    assert first.content == "m1"
    assert [m.seq for m in pages] == list(range(2, 26))
    assert [m.seq for m in t.messages(after=20)] == [21, 22, 23, 24, 25]
    assert [m.seq for m in t.messages(after=3, before=7, page_size=2)] == [4, 5, 6]
    with pytest.raises(ValidationError):
        list(t.messages(page_size=0))


def test_content_parts_and_names_round_trip(store: contextkit.Store) -> None:
    t = store.thread("s", model="deepseek-v4-flash")
    msg = {
        "role": "user",
        "name": "alice_1",
        "content": [
            {"type": "text", "text": "What is this?"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/a.png", "detail": "low"},
            },
        ],
    }
    t.append(msg)
    assert t.get(1).to_openai() == msg


def test_idempotent_append(store: contextkit.Store) -> None:
    t = store.thread("s", model="deepseek-v4-flash")
    a = t.append({"role": "user", "content": "pay invoice 7"}, idempotency_key="req-1")
    b = t.append({"role": "user", "content": "pay invoice 7"}, idempotency_key="req-1")
    assert a == b and a.seq == 1
    assert table_counts(store)["messages"] == 1
    with pytest.raises(ValidationError, match="already used"):
        t.append({"role": "user", "content": "something else"}, idempotency_key="req-1")
    c = t.append({"role": "user", "content": "pay invoice 7"}, idempotency_key="req-2")
    assert c.seq == 2
    # keys are per thread
    other = store.thread("s2", model="deepseek-v4-flash")
    assert other.append({"role": "user", "content": "x"}, idempotency_key="req-1").seq == 1
    assert table_counts(store)["messages"] == 3


def test_tool_call_group(store: contextkit.Store) -> None:
    t = store.thread("agent", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "weather in Paris and Rome?"})
    t.append(
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "I need two lookups.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        }
    )
    t.append({"role": "tool", "tool_call_id": "c2", "content": "21C"})
    t.append({"role": "tool", "tool_call_id": "c1", "content": "18C"})
    before = table_counts(store)
    with pytest.raises(ValidationError, match="c1"):
        t.append({"role": "tool", "tool_call_id": "c1", "content": "again"})
    with pytest.raises(ValidationError, match="nope"):
        t.append({"role": "tool", "tool_call_id": "nope", "content": "?"})
    assert table_counts(store) == before
    # an answered id may be reused by a later call
    t.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        }
    )
    with pytest.raises(ValidationError, match="already pending"):
        t.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            }
        )
    assert t.append({"role": "tool", "tool_call_id": "c1", "content": "19C"}).seq == 6


def test_extend_is_all_or_nothing(store: contextkit.Store) -> None:
    t = store.thread("s", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "keep me"})
    with pytest.raises(ValidationError):
        t.extend(
            [
                {"role": "user", "content": "ok"},
                {"role": "assistant", "content": "fine"},
                {"role": "tool", "tool_call_id": "missing", "content": "x"},
            ]
        )
    with pytest.raises(ValidationError):
        t.extend([{"role": "user", "content": "ok"}, {"role": "wizard", "content": "x"}])
    assert [m.content for m in t.messages()] == ["keep me"]
    assert len(t) == 1
    stored = t.extend(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "done"},
        ]
    )
    assert [m.seq for m in stored] == [2, 3]


def test_delete(store: contextkit.Store) -> None:
    t = store.thread("s", model="deepseek-v4-flash", owner="alice")
    t.append({"role": "user", "content": "x"})
    t.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    )
    keep = store.thread("other", model="deepseek-v4-flash", owner="alice")
    keep.append({"role": "user", "content": "stay"})
    t.delete()
    assert table_counts(store) == {
        "threads": 1,
        "messages": 1,
        "tool_calls": 0,
        "calls": 0,
        "calibrations": 0,
        "summaries": 0,
        "blobs": 0,
        "search_docs": 1,  # the deleted thread's messages leave the index too
    }
    with pytest.raises(NotFound):
        t.append({"role": "user", "content": "y"})
    with pytest.raises(NotFound):
        list(t.messages())
    with pytest.raises(NotFound):
        store.get_thread("s", owner="alice")
    # the id is free again
    assert len(store.thread("s", model="deepseek-v4-flash", owner="bob")) == 0


def test_message_values_are_frozen_and_typed() -> None:
    m = Message.parse({"role": "user", "content": "x"})
    with pytest.raises(AttributeError):
        m.content = "y"  # type: ignore[misc]
    assert Message.parse(m) is m
    assert m.role is contextkit.Role.USER and str(m.role) == "user"


def test_a_held_write_lock_gives_a_typed_error_within_the_bound(tmp_path: Path) -> None:
    """Another connection holding SQLite's write lock: the append waits `busy_timeout`,
    retries included, then raises StoreError naming the database; nothing is written."""
    import sqlite3
    import time

    path = tmp_path / "locked.db"
    store = contextkit.open(f"sqlite:///{path}", busy_timeout=0.5)
    thread = store.thread("t", model="deepseek-v4-flash")
    thread.append({"role": "user", "content": "first"})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        started = time.monotonic()
        with pytest.raises(contextkit.StoreError, match=r"locked\.db stayed locked for 0\.5 s"):
            thread.append({"role": "user", "content": "second"})
        assert time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [m.text for m in thread.messages()] == ["first"]
    with pytest.raises(contextkit.ValidationError, match="busy_timeout"):
        contextkit.open(f"sqlite:///{path}", busy_timeout=0)


def test_a_closed_store_refuses_work_instead_of_reconnecting(tmp_path: Path) -> None:
    store = contextkit.open(f"sqlite:///{tmp_path / 'c.db'}")
    thread = store.thread("t", model="deepseek-v4-flash")
    thread.append({"role": "user", "content": "before"})
    store.close()
    with pytest.raises(contextkit.StoreError, match="was closed"):
        thread.append({"role": "user", "content": "after"})
    with pytest.raises(contextkit.StoreError, match="was closed"):
        store.thread("t")
    again = contextkit.open(f"sqlite:///{tmp_path / 'c.db'}")
    assert [m.text for m in again.thread("t").messages()] == ["before"]


def test_an_unsupported_database_is_told_what_contextkit_supports() -> None:
    with pytest.raises(contextkit.ContextKitError, match="SQLite or PostgreSQL") as info:
        contextkit.open("mysql+mysqldb://u:p@127.0.0.1/db")
    assert "contextkit[postgres]" not in str(info.value)
