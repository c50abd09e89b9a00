"""The ceiling for appends: raw SQLAlchemy-core inserts on contextkit's SQLite settings."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .common import Target, engine_settings, sqlite_engine


def append_target(tmp: Path) -> Target:
    engine = sqlite_engine(tmp / "raw.db")
    meta = sa.MetaData()
    table = sa.Table(
        "messages",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("thread", sa.String, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Index("ix_messages_thread_seq", "thread", "seq", unique=True),
    )
    meta.create_all(engine)
    seq = itertools.count(1)
    stmt = sa.insert(table)

    def append(items: list[Any], batch: int) -> None:
        for i in range(0, len(items), batch):
            rows = [
                {"thread": "bench", "seq": next(seq), "role": m["role"], "content": m["content"]}
                for m in items[i : i + batch]
            ]
            with engine.begin() as conn:
                conn.execute(stmt, rows if len(rows) > 1 else rows[0])

    return Target(
        "raw SQLAlchemy core insert (ceiling)",
        list,
        append,
        engine.dispose,
        lambda: engine_settings(engine),
    )
