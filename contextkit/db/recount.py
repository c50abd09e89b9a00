"""Recomputing stored bookkeeping: when a turn turns into a tool-call turn after some of its
assistant messages were written, when a thread changes model, and after a schema upgrade
that added bookkeeping columns to existing rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from contextkit.accounting import TurnState, reaccount
from contextkit.db.blobs import fetch
from contextkit.db.codec import MESSAGE_COLUMNS, message_from_row
from contextkit.db.schema import MESSAGES, MessageRow, ThreadRow, ToolCallRow
from contextkit.errors import UnknownModelError
from contextkit.models import ModelSpec, get_model, spec_for

__all__ = ["recount", "recount_all"]


def recount(conn: Connection, thread_pk: int, spec: ModelSpec, *, from_seq: int = 1) -> TurnState:
    """Recompute the bookkeeping of messages `from_seq`.. (a turn start, or 1); returns it."""
    cols = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
    rows = fetch(
        conn,
        select(*cols, MessageRow.cum_before)
        .where(MessageRow.thread_pk == thread_pk, MessageRow.seq >= from_seq)
        .order_by(MessageRow.seq),
    )
    state = TurnState()
    if from_seq > 1:
        first = conn.execute(
            select(MessageRow.cum_before).where(
                MessageRow.thread_pk == thread_pk, MessageRow.seq == from_seq
            )
        ).scalar_one()
        open_calls = conn.execute(
            select(ToolCallRow.call_id).where(
                ToolCallRow.thread_pk == thread_pk,
                ToolCallRow.call_seq < from_seq,
                (ToolCallRow.answer_seq.is_(None)) | (ToolCallRow.answer_seq >= from_seq),
            )
        ).all()
        before_total = conn.execute(
            select(ThreadRow.total_tokens).where(ThreadRow.pk == thread_pk)
        ).scalar_one() - sum(r["token_count"] or 0 for r in rows)
        state = TurnState(cum=first, pending=len(open_calls), total=before_total)
    messages = [message_from_row(r) for r in rows]
    updates = [{"b_seq": seq, **entry.columns()} for seq, entry in reaccount(messages, spec, state)]
    _write_entries(conn, thread_pk, updates)
    conn.execute(
        update(ThreadRow)
        .where(ThreadRow.pk == thread_pk)
        .values(
            cum_weight=state.cum,
            turn_seq=state.turn_seq if messages else 0,
            turn_tool_calls=state.turn_tool_calls,
            pending_calls=state.pending,
            total_tokens=state.total,
        )
    )
    return state


def _write_entries(conn: Connection, thread_pk: int, updates: Sequence[dict[str, Any]]) -> None:
    if not updates:
        return
    stmt = (
        update(MESSAGES)
        .where(MESSAGES.c.thread_pk == thread_pk)
        .where(MESSAGES.c.seq == bindparam("b_seq"))
    )
    conn.execute(stmt, list(updates))


def recount_all(conn: Connection, *, only_missing: bool = False) -> int:
    """Fill the bookkeeping of stored threads; returns how many were recounted.

    `only_missing`: just the threads whose messages have no window weight yet (what a schema
    upgrade from before the bookkeeping columns leaves). Threads of models no longer
    registered count as DeepSeek V4.
    """
    stmt = select(ThreadRow.pk, ThreadRow.model)
    if only_missing:
        stmt = stmt.where(ThreadRow.last_seq > 0, ThreadRow.cum_weight == 0)
    done = 0
    for pk, model in conn.execute(stmt).all():
        try:
            spec = spec_for(model)
        except UnknownModelError:
            spec = get_model("deepseek-v4-flash")
        recount(conn, pk, spec)
        done += 1
    return done
