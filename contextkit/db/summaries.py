"""Summary rows: a thread's rolling summaries, numbered 1..k, each covering 1..upto_seq."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from contextkit.db import search
from contextkit.db.schema import SummaryRow, ThreadRow
from contextkit.summarizers import Summary

__all__ = ["add_summary", "all_summaries", "latest", "rows", "total_cost"]


def _summary(row: Mapping[Any, Any]) -> Summary:
    return Summary(
        n=row["n"],
        from_seq=row["from_seq"],
        upto_seq=row["upto_seq"],
        text=row["text"],
        token_count=row["token_count"],
        summarizer=row["summarizer"],
        model=row["model"],
        cost_usd=row["cost_usd"] or 0.0,
        created_at=row["created_at"],
    )


def latest(conn: Connection, pk: int, n: int) -> Summary | None:
    """The summary number `n` of a thread (0: none)."""
    if n == 0:
        return None
    row = (
        conn.execute(select(SummaryRow).where(SummaryRow.thread_pk == pk, SummaryRow.n == n))
        .mappings()
        .one()
    )
    return _summary(row)


def all_summaries(conn: Connection, pk: int) -> list[Summary]:
    """Every summary of a thread, oldest first."""
    rows = conn.execute(
        select(SummaryRow).where(SummaryRow.thread_pk == pk).order_by(SummaryRow.n)
    ).mappings()
    return [_summary(r) for r in rows]


def rows(conn: Connection, pk: int) -> list[RowMapping]:
    """Every summary row of a thread as stored (for export)."""
    return list(
        conn.execute(
            select(SummaryRow).where(SummaryRow.thread_pk == pk).order_by(SummaryRow.n)
        ).mappings()
    )


def add_summary(conn: Connection, pk: int, values: Mapping[str, Any], window_start: int) -> Summary:
    """Store summary `values["n"]` and move the thread's counter and cut point with it."""
    conn.execute(insert(SummaryRow).values(thread_pk=pk, **values))
    search.index_summaries(conn, pk, [values])
    conn.execute(
        update(ThreadRow)
        .where(ThreadRow.pk == pk)
        .values(summary_n=values["n"], window_start=window_start)
    )
    return _summary(values)


def total_cost(conn: Connection, pk: int) -> float:
    """What a thread's summarizer calls cost, in USD."""
    cost: Any = conn.execute(
        select(func.coalesce(func.sum(SummaryRow.cost_usd), 0.0)).where(SummaryRow.thread_pk == pk)
    ).scalar_one()
    return float(cost)
