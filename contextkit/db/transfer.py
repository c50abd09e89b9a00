"""Export, import and integrity check of stored threads.

Export writes one JSON object per line (canonical JSON, so the same store exports the same
bytes): a `thread` record, then its `message`, `summary` and `call` records in order.
Import recreates threads exactly (seqs, timestamps, reasoning, tool calls, summaries, usage)
all or nothing, in one transaction; re-exporting an import gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import attrs
from sqlalchemy import Connection, func, insert, select, update

from contextkit.accounting import PAD
from contextkit.db import calls, messages, search, summaries, threads
from contextkit.db import engine as db
from contextkit.db.blobs import PREFIX
from contextkit.db.engine import Engine
from contextkit.db.messages import Pending
from contextkit.db.records import (
    CALL_FIELDS,
    LATE_CALL_FIELDS,
    SUMMARY_FIELDS,
    call_rows,
    parse_time,
    summary_rows,
    window_start,
)
from contextkit.db.schema import (
    BlobRow,
    CallRow,
    MessageRow,
    SummaryRow,
    ThreadRow,
    ToolCallRow,
)
from contextkit.db.threads import ThreadRef, ThreadState
from contextkit.errors import StoreError, ValidationError
from contextkit.settings import check_owner, thread_settings
from contextkit.types import Message, canonical_json, check_id

_PAGE = 500

__all__ = ["check", "export_records", "export_thread", "import_records", "to_line"]


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def to_line(record: Mapping[str, Any]) -> str:
    """One export record as a JSONL line (canonical JSON, newline-terminated)."""
    return canonical_json(dict(record)) + "\n"


def export_thread(ref: ThreadRef) -> Iterator[dict[str, Any]]:
    """The records of one thread, paged: never the whole thread in memory."""
    engine = ref.engine
    state = db.read(engine, lambda conn: threads.locked(conn, ref))
    info = state.info()
    yield {
        "type": "thread",
        **info.settings(),
        "window_start": state.window_start,
        "created_at": _iso(info.created_at),
        "updated_at": _iso(info.updated_at),
    }
    keys = db.read(engine, lambda conn: messages.idempotency_keys(conn, ref.pk))
    last = 0
    while True:
        page = db.read(engine, partial(_page, ref=ref, after=last))
        for message in page:
            yield {
                "type": "message",
                "thread": info.id,
                "seq": message.seq,
                "message": message.to_openai(),
                "pinned": message.pinned,
                "idempotency_key": keys.get(message.seq or 0),
                "created_at": _iso(message.created_at),
            }
        if len(page) < _PAGE:
            break
        last = page[-1].seq or last
    found = db.read(engine, lambda conn: (summaries.rows(conn, ref.pk), calls.rows(conn, ref.pk)))
    for row in found[0]:
        yield {"type": "summary", "thread": info.id, **{f: _iso(row[f]) for f in SUMMARY_FIELDS}}
    for row in found[1]:
        fields = {f: _iso(row[f]) for f in CALL_FIELDS}
        for late in LATE_CALL_FIELDS:  # absent from older exports: written only when known
            if fields[late] is None:
                del fields[late]
        yield {"type": "call", "thread": info.id, **fields}


def _page(conn: Connection, ref: ThreadRef, after: int) -> list[Message]:
    threads.locked(conn, ref)
    return messages.page(conn, ref.pk, after, None, _PAGE)


def export_records(engine: Engine, *, owner: str | None = None) -> Iterator[dict[str, Any]]:
    """Records of every thread (of `owner`, or of all owners when None)."""
    cursor: tuple[Any, int] | None = None
    while True:
        page = db.read(engine, partial(threads.page, owner=owner, cursor=cursor, limit=200))
        for state in page:
            yield from export_thread(ThreadRef(engine, state.pk, state.id, state.owner))
        if len(page) < 200:
            return
        cursor = (page[-1].updated_at, page[-1].pk)


def import_records(engine: Engine, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Recreate the exported threads; returns their ids. Existing ids are refused.

    All or nothing: the whole input is imported in one transaction, so a bad record or a
    thread id its owner already has, wherever it comes in the input, leaves the database as
    it was (the error says so). Records are read as they come: one thread in memory at a time.
    """
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ValidationError(f"import_records takes records, got {type(records).__name__}")
    replayable = isinstance(records, (list, tuple))
    began = False

    def txn(conn: Connection) -> list[str]:
        nonlocal began
        if began and not replayable:  # a retry after a lock conflict: the stream is spent
            raise StoreError(
                "the import met a lock conflict after it began; nothing was imported; run it "
                "again when the database is less busy"
            )
        began = True
        return [_write_thread(conn, *thread) for thread in _threads(records)]

    try:
        return db.write(engine, txn)
    except ValidationError as exc:
        raise ValidationError(f"{exc}; nothing was imported (all or nothing)") from None


def _threads(
    records: Iterable[Mapping[str, Any]],
) -> Iterator[tuple[str, str, dict[str, Any], list[Pending], dict[str, Any]]]:
    """The input's threads, one at a time, each checked whole before it is written."""
    current: dict[str, Any] | None = None
    parts: dict[str, list[Mapping[str, Any]]] = {"message": [], "summary": [], "call": []}
    for number, record in enumerate(records, 1):
        if not isinstance(record, Mapping) or "type" not in record:
            raise ValidationError(f"record {number} is not an export record")
        kind = record["type"]
        if not isinstance(kind, str):
            raise ValidationError(f"record {number} has a non-text type")
        if kind == "thread":
            if current is not None:
                yield _checked_thread(current, parts)
            current = dict(record)
            parts = {"message": [], "summary": [], "call": []}
        elif kind in parts:
            if current is None or record.get("thread") != current["id"]:
                raise ValidationError(f"record {number} ({kind}) does not follow its thread")
            parts[kind].append(record)
        else:
            raise ValidationError(f"record {number} has unknown type {kind!r:.40}")
    if current is not None:
        yield _checked_thread(current, parts)


def _checked_thread(
    header: Mapping[str, Any], parts: Mapping[str, list[Mapping[str, Any]]]
) -> tuple[str, str, dict[str, Any], list[Pending], dict[str, Any]]:
    """A thread's records checked: its id, owner, settings, messages and other rows."""
    thread_id = header.get("id")
    if not isinstance(thread_id, str):
        raise ValidationError("thread record without an id")
    check_id(thread_id, "thread id")
    owner = check_owner(header.get("owner", ""))
    values = thread_settings(
        model=header.get("model"),
        system=header.get("system"),
        max_context_tokens=header.get("max_context_tokens"),
        metadata=header.get("metadata"),
    )
    items = []
    keys: set[str] = set()
    for expected, record in enumerate(parts["message"], 1):
        seq = record.get("seq")
        if isinstance(seq, bool) or seq != expected:
            raise ValidationError(f"thread {thread_id!r}: message seqs must be 1, 2, 3, ...")
        item = messages.pending(
            record.get("message"), record.get("idempotency_key"), record.get("pinned", False)
        )
        item.message = attrs.evolve(
            item.message,
            created_at=parse_time(record.get("created_at"), f"message {seq} created_at"),
        )
        if item.key is not None:
            if item.key in keys:
                raise ValidationError(f"thread {thread_id!r}: idempotency_key {item.key!r} twice")
            keys.add(item.key)
        items.append(item)
    last = len(items)
    rows = {
        "window_start": window_start(header, last),
        "summaries": summary_rows(parts["summary"], last),
        "calls": call_rows(parts["call"], last),
        "created_at": parse_time(header.get("created_at"), "thread created_at"),
        "updated_at": parse_time(header.get("updated_at"), "thread updated_at"),
    }
    return thread_id, owner, values, items, rows


def _write_thread(
    conn: Connection,
    thread_id: str,
    owner: str,
    values: dict[str, Any],
    items: list[Pending],
    rows: dict[str, Any],
) -> str:
    if threads.by_id(conn, thread_id, owner) is not None:
        shown = f" --owner {owner}" if owner else ""
        raise ValidationError(
            f"thread {thread_id!r} of owner {owner!r} already exists in this database; delete "
            f"it first (`contextkit threads delete {thread_id}{shown}`) or import into another "
            "database"
        )
    state = threads.get_or_create(conn, thread_id, owner, values)
    _fill(conn, state, items, rows)
    return thread_id


def _fill(
    conn: Connection, state: ThreadState, items: list[Pending], rows: Mapping[str, Any]
) -> None:
    if items:
        messages.insert_messages(conn, state, items)
    if rows["summaries"]:
        conn.execute(insert(SummaryRow).values(thread_pk=state.pk), rows["summaries"])
        search.index_summaries(conn, state.pk, rows["summaries"])
    if rows["calls"]:
        conn.execute(insert(CallRow).values(thread_pk=state.pk), rows["calls"])
    conn.execute(
        update(ThreadRow)
        .where(ThreadRow.pk == state.pk)
        .values(
            window_start=rows["window_start"],
            summary_n=len(rows["summaries"]),
            call_count=max((r["n"] for r in rows["calls"]), default=0),
            created_at=rows["created_at"],
            updated_at=rows["updated_at"],
        )
    )


def check(engine: Engine) -> list[str]:
    """Integrity problems of the whole store (empty list: clean). Aggregate queries only."""

    def run(conn: Connection) -> list[str]:
        problems: list[str] = []
        threads = {
            r.pk: r
            for r in conn.execute(
                select(
                    ThreadRow.pk,
                    ThreadRow.id,
                    ThreadRow.last_seq,
                    ThreadRow.total_tokens,
                    ThreadRow.cum_weight,
                    ThreadRow.window_start,
                    ThreadRow.summary_n,
                    ThreadRow.pending_calls,
                )
            )
        }
        agg = conn.execute(
            select(
                MessageRow.thread_pk,
                func.count(),
                func.min(MessageRow.seq),
                func.max(MessageRow.seq),
                func.coalesce(func.sum(MessageRow.token_count), 0),
                func.count(MessageRow.token_count),
            ).group_by(MessageRow.thread_pk)
        ).all()
        seen = set()
        for pk, count, low, high, tokens, counted in agg:
            seen.add(pk)
            t = threads.get(pk)
            if t is None:
                problems.append(f"{count} messages belong to no thread (thread_pk {pk})")
                continue
            if count != t.last_seq or low != 1 or high != t.last_seq:
                problems.append(
                    f"thread {t.id!r}: seqs are not 1..{t.last_seq} "
                    f"({count} messages, min {low}, max {high})"
                )
            if counted != count or tokens != t.total_tokens:
                problems.append(
                    f"thread {t.id!r}: token counts missing or total {tokens} != {t.total_tokens}"
                )
        weights = conn.execute(
            select(
                MessageRow.thread_pk,
                func.coalesce(func.sum(MessageRow.token_count + PAD), 0),
            )
            .where(MessageRow.pinned.is_(False))
            .group_by(MessageRow.thread_pk)
        ).all()
        for pk, weight in weights:
            t = threads.get(pk)
            if t is not None and weight != t.cum_weight:
                problems.append(f"thread {t.id!r}: window weight {weight} != {t.cum_weight}")
        for pk, t in threads.items():
            if pk not in seen and t.last_seq != 0:
                problems.append(f"thread {t.id!r}: has no messages but last_seq {t.last_seq}")
            if not 1 <= t.window_start <= t.last_seq + 1:
                problems.append(f"thread {t.id!r}: window_start {t.window_start} out of range")
        for pk, n, high, low_from, upto in conn.execute(
            select(
                SummaryRow.thread_pk,
                func.count(),
                func.max(SummaryRow.n),
                func.min(SummaryRow.from_seq),
                func.max(SummaryRow.upto_seq),
            ).group_by(SummaryRow.thread_pk)
        ).all():
            t = threads.get(pk)
            if t is None:
                problems.append(f"summaries of a missing thread (thread_pk {pk})")
                continue
            if high != t.summary_n or n != t.summary_n:
                problems.append(f"thread {t.id!r}: summaries 1..{t.summary_n} expected, got {n}")
            if low_from < 1 or upto > t.last_seq:
                problems.append(f"thread {t.id!r}: a summary covers messages that do not exist")
        for pk, n in conn.execute(
            select(ToolCallRow.thread_pk, func.count())
            .where(ToolCallRow.answer_seq.is_(None))
            .group_by(ToolCallRow.thread_pk)
        ).all():
            t = threads.get(pk)
            if t is not None and n != t.pending_calls:
                problems.append(f"thread {t.id!r}: {n} unanswered calls, {t.pending_calls} noted")
        problems += _missing_blobs(conn, threads)
        problems += search.check(conn, threads)
        return problems

    return db.read(engine, run)


def _missing_blobs(conn: Connection, threads: Mapping[int, Any]) -> list[str]:
    """Messages whose image references no stored blob (scans only rows that hold one)."""
    stored = set(conn.execute(select(BlobRow.sha256)).scalars())
    problems = []
    rows = conn.execute(
        select(MessageRow.thread_pk, MessageRow.seq, MessageRow.parts).where(
            MessageRow.parts.is_not(None)
        )
    )
    for pk, seq, parts in rows:
        for part in parts or ():
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if url.startswith(PREFIX) and url[len(PREFIX) :] not in stored:
                name = threads[pk].id if pk in threads else pk
                problems.append(f"thread {name!r} message {seq}: image blob {url} is missing")
    return problems


def read_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Parse export lines; a bad line raises `ValidationError` naming its number."""
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Iterable):
        raise ValidationError(f"read_jsonl takes lines of text, got {type(lines).__name__}")
    for number, line in enumerate(lines, 1):
        if not isinstance(line, str):
            raise ValidationError(f"line {number} is not text")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"line {number} is not JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise ValidationError(f"line {number} is not a JSON object")
        yield value
