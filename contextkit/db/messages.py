"""Message rows: the append path (seqs, bookkeeping, tool-call pairing, idempotency keys,
image blobs, all in the caller's transaction) and paged reads.
"""

from __future__ import annotations

from typing import Any

import attrs
from attrs import define, field
from sqlalchemy import Connection, func, insert, select, update

from contextkit import accounting
from contextkit.db import blobs, search
from contextkit.db.codec import MESSAGE_COLUMNS, message_from_row, message_to_row
from contextkit.db.recount import recount
from contextkit.db.schema import MessageRow, ToolCallRow, utcnow
from contextkit.db.threads import ThreadState, save_turn
from contextkit.errors import ValidationError
from contextkit.models import spec_for
from contextkit.types import Message, Role, check_id

__all__ = [
    "COLUMNS",
    "Pending",
    "by_key",
    "check_same",
    "idempotency_keys",
    "insert_messages",
    "page",
    "pending",
    "turn_reply",
]

COLUMNS = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
_INSERT_MESSAGES = insert(MessageRow)
_INSERT_CALLS = insert(ToolCallRow)


@define
class Pending:
    """A message checked for storing, with its idempotency key and its column values."""

    message: Message
    key: str | None
    row: dict[str, Any] = field(factory=dict)


def pending(message: object, key: object, pinned: object) -> Pending:
    """A message checked for storing: parsed, pinned only if pinnable, with a valid key."""
    if not isinstance(pinned, bool):
        raise ValidationError(f"pinned must be True or False, got {pinned!r:.40}")
    parsed = Message.parse(message)
    if pinned and not parsed.pinned:
        parsed = attrs.evolve(parsed, pinned=True)
    if parsed.pinned and (parsed.role is Role.TOOL or parsed.tool_calls):
        raise ValidationError(
            "tool calls and tool results cannot be pinned: a call and its results must "
            "stay together in the window; pin a plain user, system or assistant message"
        )
    if key is not None:
        key = check_id(key, "idempotency_key")
    return Pending(parsed, key, message_to_row(parsed))


def insert_messages(conn: Connection, thread: ThreadState, items: list[Pending]) -> list[Message]:
    """Store `items` after the thread's last message; `thread` was read locked in `conn`.

    A keyed item whose key is already stored returns the stored message (same content) or
    raises `ValidationError` (different content).
    """
    pk = thread.pk
    seq = thread.last_seq
    spec = spec_for(thread.model)
    state = thread.turn()
    flip: tuple[int, int] | None = None
    images: list[dict[str, Any]] = []
    now = utcnow()
    out: list[Message] = []
    rows: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    answered: list[tuple[int, str, int]] = []
    by_key_here: dict[str, Message] = {}
    open_calls = _OpenCalls(conn, pk)
    for item in items:
        if item.key is not None:
            existing = by_key_here.get(item.key) or by_key(conn, pk, item.key)
            if existing is not None:
                check_same(existing, item)
                out.append(existing)
                continue
        seq += 1
        msg = item.message
        if msg.role is Role.TOOL:
            assert msg.tool_call_id is not None
            answered.append((open_calls.answer(msg.tool_call_id), msg.tool_call_id, seq))
        for call in msg.tool_calls:
            open_calls.add(call.id, seq)
            calls.append({"thread_pk": pk, "call_seq": seq, "call_id": call.id})
        if flip is None and accounting.needs_flip(msg, state):
            flip = (max(state.turn_seq, 1), seq)
        entry = accounting.account(msg, spec, state, seq)
        parts, found = blobs.extract(item.row.get("parts"), spec.image_limits)
        images.extend(found)
        rows.append(
            {
                **item.row,
                **entry.columns(),
                "parts": parts,
                "thread_pk": pk,
                "seq": seq,
                "idempotency_key": item.key,
                "created_at": msg.created_at or now,
            }
        )
        stored = attrs.evolve(
            msg, seq=seq, created_at=msg.created_at or now, token_count=entry.token_count
        )
        if item.key is not None:
            by_key_here[item.key] = stored
        out.append(stored)
    if not rows:
        return out
    blobs.save(conn, images)
    conn.execute(_INSERT_MESSAGES, rows)
    search.index_messages(conn, pk, rows)
    if calls:
        conn.execute(_INSERT_CALLS, calls)
    for call_seq, call_id, answer_seq in answered:
        conn.execute(
            update(ToolCallRow)
            .where(
                ToolCallRow.thread_pk == pk,
                ToolCallRow.call_seq == call_seq,
                ToolCallRow.call_id == call_id,
            )
            .values(answer_seq=answer_seq)
        )
    save_turn(conn, pk, seq, state, now)
    if flip is not None and _stripped_in(conn, pk, *flip):
        recount(conn, pk, spec, from_seq=flip[0])
        counts = _token_counts(conn, pk, [m.seq for m in out if m.seq])
        out = [attrs.evolve(m, token_count=counts.get(m.seq or 0)) for m in out]
    return out


def page(conn: Connection, pk: int, after: int, before: int | None, limit: int) -> list[Message]:
    """Messages with `after < seq < before`, in seq order, at most `limit`."""
    stmt = (
        select(*COLUMNS)
        .where(MessageRow.thread_pk == pk, MessageRow.seq > after)
        .order_by(MessageRow.seq)
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(MessageRow.seq < before)
    return [message_from_row(r) for r in blobs.fetch(conn, stmt)]


def by_key(conn: Connection, pk: int, key: str) -> Message | None:
    """The message stored with this idempotency key, or None."""
    found = blobs.fetch(
        conn,
        select(*COLUMNS).where(MessageRow.thread_pk == pk, MessageRow.idempotency_key == key),
    )
    return message_from_row(found[0]) if found else None


def check_same(stored: Message, item: Pending) -> None:
    """A keyed message met again must be the one stored under its key (a retry)."""
    if message_to_row(stored) != item.row:
        raise ValidationError(
            f"idempotency_key {item.key!r} was already used for a different message (seq "
            f"{stored.seq}); use a new key for a new message"
        )


def idempotency_keys(conn: Connection, pk: int) -> dict[int, str]:
    """Seq -> idempotency key of every keyed message of a thread."""
    rows = conn.execute(
        select(MessageRow.seq, MessageRow.idempotency_key).where(
            MessageRow.thread_pk == pk, MessageRow.idempotency_key.is_not(None)
        )
    ).all()
    return {seq: key for seq, key in rows if key is not None}


def _stripped_in(conn: Connection, pk: int, start: int, stop: int) -> bool:
    """Whether an assistant message in [start, stop) has reasoning its prompt omits."""
    return bool(
        conn.execute(
            select(func.count())
            .select_from(MessageRow)
            .where(
                MessageRow.thread_pk == pk,
                MessageRow.seq >= start,
                MessageRow.seq < stop,
                MessageRow.role == "assistant",
                MessageRow.reasoning_content.is_not(None),
                MessageRow.reasoning_kept.is_(False),
                MessageRow.pinned.is_(False),
            )
        ).scalar_one()
    )


def _token_counts(conn: Connection, pk: int, seqs: list[int]) -> dict[int, int | None]:
    rows = conn.execute(
        select(MessageRow.seq, MessageRow.token_count).where(
            MessageRow.thread_pk == pk, MessageRow.seq.in_(seqs)
        )
    ).all()
    return {seq: count for seq, count in rows}


class _OpenCalls:
    """Tool calls awaiting an answer, read from the database on demand and kept current."""

    def __init__(self, conn: Connection, thread_pk: int) -> None:
        self._conn = conn
        self._pk = thread_pk
        self._open: dict[str, int | None] = {}

    def _lookup(self, call_id: str) -> int | None:
        if call_id not in self._open:
            self._open[call_id] = self._conn.execute(
                select(ToolCallRow.call_seq)
                .where(
                    ToolCallRow.thread_pk == self._pk,
                    ToolCallRow.call_id == call_id,
                    ToolCallRow.answer_seq.is_(None),
                )
                .order_by(ToolCallRow.call_seq.desc())
                .limit(1)
            ).scalar_one_or_none()
        return self._open[call_id]

    def add(self, call_id: str, seq: int) -> None:
        if self._lookup(call_id) is not None:
            raise ValidationError(
                f"tool call id {call_id!r} is already pending an answer in this thread; "
                "tool call ids must be unique among unanswered calls"
            )
        self._open[call_id] = seq

    def answer(self, call_id: str) -> int:
        call_seq = self._lookup(call_id)
        if call_seq is None:
            raise ValidationError(
                f"tool message answers tool_call_id {call_id!r}, but no unanswered tool call "
                "with that id exists in this thread; append the assistant message with its "
                "tool_calls first, and answer each call once"
            )
        self._open[call_id] = None
        return call_seq


def turn_reply(conn: Connection, pk: int, seq: int, *, final: bool) -> Message | None:
    """The assistant reply to user message `seq`: the next message (`final=False`), or the
    turn's last assistant message if it made no tool calls (`final=True`); else None."""
    if final:
        turn_end = (
            select(func.min(MessageRow.seq))
            .where(
                MessageRow.thread_pk == pk,
                MessageRow.seq > seq,
                MessageRow.role == Role.USER.value,
                MessageRow.pinned.is_(False),
            )
            .scalar_subquery()
        )
        last = conn.execute(
            select(func.max(MessageRow.seq)).where(
                MessageRow.thread_pk == pk,
                MessageRow.seq > seq,
                MessageRow.seq < func.coalesce(turn_end, 2**31 - 1),
                MessageRow.role == Role.ASSISTANT.value,
            )
        ).scalar()
        found = page(conn, pk, last - 1, last + 1, 1) if last is not None else []
    else:
        found = page(conn, pk, seq, seq + 2, 1)
    if not found or found[0].role is not Role.ASSISTANT:
        return None
    if final and found[0].tool_calls:
        return None
    return found[0]
