"""thread.pin(seq) / thread.unpin(seq): pinning a stored message after the fact."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import table_counts

import contextkit
from contextkit import ContextOverflowError, NotFound, ValidationError
from contextkit.db.recount import recount
from contextkit.models import spec_for

MODEL = "deepseek-v4-flash"
BOOKKEEPING = "seq, pinned, token_count, reasoning_kept, lead, cum_before, boundary"
THREAD = "cum_weight, total_tokens, turn_seq, turn_tool_calls, pending_calls, last_seq"


def state(conn: sa.Connection, pk: int) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    rows = conn.execute(
        sa.text(f"SELECT {BOOKKEEPING} FROM messages WHERE thread_pk = :pk ORDER BY seq"),
        {"pk": pk},
    ).all()
    row = conn.execute(sa.text(f"SELECT {THREAD} FROM threads WHERE pk = :pk"), {"pk": pk}).one()
    normal = [(r[0], bool(r[1]), r[2], bool(r[3]), r[4], r[5], bool(r[6])) for r in rows]
    return normal, (row[0], row[1], row[2], bool(row[3]), row[4], row[5])


def recounted(store: contextkit.Store, thread: contextkit.Thread) -> Any:
    """The bookkeeping a full recount from the first message gives (rolled back)."""
    with store.engine.connect() as conn:
        tx = conn.begin()
        recount(conn, thread.ref.pk, spec_for(MODEL))
        found = state(conn, thread.ref.pk)
        tx.rollback()
    return found


def stored(store: contextkit.Store, thread: contextkit.Thread) -> Any:
    with store.engine.connect() as conn:
        return state(conn, thread.ref.pk)


def call(i: str) -> dict[str, Any]:
    return {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}}


def session(thread: contextkit.Thread, turns: int, rng: random.Random) -> None:
    """Chat turns and tool-call turns with reasoning, in a random mix."""
    for t in range(turns):
        thread.append({"role": "user", "content": f"question {t} " * rng.randint(3, 30)})
        for step in range(rng.choice([0, 0, 1, 2])):
            thread.append(
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": f"think {t}.{step} " * 5,
                    "tool_calls": [call(f"c{t}.{step}")],
                }
            )
            thread.append({"role": "tool", "tool_call_id": f"c{t}.{step}", "content": "ok " * 9})
        thread.append(
            {
                "role": "assistant",
                "content": f"answer {t} " * rng.randint(3, 30),
                "reasoning_content": f"final thought {t} " * 4,
            }
        )


def test_a_pinned_message_returns_to_every_prompt(store: contextkit.Store) -> None:
    t = store.thread("p", model=MODEL, owner="o", system="sys", max_context_tokens=2_000)
    t.append({"role": "user", "content": "My locker code is 7781."})
    t.append({"role": "assistant", "content": "Noted: 7781."})
    session(t, 40, random.Random(1))
    first = t.build(max_tokens=200)
    assert "My locker code is 7781." not in [m["content"] for m in first]
    pinned = t.pin(1)
    assert pinned.pinned and pinned.seq == 1 and pinned.token_count
    assert t.get(1).pinned
    prompt = t.prepare(max_tokens=200)
    assert prompt.to_list()[:2] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "My locker code is 7781."},
    ]
    assert prompt.prompt_tokens + 200 <= 2_000
    assert prompt.prompt_tokens == contextkit.count_messages(prompt.to_list())
    assert stored(store, t) == recounted(store, t)
    assert store.check() == []
    # pinning it again changes nothing; unpinning restores what an append gave it
    assert t.pin(1) == pinned
    unpinned = t.unpin(1)
    assert not unpinned.pinned and not t.get(1).pinned
    assert stored(store, t) == recounted(store, t)
    assert "My locker code is 7781." not in [m["content"] for m in t.build(max_tokens=200)]


@pytest.mark.parametrize("seed", [3, 4])
def test_pins_keep_the_bookkeeping_an_append_would_give(store: contextkit.Store, seed: int) -> None:
    """After any pin or unpin, every message's stored counts, replay form, weight and cut
    flag, and the thread's running state, equal a full recount's."""
    rng = random.Random(seed)
    t = store.thread(f"r{seed}", model=MODEL, owner="o", max_context_tokens=6_000)
    session(t, 25, rng)
    messages = list(t.messages())
    pinnable = [m.seq for m in messages if m.role.value != "tool" and not m.tool_calls]
    for _ in range(14):
        seq = rng.choice(pinnable)
        if t.get(seq).pinned:
            t.unpin(seq)
        else:
            t.pin(seq)
        assert stored(store, t) == recounted(store, t), seq
        if rng.random() < 0.3:
            prompt = t.prepare(max_tokens=300)
            assert prompt.prompt_tokens + 300 <= 6_000
            assert prompt.prompt_tokens == contextkit.count_messages(prompt.to_list())
    assert store.check() == []


def test_pinning_the_current_turns_message(store: contextkit.Store) -> None:
    t = store.thread("cur", model=MODEL, owner="o")
    session(t, 3, random.Random(5))
    last = t.append({"role": "user", "content": "the task at hand"})
    t.pin(last.seq or 0)
    assert stored(store, t) == recounted(store, t)
    prompt = t.build(max_tokens=100)
    assert prompt[0] == {"role": "user", "content": "the task at hand"}
    t.unpin(last.seq or 0)
    assert stored(store, t) == recounted(store, t)
    assert t.build(max_tokens=100)[-1] == {"role": "user", "content": "the task at hand"}


def test_what_cannot_be_pinned_is_refused_and_nothing_is_written(
    store: contextkit.Store,
) -> None:
    t = store.thread("bad", model=MODEL, owner="o", max_context_tokens=1_000)
    t.append({"role": "user", "content": "look it up"})
    t.append({"role": "assistant", "content": None, "tool_calls": [call("c1")]})
    t.append({"role": "tool", "tool_call_id": "c1", "content": "found"})
    t.append({"role": "user", "content": "word " * 1_200})
    before = table_counts(store), stored(store, t)
    with pytest.raises(ValidationError, match="tool call"):
        t.pin(2)
    with pytest.raises(ValidationError, match="tool result"):
        t.pin(3)
    with pytest.raises(NotFound):
        t.pin(99)
    with pytest.raises(NotFound):
        t.unpin(99)
    for bad in (0, -1, "1", 1.0, None, True):
        with pytest.raises(ValidationError):
            t.pin(bad)  # type: ignore[arg-type]
    with pytest.raises(ContextOverflowError) as info:
        t.pin(4)  # 1,200 words do not fit a 1,000-token budget beside anything
    assert info.value.budget == 1_000 and (info.value.needed or 0) > 1_000
    assert (table_counts(store), stored(store, t)) == before
    other = store.thread("bad", model=MODEL, owner="mallory")
    with pytest.raises(NotFound):
        other.pin(1)  # another owner's same id is another (empty) thread
    assert not t.get(1).pinned
