"""Provider response ids are not unique: the calls index on them no longer is either.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

A restarted or another OpenAI-compatible server hands out the same ids again; a unique
index made such a reply unstorable after it was billed. Replies are deduplicated by
contextkit's own per-call key (the message's idempotency key) instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_calls_thread_pk_response_id"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name="calls")
    op.create_index(_INDEX, "calls", ["thread_pk", "response_id"], unique=False)


def downgrade() -> None:
    # Duplicate ids written since cannot satisfy a unique index: keep the first of each.
    op.execute(
        "UPDATE calls SET response_id = NULL WHERE response_id IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM calls AS earlier WHERE earlier.thread_pk = calls.thread_pk "
        "AND earlier.response_id = calls.response_id AND earlier.n < calls.n)"
    )
    op.drop_index(_INDEX, table_name="calls")
    op.create_index(_INDEX, "calls", ["thread_pk", "response_id"], unique=True)
