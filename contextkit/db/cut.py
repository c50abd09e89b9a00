"""Window reads: pinned and live messages in replay form, live weights and the cut point.

Each is one indexed query. Stored per-message counts and cumulative weights (`cum_before`)
let the cut point be found without reading the history, so a build costs O(live window).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import ColumnClause, Connection, literal_column, select

from contextkit.db import blobs
from contextkit.db.codec import MESSAGE_COLUMNS, message_from_row
from contextkit.db.schema import MessageRow, ToolCallRow
from contextkit.db.threads import ThreadState
from contextkit.types import Message, Role, ToolCall

__all__ = [
    "Replayed",
    "at",
    "cut_point",
    "last_boundary",
    "leaving",
    "live",
    "live_weight",
    "next_boundary",
    "opener",
    "pending_calls",
    "pinned",
    "unanswered",
    "weights_at",
]

Replayed: TypeAlias = tuple[Message, bool, "str | None"]
"""A stored message, whether its reasoning is replayed, and its stored lead."""

_PINNED: ColumnClause[bool] = literal_column("messages.pinned")
_BOUNDARY: ColumnClause[bool] = literal_column("messages.boundary")
"""Bare column predicates, written exactly as the partial indexes' WHERE so both databases
use those indexes (SQLAlchemy would render `pinned = 1` on SQLite, which does not match)."""

_COLUMNS = [
    *(getattr(MessageRow, c) for c in MESSAGE_COLUMNS),
    MessageRow.reasoning_kept,
    MessageRow.lead,
]


def _rows(conn: Connection, stmt: Any) -> list[Replayed]:
    return [
        (message_from_row(r), bool(r["reasoning_kept"]), r["lead"]) for r in blobs.fetch(conn, stmt)
    ]


def pinned(conn: Connection, pk: int) -> list[Replayed]:
    """The thread's pinned messages, in seq order."""
    return _rows(
        conn, select(*_COLUMNS).where(MessageRow.thread_pk == pk, _PINNED).order_by(MessageRow.seq)
    )


def at(conn: Connection, pk: int, seq: int) -> Replayed | None:
    """The message `seq` in replay form, or None."""
    rows = _rows(conn, select(*_COLUMNS).where(MessageRow.thread_pk == pk, MessageRow.seq == seq))
    return rows[0] if rows else None


def opener(conn: Connection, pk: int, seq: int) -> int | None:
    """The seq of the unpinned user message that opened the turn message `seq` is in (the
    last at or before it), or None before the first one."""
    found = conn.execute(
        select(MessageRow.seq)
        .where(
            MessageRow.thread_pk == pk,
            MessageRow.seq <= seq,
            MessageRow.role == Role.USER.value,
            MessageRow.pinned.is_(False),
        )
        .order_by(MessageRow.seq.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def live(conn: Connection, pk: int, start: int) -> list[Replayed]:
    """The unpinned messages from `start` on, in seq order."""
    return _rows(
        conn,
        select(*_COLUMNS)
        .where(MessageRow.thread_pk == pk, MessageRow.seq >= start, MessageRow.pinned.is_(False))
        .order_by(MessageRow.seq),
    )


def leaving(conn: Connection, pk: int, from_seq: int, stop: int) -> list[Message]:
    """The unpinned messages `from_seq <= seq < stop` (what a compaction folds in)."""
    cols = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
    return [
        message_from_row(r)
        for r in blobs.fetch(
            conn,
            select(*cols)
            .where(
                MessageRow.thread_pk == pk,
                MessageRow.seq >= from_seq,
                MessageRow.seq < stop,
                MessageRow.pinned.is_(False),
            )
            .order_by(MessageRow.seq),
        )
    ]


def weights_at(conn: Connection, pk: int, seqs: list[int]) -> dict[int, int]:
    """`cum_before` of the messages with these seqs."""
    rows = conn.execute(
        select(MessageRow.seq, MessageRow.cum_before).where(
            MessageRow.thread_pk == pk, MessageRow.seq.in_(seqs)
        )
    ).all()
    return {seq: weight for seq, weight in rows}


def live_weight(conn: Connection, thread: ThreadState, start: int) -> int:
    """The summed window weight of the unpinned messages from `start` on."""
    if start > thread.last_seq:
        return 0
    before = conn.execute(
        select(MessageRow.cum_before).where(
            MessageRow.thread_pk == thread.pk, MessageRow.seq == start
        )
    ).scalar_one()
    return int(thread.cum_weight - before)


def cut_point(
    conn: Connection, thread: ThreadState, start: int, threshold: int, *, user_only: bool = False
) -> int | None:
    """The first boundary at or after `start` whose tail weighs at most the target.

    Prefers a user message (a whole turn); falls back to any boundary (an agent loop's step
    between tool-call groups), then to the last boundary (the smallest possible tail).
    Boundaries are unpinned, and unpinned messages have strictly increasing `cum_before`, so
    ordering by it alone walks the partial index `ix_messages_cut`.
    """
    base = select(MessageRow.seq).where(
        MessageRow.thread_pk == thread.pk,
        _BOUNDARY,
        MessageRow.cum_before >= threshold,
        MessageRow.seq >= start,
    )
    user = base.where(MessageRow.role == Role.USER.value)
    for stmt in (user,) if user_only else (user, base):
        seq = conn.execute(stmt.order_by(MessageRow.cum_before).limit(1)).scalar()
        if seq is not None:
            return int(seq)
    return None if user_only else last_boundary(conn, thread, start)


def next_boundary(
    conn: Connection, thread: ThreadState, threshold: int, *, before: int
) -> tuple[int, int] | None:
    """The first boundary whose `cum_before` reaches `threshold`, as (seq, cum_before), if it
    comes before seq `before` (where a chunk of a long fold may end): one indexed query."""
    row = conn.execute(
        select(MessageRow.seq, MessageRow.cum_before)
        .where(MessageRow.thread_pk == thread.pk, _BOUNDARY, MessageRow.cum_before >= threshold)
        .order_by(MessageRow.cum_before)
        .limit(1)
    ).first()
    return None if row is None or row[0] >= before else (int(row[0]), int(row[1]))


def last_boundary(conn: Connection, thread: ThreadState, start: int) -> int | None:
    """The last boundary at or after `start` (the smallest tail a cut can leave), or None."""
    last = conn.execute(
        select(MessageRow.seq)
        .where(MessageRow.thread_pk == thread.pk, _BOUNDARY)
        .order_by(MessageRow.cum_before.desc())
        .limit(1)
    ).scalar()
    return None if last is None or last < start else int(last)


def pending_calls(conn: Connection, pk: int) -> list[ToolCall]:
    """The tool calls that have no result yet, in the order they were made."""
    open_calls = conn.execute(
        select(ToolCallRow.call_seq, ToolCallRow.call_id)
        .where(ToolCallRow.thread_pk == pk, ToolCallRow.answer_seq.is_(None))
        .order_by(ToolCallRow.call_seq)
    ).all()
    if not open_calls:
        return []
    seqs = sorted({seq for seq, _ in open_calls})
    cols = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
    made = {
        m.seq: m
        for m in map(
            message_from_row,
            blobs.fetch(
                conn, select(*cols).where(MessageRow.thread_pk == pk, MessageRow.seq.in_(seqs))
            ),
        )
    }
    wanted = set(open_calls)
    return [call for seq in seqs for call in made[seq].tool_calls if (seq, call.id) in wanted]


def unanswered(conn: Connection, pk: int, limit: int = 20) -> list[str]:
    """Ids of tool calls that have no result yet, oldest first."""
    return list(
        conn.execute(
            select(ToolCallRow.call_id)
            .where(ToolCallRow.thread_pk == pk, ToolCallRow.answer_seq.is_(None))
            .order_by(ToolCallRow.call_seq)
            .limit(limit)
        ).scalars()
    )
