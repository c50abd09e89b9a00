"""Call rows (one per recorded model call: usage, cost, prediction) and the calibration
table (the last gap between reported and predicted prompt tokens, per prompt structure).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen
from sqlalchemy import Connection, RowMapping, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from contextkit.db.schema import (
    CalibrationRow,
    CallRow,
    MessageRow,
    ThreadRow,
    ToolCallRow,
    utcnow,
)
from contextkit.tokens.calibration import Calibration

__all__ = [
    "CallTotals",
    "LastCall",
    "add_call",
    "calibrate",
    "calibration",
    "correction",
    "cost_of",
    "for_message",
    "last_call",
    "prefix_breaks",
    "rows",
    "totals",
]


@frozen(kw_only=True)
class CallTotals:
    """A thread's calls summed up."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cache_hit_tokens: int
    cache_miss_tokens: int
    predicted_prompt_tokens: int
    predicted_cache_hit_tokens: int
    cost_usd: float
    interrupted_calls: int = 0
    counted_calls: int = 0


def cost_of(conn: Connection, pk: int, message_seq: int | None) -> float | None:
    """The stored cost of the call that produced message `message_seq`, if any."""
    return conn.execute(
        select(CallRow.cost_usd).where(CallRow.thread_pk == pk, CallRow.message_seq == message_seq)
    ).scalar()


def add_call(conn: Connection, pk: int, values: Mapping[str, Any]) -> int:
    """Store the thread's next call (numbered after its last); returns its number."""
    n = int(conn.execute(select(ThreadRow.call_count).where(ThreadRow.pk == pk)).scalar_one()) + 1
    conn.execute(insert(CallRow).values(thread_pk=pk, n=n, created_at=utcnow(), **values))
    conn.execute(update(ThreadRow).where(ThreadRow.pk == pk).values(call_count=n))
    return n


def calibrate(conn: Connection, model: str, structure: str, delta: int) -> None:
    """Remember the latest reported-minus-predicted gap for prompts of this structure.

    One upsert: concurrent first replies of a structure (many users on a fresh database)
    all store theirs, where an update-then-insert let all but one fail on the key.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = CalibrationRow.__table__
    stmt = dialect.insert(table).values(
        model=model, structure=structure, delta=delta, observations=1, updated_at=utcnow()
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["model", "structure"],
            set_={
                "delta": stmt.excluded.delta,
                "observations": table.c.observations + 1,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


def correction(conn: Connection, model: str, structure: str) -> int:
    """The gap last observed for prompts of this structure (0 if none yet)."""
    delta = conn.execute(
        select(CalibrationRow.delta).where(
            CalibrationRow.model == model, CalibrationRow.structure == structure
        )
    ).scalar_one_or_none()
    return int(delta or 0)


def calibration(conn: Connection, model: str) -> Calibration:
    """Every structure's last observed gap for `model`, as one value."""
    rows = conn.execute(
        select(CalibrationRow.structure, CalibrationRow.delta, CalibrationRow.observations).where(
            CalibrationRow.model == model
        )
    ).all()
    return Calibration({s: d for s, d, _ in rows}, sum(n for _, _, n in rows))


@frozen
class LastCall:
    """What the next prompt is compared with to tell whether it extends this call's prefix."""

    structure: str | None
    window_start: int | None
    tools_digest: str | None
    reasoning_gained: bool = False
    """An assistant message this call's prompt sent without its reasoning now replays it: a
    later message of its turn made a tool call (see `reasoning_gained`)."""


def last_call(conn: Connection, pk: int) -> LastCall | None:
    """The thread's most recent call (one indexed read of the primary key), or None."""
    row = conn.execute(
        select(CallRow.structure, CallRow.window_start, CallRow.tools_digest, CallRow.message_seq)
        .where(CallRow.thread_pk == pk)
        .order_by(CallRow.n.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    gained = row.message_seq is not None and reasoning_gained(conn, pk, row.message_seq)
    return LastCall(row.structure, row.window_start, row.tools_digest, gained)


def reasoning_gained(conn: Connection, pk: int, upto: int) -> bool:
    """Whether a message before `upto` of the turn open then is now sent in another form:
    the turn made its first tool call at or after `upto`, so an earlier assistant message
    of it that was sent stripped now replays its reasoning; or the turn now goes as a
    plain-text transcript (a tool turn with an assistant message without reasoning, in
    thinking mode) and did not then. The only changes a stored message's form ever gets."""
    user = (MessageRow.role == "user") & MessageRow.pinned.is_(False)
    in_thread = MessageRow.thread_pk == pk
    start = conn.execute(
        select(func.max(MessageRow.seq)).where(in_thread, MessageRow.seq < upto, user)
    ).scalar()
    start = int(start or 1)
    end = conn.execute(
        select(func.min(MessageRow.seq)).where(in_thread, MessageRow.seq > start, user)
    ).scalar()
    stop = end if end is not None else 2**31 - 1
    first_call = conn.execute(
        select(func.min(ToolCallRow.call_seq)).where(
            ToolCallRow.thread_pk == pk, ToolCallRow.call_seq >= start, ToolCallRow.call_seq < stop
        )
    ).scalar()
    if first_call is None:
        return False
    assistant = in_thread & (MessageRow.role == "assistant") & MessageRow.pinned.is_(False)
    first_bare = conn.execute(
        select(func.min(MessageRow.seq)).where(
            assistant,
            MessageRow.seq >= start,
            MessageRow.seq < stop,
            MessageRow.reasoning_content.is_(None),
        )
    ).scalar()
    if first_bare is not None:  # a transcript now; was it one then?
        return not (first_call < upto and first_bare < upto) and upto > start + 1
    if first_call < upto:
        return False
    kept = conn.execute(
        select(MessageRow.seq)
        .where(
            assistant,
            MessageRow.seq >= start,
            MessageRow.seq < upto,
            MessageRow.reasoning_kept.is_(True),
        )
        .limit(1)
    ).first()
    return kept is not None


def prefix_breaks(conn: Connection, pk: int) -> dict[str, int]:
    """How many of a thread's calls broke the cached prefix, by cause."""
    rows = conn.execute(
        select(CallRow.prefix_break, func.count())
        .where(CallRow.thread_pk == pk, CallRow.prefix_break.is_not(None))
        .group_by(CallRow.prefix_break)
    ).all()
    return {str(cause): int(n) for cause, n in sorted(rows)}


def totals(conn: Connection, pk: int) -> CallTotals:
    """A thread's calls summed in one aggregate query."""
    agg: Any = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(CallRow.prompt_tokens), 0),
            func.coalesce(func.sum(CallRow.completion_tokens), 0),
            func.coalesce(func.sum(CallRow.reasoning_tokens), 0),
            func.coalesce(func.sum(CallRow.cache_hit_tokens), 0),
            func.coalesce(func.sum(CallRow.cache_miss_tokens), 0),
            func.coalesce(func.sum(CallRow.predicted_prompt_tokens), 0),
            func.coalesce(func.sum(CallRow.predicted_cache_hit_tokens), 0),
            func.coalesce(func.sum(CallRow.cost_usd), 0.0),
            func.count(case((CallRow.finish_reason == "interrupted", 1))),
            func.count(case((CallRow.usage_source == "counted", 1))),
        ).where(CallRow.thread_pk == pk)
    ).one()
    return CallTotals(
        calls=agg[0],
        prompt_tokens=int(agg[1]),
        completion_tokens=int(agg[2]),
        reasoning_tokens=int(agg[3]),
        cache_hit_tokens=int(agg[4]),
        cache_miss_tokens=int(agg[5]),
        predicted_prompt_tokens=int(agg[6]),
        predicted_cache_hit_tokens=int(agg[7]),
        cost_usd=float(agg[8]),
        interrupted_calls=int(agg[9]),
        counted_calls=int(agg[10]),
    )


def rows(conn: Connection, pk: int) -> list[RowMapping]:
    """Every call row of a thread as stored (for export)."""
    return list(
        conn.execute(select(CallRow).where(CallRow.thread_pk == pk).order_by(CallRow.n)).mappings()
    )


def for_message(conn: Connection, pk: int, message_seq: int) -> RowMapping | None:
    """The call row that produced message `message_seq`, or None (not a recorded reply)."""
    return (
        conn.execute(
            select(CallRow).where(CallRow.thread_pk == pk, CallRow.message_seq == message_seq)
        )
        .mappings()
        .first()
    )
