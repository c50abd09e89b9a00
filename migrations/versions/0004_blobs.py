"""Content-addressed image blobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Images already stored inline as data URLs stay valid: they are resolved the same way.
Frozen: the downgrade carries its own SQL and imports no library code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PREFIX = "blob:sha256:"


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
    """Put every referenced image back inline as its data URL, then drop the blobs."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT thread_pk, seq, parts FROM messages WHERE parts LIKE :ref"),
        {"ref": f"%{_PREFIX}%"},
    ).all()
    for pk, seq, raw in rows:
        parts = json.loads(raw)
        for part in parts:
            image = part.get("image_url") if isinstance(part, dict) else None
            url = image.get("url", "") if isinstance(image, dict) else ""
            if url.startswith(_PREFIX):
                mime, data = bind.execute(
                    sa.text("SELECT mime, data FROM blobs WHERE sha256 = :sha"),
                    {"sha": url[len(_PREFIX) :]},
                ).one()
                image["url"] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        bind.execute(
            sa.text("UPDATE messages SET parts = :parts WHERE thread_pk = :pk AND seq = :seq"),
            {
                "parts": json.dumps(parts, ensure_ascii=False, separators=(",", ":")),
                "pk": pk,
                "seq": seq,
            },
        )
    op.drop_table("blobs")
