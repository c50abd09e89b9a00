"""Per call: the digest of the declared tools and why the prompt's cached prefix broke.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

DeepSeek renders the `tools` of a request into the system prompt, so a call whose tool set
differs from the previous call's re-renders every earlier turn: a full prefix-cache miss.
Calls now record the tool set they declared and, when their prompt does not start with the
previous call's, the cause (`tools`, `mode`, `window`). Existing calls keep NULL: unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("tools_digest", sa.String(64), nullable=True))
    op.add_column("calls", sa.Column("prefix_break", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("prefix_break")
        batch.drop_column("tools_digest")
