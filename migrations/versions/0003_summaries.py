"""Rolling summaries for compaction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "threads", sa.Column("summary_n", sa.Integer(), server_default="0", nullable=False)
    )
    op.create_table(
        "summaries",
        sa.Column("thread_pk", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("from_seq", sa.Integer(), nullable=False),
        sa.Column("upto_seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("summarizer", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_pk"], ["threads.pk"], name="fk_summaries_thread_pk_threads", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("thread_pk", "n", name="pk_summaries"),
    )


def downgrade() -> None:
    op.drop_table("summaries")
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("summary_n")
