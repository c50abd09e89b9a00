"""Per call: whether its usage was reported by the provider or counted by contextkit.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

A stream cut short (the reader stopped, the connection dropped) is billed though its usage
chunk never came. Its call is now stored with usage contextkit counted from what arrived,
flagged `counted`; every earlier call had its usage reported by the provider.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("usage_source", sa.String(16), nullable=True))
    op.execute("UPDATE calls SET usage_source = 'reported'")


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("usage_source")
