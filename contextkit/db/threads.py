"""Thread rows: get-or-create, the locked read every operation starts with, settings
changes, listing and deletion. A thread is named by (owner, id): every lookup filters by owner.

Rows leave this module as `ThreadState` values, so no caller indexes a row mapping or
reaches into another module's privates to learn a thread's bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen
from sqlalchemy import Connection, RowMapping, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from contextkit.accounting import TurnState
from contextkit.db import blobs
from contextkit.db.recount import recount
from contextkit.db.schema import (
    THREADS,
    CallRow,
    MessageRow,
    SearchDocRow,
    SummaryRow,
    ThreadRow,
    ToolCallRow,
    utcnow,
)
from contextkit.errors import NotFound, ValidationError
from contextkit.models import spec_for
from contextkit.types import ThreadInfo

__all__ = [
    "ThreadRef",
    "ThreadState",
    "by_id",
    "by_id_any_owner",
    "check_unchanged",
    "delete_thread",
    "get_or_create",
    "locked",
    "move_cut",
    "page",
    "save_turn",
    "update_settings",
]


@frozen
class ThreadRef:
    """Which thread an operation acts on, as whom: its database, primary key, id and owner.

    A primary key can be reused after a delete, so every read checks the id too.
    """

    engine: Engine = field(eq=False, repr=False)
    pk: int
    id: str
    owner: str


@frozen(kw_only=True)
class ThreadState:
    """A thread row as read: settings, size and the bookkeeping appends advance."""

    pk: int
    id: str
    owner: str
    model: str
    system: str | None
    max_context_tokens: int
    metadata: Mapping[str, Any]
    last_seq: int
    total_tokens: int
    created_at: datetime
    updated_at: datetime
    window_start: int
    cum_weight: int
    turn_seq: int
    turn_tool_calls: bool
    pending_calls: int
    call_count: int
    summary_n: int

    @classmethod
    def from_row(cls, row: RowMapping) -> ThreadState:
        return cls(
            pk=row["pk"],
            id=row["id"],
            owner=row["owner"],
            model=row["model"],
            system=row["system"],
            max_context_tokens=row["max_context_tokens"],
            metadata=row["metadata"] or {},
            last_seq=row["last_seq"],
            total_tokens=row["total_tokens"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            window_start=row["window_start"],
            cum_weight=row["cum_weight"],
            turn_seq=row["turn_seq"],
            turn_tool_calls=bool(row["turn_tool_calls"]),
            pending_calls=row["pending_calls"],
            call_count=row["call_count"],
            summary_n=row["summary_n"],
        )

    def info(self) -> ThreadInfo:
        return ThreadInfo(
            id=self.id,
            owner=self.owner,
            model=self.model,
            system=self.system,
            max_context_tokens=self.max_context_tokens,
            metadata=self.metadata,
            message_count=self.last_seq,
            total_tokens=self.total_tokens,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def turn(self) -> TurnState:
        """The running state the next appended message is accounted against."""
        return TurnState(
            cum=self.cum_weight,
            turn_seq=self.turn_seq,
            turn_tool_calls=self.turn_tool_calls,
            pending=self.pending_calls,
            total=self.total_tokens,
        )


def _writing(conn: Connection) -> bool:
    return bool(conn.get_execution_options().get("contextkit_write"))


def by_id(conn: Connection, id: str, owner: str) -> ThreadState | None:
    """The thread `id` of `owner` (locked in a write transaction), or None.

    Ids are unique per owner: another owner's thread of the same id is another thread.
    """
    stmt = select(ThreadRow).where(ThreadRow.owner == owner, ThreadRow.id == id)
    if _writing(conn):
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().one_or_none()
    return None if row is None else ThreadState.from_row(row)


def by_id_any_owner(conn: Connection, id: str) -> list[ThreadState]:
    """Every owner's thread `id` (operators' tools), oldest first."""
    stmt = select(ThreadRow).where(ThreadRow.id == id).order_by(ThreadRow.pk)
    return [ThreadState.from_row(r) for r in conn.execute(stmt).mappings()]


_BY_PK = select(ThreadRow).where(ThreadRow.pk == bindparam("pk"))
_BY_PK_LOCKED = _BY_PK.with_for_update()
"""Built once: the hot path skips building and cache-keying the statement on every call."""


def locked(conn: Connection, ref: ThreadRef) -> ThreadState:
    """Re-read the thread row (locking it in a write transaction); `NotFound` once deleted."""
    stmt = _BY_PK_LOCKED if _writing(conn) else _BY_PK
    row = conn.execute(stmt, {"pk": ref.pk}).mappings().one_or_none()
    # a reused primary key is another thread, whatever its id and owner
    if row is None or row["id"] != ref.id or row["owner"] != ref.owner:
        raise NotFound(f"thread {ref.id!r} was deleted")
    return ThreadState.from_row(row)


def get_or_create(conn: Connection, id: str, owner: str, values: Mapping[str, Any]) -> ThreadState:
    """The thread `id` of `owner`, created with `values` if it does not exist; for an
    existing thread `values` must match the stored settings (`check_unchanged`)."""
    state = by_id(conn, id, owner)
    if state is None:
        model = values.get("model")
        if model is None:
            raise ValidationError(
                f"thread {id!r} does not exist; pass model= (e.g. 'deepseek-v4-flash') to create it"
            )
        now = utcnow()
        new = {
            "id": id,
            "owner": owner,
            "model": model,
            "system": values.get("system"),
            # the caller validated `model` (and warned about a retired id) already
            "max_context_tokens": values.get("max_context_tokens")
            or spec_for(model).default_context_tokens,
            "metadata": values.get("metadata", {}),
            "last_seq": 0,
            "total_tokens": 0,
            "created_at": now,
            "updated_at": now,
        }
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
        conn.execute(insert(THREADS).values(**new).on_conflict_do_nothing())
        state = by_id(conn, id, owner)
        assert state is not None
    check_unchanged(state, values)
    return state


def _stored(state: ThreadState) -> dict[str, Any]:
    return {
        "model": state.model,
        "system": state.system,
        "max_context_tokens": state.max_context_tokens,
        "metadata": state.metadata,
    }


def check_unchanged(state: ThreadState, values: Mapping[str, Any]) -> None:
    """Refuse settings that differ from an existing thread's: get-or-create never changes
    a thread behind its other users' backs (`Thread.update` does, on purpose)."""
    stored = _stored(state)
    changed = [k for k, v in values.items() if stored[k] != v]
    if changed:
        shown = ", ".join(f"{k}={stored[k]!r:.60} (given {values[k]!r:.60})" for k in changed)
        raise ValidationError(
            f"thread {state.id!r} exists with other settings: {shown}. store.thread() only "
            f"opens it: call thread.update({', '.join(f'{k}=...' for k in changed)}) to change "
            "them, or leave them out to open the thread as it is"
        )


def update_settings(conn: Connection, state: ThreadState, values: Mapping[str, Any]) -> ThreadState:
    """Store changed settings; a new model recounts the thread in its tokenizer.

    Runs inside the caller's write transaction, so a failure changes nothing.
    """
    from_state = _stored(state)
    changed = {k: v for k, v in values.items() if from_state[k] != v}
    if not changed:
        return state
    spec = spec_for(changed.get("model", state.model))
    budget = changed.get("max_context_tokens", state.max_context_tokens)
    if budget > spec.context_window:
        raise ValidationError(
            f"max_context_tokens {budget:,} exceeds {spec.name}'s window "
            f"({spec.context_window:,}); lower it together with the model change"
        )
    conn.execute(
        THREADS.update().where(THREADS.c.pk == state.pk).values(**changed, updated_at=utcnow())
    )
    if "model" in changed:
        recount(conn, state.pk, spec)
    new = by_id(conn, state.id, state.owner)
    assert new is not None
    return new


def page(
    conn: Connection,
    *,
    owner: str | None,
    cursor: tuple[Any, int] | None,
    limit: int,
) -> list[ThreadState]:
    """One page of threads, most recently updated first (`owner=None`: every owner's)."""
    stmt = select(ThreadRow).order_by(ThreadRow.updated_at.desc(), ThreadRow.pk.desc())
    if owner is not None:
        stmt = stmt.where(ThreadRow.owner == owner)
    if cursor is not None:
        at, pk = cursor
        stmt = stmt.where(
            (ThreadRow.updated_at < at) | ((ThreadRow.updated_at == at) & (ThreadRow.pk < pk))
        )
    return [ThreadState.from_row(r) for r in conn.execute(stmt.limit(limit)).mappings()]


def delete_thread(conn: Connection, ref: ThreadRef) -> None:
    """Delete the thread and everything stored with it (after the owner check), its images
    included unless another thread shows them too."""
    locked(conn, ref)
    images = blobs.referenced_by(conn, ref.pk)
    for table in (SearchDocRow, ToolCallRow, CallRow, SummaryRow, MessageRow):
        conn.execute(delete(table).where(table.thread_pk == ref.pk))
    conn.execute(delete(ThreadRow).where(ThreadRow.pk == ref.pk))
    blobs.collect(conn, images)  # its images no other thread shows


_TURN_COLUMNS = (
    "last_seq",
    "updated_at",
    "cum_weight",
    "turn_seq",
    "turn_tool_calls",
    "pending_calls",
    "total_tokens",
)
_SAVE_TURN = (
    update(ThreadRow)
    .where(ThreadRow.pk == bindparam("b_pk"))
    .values({c: bindparam(f"b_{c}") for c in _TURN_COLUMNS})
)


def save_turn(conn: Connection, pk: int, last_seq: int, state: TurnState, now: datetime) -> None:
    """Store the running state after an append (one prebuilt statement)."""
    conn.execute(
        _SAVE_TURN,
        {
            "b_pk": pk,
            "b_last_seq": last_seq,
            "b_updated_at": now,
            "b_cum_weight": state.cum,
            "b_turn_seq": state.turn_seq,
            "b_turn_tool_calls": state.turn_tool_calls,
            "b_pending_calls": state.pending,
            "b_total_tokens": state.total,
        },
    )


def move_cut(conn: Connection, pk: int, start: int) -> None:
    """Persist a moved cut point; it only ever moves forward."""
    conn.execute(
        update(ThreadRow)
        .where(ThreadRow.pk == pk, ThreadRow.window_start < start)
        .values(window_start=start)
    )
