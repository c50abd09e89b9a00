"""Full-text search: the index rows written with messages and summaries, and the queries.

Every message, and the summary in force, has one or more `search_docs` rows (its words, see
`contextkit.fulltext`), inserted by the function that inserts it, in the same transaction:
an append that fails indexes nothing, an append that commits is searchable at once. The
database maintains the index proper: SQLite an FTS5 table with external content, updated by
triggers on `search_docs`; PostgreSQL a generated tsvector column with a GIN index (revision
0009 creates both and indexes what was stored before).

Queries arrive compiled (`Match`: an FTS5 expression and a tsquery, made by
`contextkit.recall` from words only, so user input cannot reach either syntax) and are bound
as parameters. Every query is scoped to one thread or one owner's threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen
from sqlalchemy import Connection, bindparam, delete, func, select, text

from contextkit import fulltext
from contextkit.db.schema import MessageRow, SearchDocRow, SummaryRow
from contextkit.db.threads import ThreadRef, locked

__all__ = [
    "Found",
    "Match",
    "check",
    "index_messages",
    "index_summaries",
    "search_owner",
    "search_thread",
]

SUMMARY_ROLE = "summary"


@frozen
class Match:
    """A query compiled for both databases: an FTS5 MATCH expression and a tsquery text."""

    fts5: str
    tsquery: str


@frozen(kw_only=True)
class Found:
    """One matching message or summary, with its original text (for the snippet)."""

    thread_id: str
    owner: str
    seq: int
    role: str
    summary_n: int
    score: float
    """Higher is better; comparable within one result list (bm25 on SQLite, ts_rank on
    PostgreSQL)."""
    text: str


_COLUMNS = "thread_pk, seq, summary_n, part, role, body"
_INSERT = {
    # the append path's one extra statement: straight to the driver (executemany), as
    # SQLAlchemy's insert construct costs about as much again per call
    "sqlite": f"INSERT INTO search_docs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
    "postgresql": f"INSERT INTO search_docs ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
}


def _docs(pk: int, seq: int, summary_n: int, role: str, text: str) -> list[tuple[Any, ...]]:
    return [(pk, seq, summary_n, i, role, body) for i, body in enumerate(fulltext.chunks(text))]


def _insert(conn: Connection, docs: list[tuple[Any, ...]]) -> None:
    if docs:
        sql = _INSERT["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
        conn.exec_driver_sql(sql, docs)


def index_messages(conn: Connection, pk: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Index message rows just inserted (column values as `insert_messages` wrote them)."""
    _insert(
        conn,
        [
            doc
            for row in rows
            for doc in _docs(
                pk,
                row["seq"],
                0,
                row["role"],
                fulltext.document_text(
                    row["role"], row["content"], row["parts"], row["tool_calls"]
                ),
            )
        ],
    )


def index_summaries(conn: Connection, pk: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Index the newest of the summary rows just inserted (`n`, `upto_seq`, `text`) in place
    of the thread's earlier summary: a rolling summary carries on its predecessor, so only
    the one in force is searched (the earlier ones stay stored, and every message they
    covered stays searchable)."""
    if not rows:
        return
    newest = max(rows, key=lambda r: r["n"])
    conn.execute(
        delete(SearchDocRow).where(
            SearchDocRow.thread_pk == pk,
            SearchDocRow.summary_n > 0,
            SearchDocRow.summary_n < newest["n"],
        )
    )
    _insert(conn, _docs(pk, newest["upto_seq"], newest["n"], SUMMARY_ROLE, newest["text"]))


_SCORE = {
    "sqlite": "-bm25(search_fts)",
    "postgresql": "ts_rank(d.tsv, to_tsquery('simple', :q), 1)",
}
_FROM = {
    # CROSS JOIN makes SQLite walk the index's matches and look each document up, rather
    # than walk the thread's documents and probe the index once per document
    "sqlite": "search_fts CROSS JOIN search_docs d ON d.id = search_fts.rowid",
    "postgresql": "search_docs d",
}
_MATCH = {
    "sqlite": "search_fts MATCH :q",
    "postgresql": "d.tsv @@ to_tsquery('simple', :q)",
}


def _query(
    conn: Connection,
    match: Match,
    *,
    scope: str,
    params: dict[str, Any],
    limit: int,
    roles: Sequence[str] | None,
    before_seq: int | None,
) -> list[tuple[int, str, str, int, int, str, float]]:
    """(thread_pk, thread id, owner, seq, summary_n, role, score) of the best documents."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    where = [_MATCH[dialect], scope]
    if before_seq is not None:
        where.append("d.seq < :before")
        params["before"] = before_seq
    if roles is not None:
        where.append("d.role IN :roles")
        params["roles"] = list(roles)
    # A long text has several chunks: one hit per message, scored by its best chunk. (On
    # SQLite bm25() cannot be an aggregate's argument: the LIMIT keeps the inner query from
    # being flattened into the outer one.)
    inner = (
        f"SELECT d.thread_pk, t.id, t.owner, d.seq, d.summary_n, d.role, {_SCORE[dialect]} AS s "
        f"FROM {_FROM[dialect]} JOIN threads t ON t.pk = d.thread_pk "
        f"WHERE {' AND '.join(where)}" + (" LIMIT -1" if dialect == "sqlite" else "")
    )
    sql = (
        f"SELECT thread_pk, id, owner, seq, summary_n, role, max(s) AS score FROM ({inner}) h "
        "GROUP BY thread_pk, id, owner, seq, summary_n, role "
        "ORDER BY score DESC, seq DESC, thread_pk LIMIT :limit"
    )
    stmt = text(sql)
    if roles is not None:
        stmt = stmt.bindparams(bindparam("roles", expanding=True))
    params["q"] = match.fts5 if dialect == "sqlite" else match.tsquery
    params["limit"] = limit
    rows = conn.execute(stmt, params).all()
    return [(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6] or 0.0)) for r in rows]


def _texts(
    conn: Connection, hits: Sequence[tuple[int, str, str, int, int, str, float]]
) -> list[Found]:
    """The hits with the original text of each message or summary."""
    messages: dict[tuple[int, int], str] = {}
    summaries: dict[tuple[int, int], str] = {}
    by_thread: dict[int, tuple[set[int], set[int]]] = {}
    for pk, _, _, seq, n, _, _ in hits:
        seqs, ns = by_thread.setdefault(pk, (set(), set()))
        (ns if n else seqs).add(n or seq)
    for pk, (seqs, ns) in by_thread.items():
        if seqs:
            cols = [
                MessageRow.seq,
                MessageRow.role,
                MessageRow.content,
                MessageRow.parts,
                MessageRow.tool_calls,
            ]
            for row in conn.execute(
                select(*cols).where(MessageRow.thread_pk == pk, MessageRow.seq.in_(seqs))
            ).mappings():
                messages[(pk, row["seq"])] = fulltext.document_text(
                    row["role"], row["content"], row["parts"], row["tool_calls"]
                )
        if ns:
            for n, summary in conn.execute(
                select(SummaryRow.n, SummaryRow.text).where(
                    SummaryRow.thread_pk == pk, SummaryRow.n.in_(ns)
                )
            ).all():
                summaries[(pk, n)] = summary
    return [
        Found(
            thread_id=tid,
            owner=owner,
            seq=seq,
            role=role,
            summary_n=n,
            score=score,
            text=(summaries.get((pk, n)) if n else messages.get((pk, seq))) or "",
        )
        for pk, tid, owner, seq, n, role, score in hits
    ]


def search_thread(
    conn: Connection,
    *,
    ref: ThreadRef,
    match: Match,
    limit: int,
    roles: Sequence[str] | None = None,
    before_seq: int | None = None,
) -> list[Found]:
    """The best `limit` documents of one thread (after the thread and owner check)."""
    state = locked(conn, ref)
    hits = _query(
        conn,
        match,
        scope="d.thread_pk = :pk",
        params={"pk": state.pk},
        limit=limit,
        roles=roles,
        before_seq=before_seq,
    )
    return _texts(conn, hits)


def search_owner(
    conn: Connection,
    *,
    owner: str,
    match: Match,
    limit: int,
    roles: Sequence[str] | None = None,
) -> list[Found]:
    """The best `limit` documents across the threads of `owner` (only theirs)."""
    hits = _query(
        conn,
        match,
        scope="t.owner = :owner",
        params={"owner": owner},
        limit=limit,
        roles=roles,
        before_seq=None,
    )
    return _texts(conn, hits)


def check(conn: Connection, threads: Mapping[int, Any]) -> list[str]:
    """Index problems: a message, or the summary in force, without its document."""
    problems = []
    counts = conn.execute(
        select(
            SearchDocRow.thread_pk,
            func.count(SearchDocRow.seq.distinct()).filter(SearchDocRow.summary_n == 0),
            func.max(SearchDocRow.summary_n),
        ).group_by(SearchDocRow.thread_pk)
    ).all()
    indexed = {pk: (m, s) for pk, m, s in counts}
    for pk, t in threads.items():
        messages, summary = indexed.get(pk, (0, 0))
        if messages != t.last_seq:
            problems.append(
                f"thread {t.id!r}: {messages} of its {t.last_seq} messages are in the search index"
            )
        if (summary or 0) != t.summary_n:
            problems.append(
                f"thread {t.id!r}: the search index holds summary {summary or 'none'}, not "
                f"summary {t.summary_n or 'none'} (the one in force)"
            )
    for pk in indexed.keys() - threads.keys():
        problems.append(f"search documents of a missing thread (thread_pk {pk})")
    return problems
