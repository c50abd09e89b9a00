"""Content-addressed image blobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Images already stored inline as data URLs stay valid: they are resolved the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_blobs"),
    )


def downgrade() -> None:
    import json

    from contextkit.store.blobs import resolve

    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT thread_pk, seq, parts FROM messages WHERE parts LIKE '%blob:sha256:%'")
    ).all()
    loaded = [{"thread_pk": r[0], "seq": r[1], "parts": json.loads(r[2])} for r in rows]
    for row in resolve(bind, loaded):
        bind.execute(
            sa.text("UPDATE messages SET parts = :parts WHERE thread_pk = :pk AND seq = :seq"),
            {
                "parts": json.dumps(row["parts"], ensure_ascii=False, separators=(",", ":")),
                "pk": row["thread_pk"],
                "seq": row["seq"],
            },
        )
    op.drop_table("blobs")
