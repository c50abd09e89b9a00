"""Threads, messages and tool calls.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("max_context_tokens", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_threads"),
        sa.UniqueConstraint("id", name="uq_threads_id"),
    )
    op.create_index("ix_threads_owner_updated_at", "threads", ["owner", "updated_at"])
    op.create_table(
        "messages",
        sa.Column("thread_pk", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("parts", sa.Text(), nullable=True),
        sa.Column("tool_calls", sa.Text(), nullable=True),
        sa.Column("tool_call_id", sa.String(255), nullable=True),
        sa.Column("reasoning_content", sa.Text(), nullable=True),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_pk"], ["threads.pk"], name="fk_messages_thread_pk_threads", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("thread_pk", "seq", name="pk_messages"),
    )
    op.create_index(
        "ix_messages_thread_pk_idempotency_key",
        "messages",
        ["thread_pk", "idempotency_key"],
        unique=True,
    )
    op.create_index(
        "ix_messages_pinned",
        "messages",
        ["thread_pk", "seq"],
        sqlite_where=sa.text("pinned"),
        postgresql_where=sa.text("pinned"),
    )
    op.create_table(
        "tool_calls",
        sa.Column("thread_pk", sa.Integer(), nullable=False),
        sa.Column("call_seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("answer_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_pk"],
            ["threads.pk"],
            name="fk_tool_calls_thread_pk_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("thread_pk", "call_seq", "call_id", name="pk_tool_calls"),
    )
    op.create_index("ix_tool_calls_thread_pk_call_id", "tool_calls", ["thread_pk", "call_id"])


def downgrade() -> None:
    op.drop_table("tool_calls")
    op.drop_index("ix_messages_pinned", table_name="messages")
    op.drop_index("ix_messages_thread_pk_idempotency_key", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_threads_owner_updated_at", table_name="threads")
    op.drop_table("threads")
