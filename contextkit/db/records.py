"""Export records checked before an import writes them.

An import inserts summary and call rows as they are, so every field is held to what its
column stores (type, range, length, valid text) and the records to what `check()` demands of
a thread (summaries 1..k over existing messages, calls with distinct numbers and response
ids). A bad record raises ValidationError naming the record and field, before anything of
its thread is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Float, Integer, String, Table

from contextkit._validators import check_int, check_non_negative_number
from contextkit.db.schema import CallRow, SummaryRow, UTCDateTime
from contextkit.errors import ValidationError
from contextkit.types import check_text

__all__ = [
    "CALL_FIELDS",
    "LATE_CALL_FIELDS",
    "SUMMARY_FIELDS",
    "call_rows",
    "parse_time",
    "summary_rows",
    "window_start",
]

INT_MAX = 2**31 - 1
"""The largest value an INTEGER column holds on every supported database."""

_SUMMARIES: Table = SummaryRow.__table__  # type: ignore[assignment]
_CALLS: Table = CallRow.__table__  # type: ignore[assignment]
SUMMARY_FIELDS = tuple(c.name for c in _SUMMARIES.columns if c.name != "thread_pk")
CALL_FIELDS = tuple(c.name for c in _CALLS.columns if c.name != "thread_pk")
LATE_CALL_FIELDS = ("tools_digest", "prefix_break", "usage_source")
"""Call fields newer than the export format: optional on import, omitted when null."""


def parse_time(value: object, what: str) -> datetime:
    """An ISO timestamp string as an aware datetime (a timestamp without offset is UTC)."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be an ISO timestamp string, got {value!r:.40}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{what} is not an ISO timestamp: {value!r:.40}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _values(table: Table, record: Mapping[str, Any], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name == "thread_pk":
            continue
        name = f"{what} {column.name}"
        value = record.get(column.name)
        if value is None:
            if not column.nullable:
                raise ValidationError(f"{name} is missing")
            out[column.name] = None
        elif isinstance(column.type, UTCDateTime):
            out[column.name] = parse_time(value, name)
        elif isinstance(column.type, Integer):
            out[column.name] = check_int(value, name, 0, INT_MAX)
        elif isinstance(column.type, Float):
            out[column.name] = check_non_negative_number(value, name)
        elif isinstance(column.type, String):
            if not isinstance(value, str):
                raise ValidationError(f"{name} must be a string, got {value!r:.40}")
            limit = column.type.length
            if limit is not None and len(value) > limit:
                raise ValidationError(f"{name} is {len(value):,} characters; the limit is {limit}")
            out[column.name] = check_text(value, name)
        else:  # pragma: no cover - a column type this module was not taught
            raise TypeError(f"no import check for column {column.name} ({column.type})")
    return out


def summary_rows(records: Sequence[Mapping[str, Any]], last_seq: int) -> list[dict[str, Any]]:
    """Summary rows of one thread of `last_seq` messages; numbered 1..k over real messages."""
    out = [_values(_SUMMARIES, r, f"summary record {i}") for i, r in enumerate(records, 1)]
    if sorted(v["n"] for v in out) != list(range(1, len(out) + 1)):
        raise ValidationError(f"summary records must be numbered 1..{len(out)}, each once")
    for v in out:
        if not 1 <= v["from_seq"] <= v["upto_seq"] <= last_seq:
            raise ValidationError(
                f"summary {v['n']} covers messages {v['from_seq']}..{v['upto_seq']}; the thread "
                f"has messages 1..{last_seq}"
            )
    return out


def call_rows(records: Sequence[Mapping[str, Any]], last_seq: int) -> list[dict[str, Any]]:
    """Call rows of one thread of `last_seq` messages, with distinct numbers (response ids
    may repeat: providers reuse them)."""
    out = [_values(_CALLS, r, f"call record {i}") for i, r in enumerate(records, 1)]
    numbers = [v["n"] for v in out]
    if min(numbers, default=1) < 1 or len(set(numbers)) != len(numbers):
        raise ValidationError("call records must have distinct numbers n >= 1")
    for v in out:
        if v["message_seq"] is not None and not 1 <= v["message_seq"] <= last_seq:
            raise ValidationError(f"call {v['n']} names message {v['message_seq']}, not stored")
        if v["window_start"] is not None and not 1 <= v["window_start"] <= last_seq + 1:
            raise ValidationError(
                f"call {v['n']} has window_start {v['window_start']} out of range"
            )
    return out


def window_start(header: Mapping[str, Any], last_seq: int) -> int:
    """The thread's window start: 1..last_seq + 1 (1 when the record has none)."""
    value = header.get("window_start")
    return 1 if value is None else check_int(value, "thread window_start", 1, last_seq + 1)
