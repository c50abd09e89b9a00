"""The relational schema, as typed SQLAlchemy 2.0 declarative classes.

This module describes the tables for queries; the tables themselves are created and
changed only by the Alembic migrations in `migrations/` (kept in step by a test that
compares the migrated database with this metadata).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contextkit.types import canonical_json

__all__ = [
    "BLOBS",
    "MESSAGES",
    "THREADS",
    "Base",
    "BlobRow",
    "CalibrationRow",
    "CallRow",
    "CanonicalJSON",
    "MessageRow",
    "SearchDocRow",
    "SummaryRow",
    "ThreadRow",
    "ToolCallRow",
    "search_objects",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CanonicalJSON(TypeDecorator[Any]):
    """JSON kept as text in one canonical form, so both databases return the same bytes.

    (PostgreSQL's jsonb would reorder keys and break byte-identical prompts.)
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and returned timezone-aware on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        if value is not None and dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ThreadRow(Base):
    """A conversation; `last_seq` hands out message seqs under the row's write lock."""

    __tablename__ = "threads"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(255))
    """Unique per owner, not globally (revision 0007): (id, owner) names a thread."""
    owner: Mapped[str] = mapped_column(String(255), default="")
    model: Mapped[str] = mapped_column(String(128))
    system: Mapped[str | None] = mapped_column(Text)
    max_context_tokens: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", CanonicalJSON, default=dict)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    window_start: Mapped[int] = mapped_column(Integer, server_default="1")
    """First seq of the live window; moves forward only, in large steps."""
    cum_weight: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Sum of the window weights of all unpinned messages (see `MessageRow.cum_before`)."""
    turn_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    """Seq of the user message that opened the current turn (0: none yet)."""
    turn_tool_calls: Mapped[bool] = mapped_column(Boolean, server_default=false())
    pending_calls: Mapped[int] = mapped_column(Integer, server_default="0")
    call_count: Mapped[int] = mapped_column(Integer, server_default="0")
    summary_n: Mapped[int] = mapped_column(Integer, server_default="0")
    """Number of the summary in force (0: none); the optimistic check of compaction."""

    __table_args__ = (
        Index(None, "owner", "updated_at"),
        # id first: the operators' lookup by id alone uses it too
        UniqueConstraint("id", "owner"),
    )


class MessageRow(Base):
    """One stored message; (thread_pk, seq) is both the identity and the hot-path index."""

    __tablename__ = "messages"

    thread_pk: Mapped[int] = mapped_column(
        ForeignKey("threads.pk", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[list[Any] | None] = mapped_column(CanonicalJSON)
    tool_calls: Mapped[list[Any] | None] = mapped_column(CanonicalJSON)
    tool_call_id: Mapped[str | None] = mapped_column(String(255))
    reasoning_content: Mapped[str | None] = mapped_column(Text)
    token_count: Mapped[int | None] = mapped_column(Integer)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reasoning_kept: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """The replay form, fixed at write time: does the prompt carry `reasoning_content`."""
    lead: Mapped[str | None] = mapped_column(String(64))
    """Leading whitespace context of the rendered message (`MessageShape.lead`), if any."""
    cum_before: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Window weight of the unpinned messages before this one: finds a cut point by index."""
    boundary: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """The window may start here: unpinned, not a tool result, no tool call left open."""

    __table_args__ = (
        Index(None, "thread_pk", "idempotency_key", unique=True),
        Index(
            "ix_messages_cut",
            "thread_pk",
            "cum_before",
            sqlite_where=text("boundary"),
            postgresql_where=text("boundary"),
        ),
        Index(
            "ix_messages_pinned",
            "thread_pk",
            "seq",
            sqlite_where=text("pinned"),
            postgresql_where=text("pinned"),
        ),
    )


class ToolCallRow(Base):
    """A tool call an assistant message made, and the seq of the tool message answering it."""

    __tablename__ = "tool_calls"

    thread_pk: Mapped[int] = mapped_column(
        ForeignKey("threads.pk", ondelete="CASCADE"), primary_key=True
    )
    call_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    call_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    answer_seq: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index(None, "thread_pk", "call_id"),)


class CallRow(Base):
    """One model call: reported usage beside what contextkit predicted, and its cost."""

    __tablename__ = "calls"

    thread_pk: Mapped[int] = mapped_column(
        ForeignKey("threads.pk", ondelete="CASCADE"), primary_key=True
    )
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    message_seq: Mapped[int | None] = mapped_column(Integer)
    response_id: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cache_hit_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cache_miss_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    predicted_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    predicted_cache_hit_tokens: Mapped[int | None] = mapped_column(Integer)
    structure: Mapped[str | None] = mapped_column(String(255))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    window_start: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tools_digest: Mapped[str | None] = mapped_column(String(64))
    """sha256 of the declared tools' canonical JSON (NULL: none declared, or unknown)."""
    prefix_break: Mapped[str | None] = mapped_column(String(16))
    """Why this prompt did not extend the previous call's: tools, mode or window."""
    usage_source: Mapped[str | None] = mapped_column(String(16))
    """Where the usage came from: `reported` by the provider, or `counted` by contextkit from
    what arrived (a stream cut before its usage chunk); NULL in old exports: reported."""

    __table_args__ = (Index(None, "thread_pk", "response_id"),)
    """Not unique: providers reuse ids across servers and restarts (revision 0006)."""


class SummaryRow(Base):
    """A rolling summary: stands in for messages 1..upto_seq; never replaces their rows."""

    __tablename__ = "summaries"

    thread_pk: Mapped[int] = mapped_column(
        ForeignKey("threads.pk", ondelete="CASCADE"), primary_key=True
    )
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    from_seq: Mapped[int] = mapped_column(Integer)
    upto_seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    summarizer: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    prompt_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_usd: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SearchDocRow(Base):
    """The words of a message, or of a thread's summary in force, as the full-text index
    reads them (revision 0009).

    Written in the transaction that writes the message or summary (`contextkit.db.search`).
    `body` is the space-joined words of `contextkit.fulltext`; a long text has several
    chunks (`part` 0, 1, ...). SQLite indexes `body` in the FTS5 table `search_fts` (external
    content: this table), kept in step by triggers; PostgreSQL in the generated tsvector
    column `tsv` with a GIN index. Neither is declared here (see `search_objects`).
    """

    __tablename__ = "search_docs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    """The FTS5 rowid on SQLite (INTEGER PRIMARY KEY: a stable rowid alias)."""
    thread_pk: Mapped[int] = mapped_column(ForeignKey("threads.pk", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    """The message's seq; for a summary, the last seq it covers."""
    summary_n: Mapped[int] = mapped_column(Integer, server_default="0")
    """0 for a message; the summary's number for a summary."""
    part: Mapped[int] = mapped_column(Integer, server_default="0")
    role: Mapped[str] = mapped_column(String(16))
    """The message's role, or "summary"."""
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "thread_pk", "seq", "summary_n", "part", unique=True),)


SEARCH_TABLE_PREFIX = "search_fts"
"""SQLite's FTS5 table and its shadow tables (`search_fts_data`, `_idx`, ...)."""
SEARCH_PG_OBJECTS = frozenset({("column", "tsv"), ("index", "ix_search_docs_tsv")})


def search_objects(name: str | None, type_: str, parent_names: Any = None) -> bool:
    """Alembic `include_name`: False for the full-text objects revision 0009 creates beyond
    these classes (the FTS5 tables, the tsvector column and its index), so comparing the
    migrated database with this metadata skips them."""
    if name is None:
        return True
    if type_ == "table" and name.startswith(SEARCH_TABLE_PREFIX):
        return False
    return (type_, name) not in SEARCH_PG_OBJECTS


class BlobRow(Base):
    """An image's bytes, stored once and addressed by their sha256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    mime: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalibrationRow(Base):
    """Last seen gap between reported and predicted prompt tokens, per model and structure."""

    __tablename__ = "calibrations"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    structure: Mapped[str] = mapped_column(String(255), primary_key=True)
    delta: Mapped[int] = mapped_column(Integer)
    observations: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


THREADS = cast(Table, ThreadRow.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
BLOBS = cast(Table, BlobRow.__table__)
"""Core table handle, for the INSERT ... ON CONFLICT and bulk UPDATE statements."""
