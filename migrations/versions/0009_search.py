"""Full-text search over every message and summary: the `search_docs` table and its index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

Each message, and each thread's summary in force, gets one or more rows in `search_docs`
holding its words (case-folded, accents removed, CJK characters one word each), written
from now on in the transaction that writes the message (a new summary replaces the
previous one's rows). SQLite indexes them in an FTS5 table with external
content (`search_fts`, tokenizer `unicode61 remove_diacritics 2`), kept in step by triggers
on `search_docs`; PostgreSQL in a generated tsvector column (`simple` configuration) with a
GIN index. The existing messages and summaries are indexed here, `BATCH` rows at a time.

Frozen: the word splitting below is a copy of `contextkit.fulltext` as of this revision (a
migration imports no library code); a test checks that both index the same words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2_000

_MAX_WORD = 64
_CHUNK_WORDS = 16_000
_CHUNK_OVERLAP = 16
_RECALL_MARK = "[recall]"
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3005-\u3007\u3040-\u30ff\u3100-\u312f\u3130-\u318f"
    "\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af"
    "\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_ACCENTS = re.compile("[\u0300-\u036f]")


def _word_pattern() -> re.Pattern[str]:
    ranges: list[list[int]] = []
    for code in range(0x300, 0x10000):
        if unicodedata.category(chr(code)).startswith("M"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    marks = "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)
    return re.compile(rf"[{_CJK}]|(?:[^\W_{_CJK}]|[{marks}])+")


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", decomposed).casefold()


def _words(text: str, word: re.Pattern[str]) -> list[str]:
    found = _ASCII_WORD.findall(text.lower()) if text.isascii() else word.findall(_fold(text))
    if found and max(map(len, found)) > _MAX_WORD:
        return [w[:_MAX_WORD] for w in found]
    return list(found)


def _chunks(text: str, word: re.Pattern[str]) -> list[str]:
    found = _words(text, word)
    if len(found) <= _CHUNK_WORDS:
        return [" ".join(found)]
    step = _CHUNK_WORDS - _CHUNK_OVERLAP
    return [
        " ".join(found[i : i + _CHUNK_WORDS]) for i in range(0, len(found) - _CHUNK_OVERLAP, step)
    ]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _document(role: str, content: str | None, parts: Any, tool_calls: Any) -> str:
    texts: list[str] = []
    if content:
        if role == "tool" and content.startswith(_RECALL_MARK):
            return _RECALL_MARK
        texts.append(content)
    for part in _json(parts) or ():
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
    for call in _json(tool_calls) or ():
        function = call.get("function") or {}
        texts.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    return "\n".join(texts)


_DOCS = sa.table(
    "search_docs",
    sa.column("thread_pk", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("summary_n", sa.Integer),
    sa.column("part", sa.Integer),
    sa.column("role", sa.String),
    sa.column("body", sa.Text),
)


def _batches(conn: sa.Connection, sql: str) -> Iterator[list[Any]]:
    """Rows of `sql` (ordered by thread_pk, then a key) a batch at a time, by keyset."""
    last = (-1, -1)
    while True:
        rows = conn.execute(
            sa.text(sql), {"pk": last[0], "key": last[1], "batch": BATCH}
        ).fetchall()
        if not rows:
            return
        yield rows
        last = (rows[-1][0], rows[-1][1])


def _backfill(conn: sa.Connection) -> None:
    word = _word_pattern()
    after = "(thread_pk > :pk OR (thread_pk = :pk AND {key} > :key))"
    messages = (
        "SELECT thread_pk, seq, role, content, parts, tool_calls FROM messages WHERE "
        + after.format(key="seq")
        + " ORDER BY thread_pk, seq LIMIT :batch"
    )
    for rows in _batches(conn, messages):
        docs = [
            {"thread_pk": pk, "seq": seq, "summary_n": 0, "part": i, "role": role, "body": body}
            for pk, seq, role, content, parts, calls in rows
            for i, body in enumerate(_chunks(_document(role, content, parts, calls), word))
        ]
        conn.execute(_DOCS.insert(), docs)
    # the summary in force only: a rolling summary carries on its predecessors
    summaries = (
        "SELECT s.thread_pk, s.n, s.upto_seq, s.text FROM summaries s JOIN threads t ON "
        "t.pk = s.thread_pk AND t.summary_n = s.n "
        "WHERE (s.thread_pk > :pk OR (s.thread_pk = :pk AND s.n > :key)) "
        "ORDER BY s.thread_pk, s.n LIMIT :batch"
    )
    for rows in _batches(conn, summaries):
        docs = [
            {"thread_pk": pk, "seq": upto, "summary_n": n, "part": i, "role": "summary", "body": b}
            for pk, n, upto, text in rows
            for i, b in enumerate(_chunks(text, word))
        ]
        conn.execute(_DOCS.insert(), docs)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    columns: list[sa.Column[Any]] = [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "thread_pk",
            sa.Integer(),
            sa.ForeignKey(
                "threads.pk", ondelete="CASCADE", name="fk_search_docs_thread_pk_threads"
            ),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("summary_n", sa.Integer(), server_default="0", nullable=False),
        sa.Column("part", sa.Integer(), server_default="0", nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    ]
    if postgres:
        from sqlalchemy.dialects.postgresql import TSVECTOR

        columns.append(
            sa.Column("tsv", TSVECTOR(), sa.Computed("to_tsvector('simple', body)", persisted=True))
        )
    op.create_table("search_docs", *columns, sa.PrimaryKeyConstraint("id", name="pk_search_docs"))
    if not postgres:
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5(body, content='search_docs', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER search_docs_insert AFTER INSERT ON search_docs BEGIN "
            "INSERT INTO search_fts(rowid, body) VALUES (new.id, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER search_docs_delete AFTER DELETE ON search_docs BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.id, old.body);"
            " END"
        )
        op.execute(
            "CREATE TRIGGER search_docs_update AFTER UPDATE ON search_docs BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, body) VALUES ('delete', old.id, old.body);"
            " INSERT INTO search_fts(rowid, body) VALUES (new.id, new.body); END"
        )
    _backfill(op.get_bind())
    # after the backfill: one index build instead of an update per row
    op.create_index(
        "ix_search_docs_thread_pk_seq_summary_n_part",
        "search_docs",
        ["thread_pk", "seq", "summary_n", "part"],
        unique=True,
    )
    if postgres:
        op.create_index("ix_search_docs_tsv", "search_docs", ["tsv"], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("search_docs_insert", "search_docs_delete", "search_docs_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_docs")
