"""Window bookkeeping (replay form, cumulative weights, cut point), calls and calibration.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Existing messages get their token counts and window columns from the live code once the
schema is at head (`contextkit.db.migrate.backfill`): a frozen revision imports no library code.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table, column in [
        ("threads", sa.Column("window_start", sa.Integer(), server_default="1", nullable=False)),
        ("threads", sa.Column("cum_weight", sa.BigInteger(), server_default="0", nullable=False)),
        ("threads", sa.Column("turn_seq", sa.Integer(), server_default="0", nullable=False)),
        (
            "threads",
            sa.Column("turn_tool_calls", sa.Boolean(), server_default=sa.false(), nullable=False),
        ),
        ("threads", sa.Column("pending_calls", sa.Integer(), server_default="0", nullable=False)),
        ("threads", sa.Column("call_count", sa.Integer(), server_default="0", nullable=False)),
        (
            "messages",
            sa.Column("reasoning_kept", sa.Boolean(), server_default=sa.false(), nullable=False),
        ),
        ("messages", sa.Column("lead", sa.String(64), nullable=True)),
        ("messages", sa.Column("cum_before", sa.BigInteger(), server_default="0", nullable=False)),
        (
            "messages",
            sa.Column("boundary", sa.Boolean(), server_default=sa.false(), nullable=False),
        ),
    ]:
        op.add_column(table, column)  # plain ALTER TABLE ADD COLUMN: no table rebuild
    op.create_index(
        "ix_messages_cut",
        "messages",
        ["thread_pk", "cum_before"],
        sqlite_where=sa.text("boundary"),
        postgresql_where=sa.text("boundary"),
    )
    op.create_table(
        "calls",
        sa.Column("thread_pk", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("message_seq", sa.Integer(), nullable=True),
        sa.Column("response_id", sa.String(255), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_hit_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_miss_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("predicted_prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("predicted_cache_hit_tokens", sa.Integer(), nullable=True),
        sa.Column("structure", sa.String(255), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("window_start", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_pk"], ["threads.pk"], name="fk_calls_thread_pk_threads", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("thread_pk", "n", name="pk_calls"),
    )
    op.create_index(
        "ix_calls_thread_pk_response_id", "calls", ["thread_pk", "response_id"], unique=True
    )
    op.create_table(
        "calibrations",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("structure", sa.String(255), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "structure", name="pk_calibrations"),
    )


def downgrade() -> None:
    op.drop_table("calibrations")
    op.drop_index("ix_calls_thread_pk_response_id", table_name="calls")
    op.drop_table("calls")
    op.drop_index("ix_messages_cut", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for column in ("boundary", "cum_before", "lead", "reasoning_kept"):
            batch.drop_column(column)
    with op.batch_alter_table("threads") as batch:
        for column in (
            "call_count",
            "pending_calls",
            "turn_tool_calls",
            "turn_seq",
            "cum_weight",
            "window_start",
        ):
            batch.drop_column(column)
