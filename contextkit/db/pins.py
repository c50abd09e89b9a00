"""Pinning a stored message after the fact, or unpinning it, with its bookkeeping.

A pinned message stays in every prompt right after the system prompt and counts in the
budget; it has no window weight, is no cut point, never opens a turn and never replays its
reasoning (see `contextkit.accounting`). Changing the flag therefore changes the bookkeeping
of the turns around the message: they are recomputed from the turn before it to the next
turn start (a pinned user message joins its turn to the previous one; an unpinned one
splits them), and every later message's `cum_before` moves by the change in weight. The
cost is that of a turn or two, not of the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from sqlalchemy import Connection, bindparam, func, select, update

from contextkit.accounting import PAD, Entry, TurnState, reaccount
from contextkit.counting import message_tokens
from contextkit.db import blobs
from contextkit.db.codec import MESSAGE_COLUMNS, message_from_row
from contextkit.db.schema import MESSAGES, MessageRow, ThreadRow, ToolCallRow
from contextkit.db.threads import ThreadRef, locked
from contextkit.errors import ContextOverflowError, NotFound, ValidationError
from contextkit.models import ModelSpec, spec_for
from contextkit.types import Message, Role

__all__ = ["set_pinned"]

_COLUMNS = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]


def _turn_start(conn: Connection, pk: int, seq: int, *, before: bool) -> int | None:
    """The nearest turn start (an unpinned user message) before or after `seq`, or None."""
    stmt = select(MessageRow.seq).where(
        MessageRow.thread_pk == pk,
        MessageRow.role == Role.USER.value,
        MessageRow.pinned.is_(False),
    )
    if before:
        stmt = stmt.where(MessageRow.seq < seq).order_by(MessageRow.seq.desc())
    else:
        stmt = stmt.where(MessageRow.seq > seq).order_by(MessageRow.seq)
    found = conn.execute(stmt.limit(1)).scalar()
    return None if found is None else int(found)


def set_pinned(conn: Connection, *, ref: ThreadRef, seq: int, pinned: bool) -> Message:
    """Pin (or unpin) message `seq` of the thread, in the caller's write transaction.

    `NotFound` if there is no such message; `ValidationError` for a tool call or a tool
    result (a call and its results stay together in the window); `ContextOverflowError` if
    the system prompt and the pinned messages would no longer fit the thread's budget.
    Returns the message as now stored; one already in that state is left as it is.
    """
    state = locked(conn, ref)
    pk = state.pk
    found = blobs.fetch(
        conn, select(*_COLUMNS).where(MessageRow.thread_pk == pk, MessageRow.seq == seq)
    )
    if not found:
        raise NotFound(f"thread {ref.id!r} has no message {seq}")
    message = message_from_row(found[0])
    if message.pinned == pinned:
        return message
    if message.role is Role.TOOL or message.tool_calls:
        kind = "result" if message.role is Role.TOOL else "call"
        raise ValidationError(
            f"message {seq} is a tool {kind}: tool calls and their results cannot be pinned "
            "(they stay together in the window); pin a plain user, system or assistant message"
        )
    spec = spec_for(state.model)
    first = _turn_start(conn, pk, seq, before=True) or 1
    after = _turn_start(conn, pk, seq, before=False)
    stop = after if after is not None else state.last_seq + 1
    rows = blobs.fetch(
        conn,
        select(*_COLUMNS, MessageRow.cum_before)
        .where(MessageRow.thread_pk == pk, MessageRow.seq >= first, MessageRow.seq < stop)
        .order_by(MessageRow.seq),
    )
    run = [message_from_row(r) for r in rows]
    run = [attrs.evolve(m, pinned=pinned) if m.seq == seq else m for m in run]
    old_end = state.cum_weight if after is None else _cum_before(conn, pk, stop)
    turn = TurnState(cum=rows[0]["cum_before"], pending=_open_at(conn, pk, first))
    entries = reaccount(run, spec, turn)
    _write(conn, pk, entries, seq, pinned)
    shift = turn.cum - old_end
    if shift and after is not None:
        conn.execute(
            update(MessageRow)
            .where(MessageRow.thread_pk == pk, MessageRow.seq >= stop)
            .values(cum_before=MessageRow.cum_before + shift)
        )
    old_tokens = sum(r["token_count"] or 0 for r in rows)
    values: dict[str, Any] = {
        "cum_weight": state.cum_weight + shift,
        "total_tokens": state.total_tokens + sum(e.token_count for _, e in entries) - old_tokens,
    }
    if after is None:  # the run reached the current turn
        values.update(turn_seq=turn.turn_seq, turn_tool_calls=turn.turn_tool_calls)
    conn.execute(update(ThreadRow).where(ThreadRow.pk == pk).values(**values))
    if pinned:
        _check_fits(conn, pk, state.system, state.max_context_tokens, spec)
    tokens = next(entry.token_count for s, entry in entries if s == seq)
    return attrs.evolve(message, pinned=pinned, token_count=tokens)


def _cum_before(conn: Connection, pk: int, seq: int) -> int:
    return int(
        conn.execute(
            select(MessageRow.cum_before).where(MessageRow.thread_pk == pk, MessageRow.seq == seq)
        ).scalar_one()
    )


def _open_at(conn: Connection, pk: int, seq: int) -> int:
    """How many tool calls made before `seq` were still unanswered at `seq`."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(ToolCallRow)
            .where(
                ToolCallRow.thread_pk == pk,
                ToolCallRow.call_seq < seq,
                ToolCallRow.answer_seq.is_(None) | (ToolCallRow.answer_seq >= seq),
            )
        ).scalar_one()
    )


def _write(
    conn: Connection, pk: int, entries: Sequence[tuple[int, Entry]], seq: int, pinned: bool
) -> None:
    stmt = (
        update(MESSAGES)
        .where(MESSAGES.c.thread_pk == pk)
        .where(MESSAGES.c.seq == bindparam("b_seq"))
    )
    conn.execute(stmt, [{"b_seq": s, **entry.columns()} for s, entry in entries])
    conn.execute(
        update(MessageRow)
        .where(MessageRow.thread_pk == pk, MessageRow.seq == seq)
        .values(pinned=pinned)
    )


def _check_fits(
    conn: Connection, pk: int, system: str | None, budget: int, spec: ModelSpec
) -> None:
    """The system prompt and the pinned messages must leave room in the budget."""
    pinned: Any = conn.execute(
        select(func.coalesce(func.sum(MessageRow.token_count + PAD), 0)).where(
            MessageRow.thread_pk == pk, MessageRow.pinned.is_(True)
        )
    ).scalar_one()
    fixed = int(pinned)
    if system:
        fixed += message_tokens({"role": "system", "content": system}, spec) + PAD
    if fixed >= budget:
        raise ContextOverflowError(
            f"the system prompt and the pinned messages would take {fixed:,} of the thread's "
            f"{budget:,} tokens, leaving no room for the conversation; unpin a message or "
            "raise max_context_tokens",
            needed=fixed,
            budget=budget,
        )
