"""Thread ids are unique per owner, not across the store.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A globally unique id let a tenant probe for other tenants' ids (opening one answered
"belongs to another owner"). Now (id, owner) names a thread: another owner's id is simply
another thread. The new unique constraint leads with `id`, so looking a thread up by id
alone (operators' tools) stays indexed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_constraint("uq_threads_id", type_="unique")
        batch.create_unique_constraint("uq_threads_id_owner", ["id", "owner"])


def downgrade() -> None:
    # Below 0007 an id names one thread in the whole store. Threads that share an id across
    # owners cannot be merged or renamed without losing who refers to them by that id, so
    # refuse, changing nothing, and say which ids to resolve.
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT id, count(*) AS n FROM threads GROUP BY id HAVING count(*) > 1 ORDER BY id"
            )
        )
        .fetchall()
    )
    if shared:
        shown = ", ".join(f"{row[0]!r} ({row[1]} owners)" for row in shared[:10])
        more = f" and {len(shared) - 10} more" if len(shared) > 10 else ""
        raise RuntimeError(
            f"cannot downgrade below revision 0007: {len(shared)} thread id(s) are used by "
            f"several owners: {shown}{more}. Export and delete (or re-import under other ids) "
            "all but one thread of each id, then downgrade again."
        )
    with op.batch_alter_table("threads") as batch:
        batch.drop_constraint("uq_threads_id_owner", type_="unique")
        batch.create_unique_constraint("uq_threads_id", ["id"])
