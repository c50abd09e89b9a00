"""Import refuses records that do not describe a valid thread, before writing any of it."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import export_call, export_header, export_message, export_summary, table_counts

import contextkit
from contextkit import ValidationError
from contextkit.store.transfer import check, export_records, import_records


def _records(tid: str = "imp") -> list[dict[str, Any]]:
    header = {**export_header(tid), "system": "Be brief.", "metadata": {"k": "v"}}
    header["window_start"] = 3
    messages = [{**export_message(tid, s), "idempotency_key": f"k{s}"} for s in range(1, 5)]
    summary = {**export_summary(tid), "upto_seq": 2}
    call = {**export_call(tid), "cost_usd": 0.0001, "latency_ms": 12.5}
    return [header, *messages, summary, call]


def _with(path: tuple[int, str], value: Any) -> list[dict[str, Any]]:
    records = copy.deepcopy(_records())
    index, key = path
    if value is _MISSING:
        del records[index][key]
    else:
        records[index][key] = value
    return records


_MISSING = object()
HEADER, MSG1, MSG2, SUMMARY, CALL = 0, 1, 2, 5, 6

BAD: list[tuple[str, tuple[int, str], Any, str]] = [
    ("window_start text", (HEADER, "window_start"), "x", "window_start"),
    ("window_start past the end", (HEADER, "window_start"), 6, "window_start"),
    ("window_start 0", (HEADER, "window_start"), 0, "window_start"),
    ("window_start huge", (HEADER, "window_start"), 10**30, "window_start"),
    ("thread created_at junk", (HEADER, "created_at"), "yesterday", "created_at"),
    ("seq True", (MSG1, "seq"), True, "seqs"),
    ("pinned not a bool", (MSG1, "pinned"), "yes", "pinned"),
    ("empty idempotency key", (MSG1, "idempotency_key"), "", "idempotency_key"),
    ("numeric idempotency key", (MSG1, "idempotency_key"), 5, "idempotency_key"),
    ("surrogate idempotency key", (MSG1, "idempotency_key"), "\ud800", "surrogate"),
    ("duplicate idempotency key", (MSG2, "idempotency_key"), "k1", "twice"),
    ("summary n text", (SUMMARY, "n"), "1", "summary record 1 n"),
    ("summary n 2 alone", (SUMMARY, "n"), 2, "numbered"),
    ("summary upto_seq text", (SUMMARY, "upto_seq"), "2", "upto_seq"),
    ("summary past the messages", (SUMMARY, "upto_seq"), 9, "covers"),
    ("summary range reversed", (SUMMARY, "from_seq"), 3, "covers"),
    ("summary text missing", (SUMMARY, "text"), _MISSING, "text is missing"),
    ("summary text NUL", (SUMMARY, "text"), "a\x00b", "NUL"),
    ("summary token_count huge", (SUMMARY, "token_count"), 10**30, "token_count"),
    ("summarizer too long", (SUMMARY, "summarizer"), "s" * 65, "limit is 64"),
    ("summary cost NaN", (SUMMARY, "cost_usd"), float("nan"), "finite"),
    ("call n 0", (CALL, "n"), 0, "distinct numbers"),
    ("call model surrogate", (CALL, "model"), "\ud800", "surrogate"),
    ("call prompt_tokens negative", (CALL, "prompt_tokens"), -1, "prompt_tokens"),
    ("call message_seq not stored", (CALL, "message_seq"), 7, "names message"),
    ("call latency text", (CALL, "latency_ms"), "1.5", "latency_ms"),
    ("call finish_reason list", (CALL, "finish_reason"), ["stop"], "finish_reason"),
    ("call created_at missing", (CALL, "created_at"), _MISSING, "created_at"),
    (
        "pinned tool call",
        (MSG2, "message"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        "cannot be pinned",
    ),
]


@pytest.mark.parametrize(("path", "value", "said"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_record_is_refused_and_nothing_is_written(
    store: contextkit.Store, path: tuple[int, str], value: Any, said: str
) -> None:
    records = _with(path, value)
    if said == "cannot be pinned":
        records[MSG2]["pinned"] = True
    store.thread("existing", model="deepseek-v4-flash").append({"role": "user", "content": "x"})
    before = table_counts(store)
    with pytest.raises(ValidationError, match=said):
        import_records(store, records)
    assert table_counts(store) == before
    assert store.admin_thread("imp") is None
    assert check(store) == []


def test_repeated_response_ids_are_kept(store: contextkit.Store) -> None:
    """Providers reuse response ids (a restarted server starts again): both calls import."""
    records = _records()
    records.append({**records[CALL], "n": 2})
    assert import_records(store, records) == ["imp"]
    assert store.admin_thread("imp").stats().calls == 2
    assert [r for r in export_records(store) if r["type"] == "call"] == records[CALL:]


def test_valid_records_import_and_export_the_same(store: contextkit.Store) -> None:
    records = _records()
    assert import_records(store, records) == ["imp"]
    assert check(store) == []
    out = list(export_records(store))
    assert [r["type"] for r in out] == [r["type"] for r in records]
    assert out[0]["window_start"] == 3
    assert out[SUMMARY] == records[SUMMARY] and out[CALL] == records[CALL]
    thread = store.admin_thread("imp")
    assert thread is not None
    assert [m.content for m in thread.messages()] == ["m1", "m2", "m3", "m4"]


def test_a_timestamp_without_offset_is_utc(store: contextkit.Store) -> None:
    import_records(store, _with((MSG1, "created_at"), "2024-05-01T12:00:00"))
    thread = store.admin_thread("imp")
    assert thread is not None
    first = next(iter(thread.messages()))
    assert first.created_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def test_an_import_is_all_or_nothing(store: contextkit.Store) -> None:
    """A later thread whose id exists, or a bad record after good threads: nothing of the
    input is written, not even the threads before it."""
    store.thread("imp-2", model="deepseek-v4-flash", owner="importer").append(
        {"role": "user", "content": "x"}
    )
    before = table_counts(store)
    with pytest.raises(ValidationError, match=r"'imp-2'.*already exists.*nothing was imported"):
        import_records(store, [*_records("imp-1"), *_records("imp-2")])
    assert table_counts(store) == before and store.admin_thread("imp-1") is None
    late_bad = [*_records("imp-1"), *_with((MSG2, "seq"), 7)]
    late_bad[len(_records()) :] = [
        {**r, "id": "imp-3"} if r["type"] == "thread" else {**r, "thread": "imp-3"}
        for r in late_bad[len(_records()) :]
    ]
    with pytest.raises(ValidationError, match="seqs"):
        import_records(store, late_bad)
    assert table_counts(store) == before and store.admin_thread("imp-1") is None
    # the same thread twice in one input: the second is refused, the first not kept
    with pytest.raises(ValidationError, match="already exists"):
        import_records(store, iter([*_records("imp-1"), *_records("imp-1")]))
    assert table_counts(store) == before
    assert import_records(store, _records("imp-1")) == ["imp-1"]
    assert check(store) == []
