"""Kept for one release: export, import and check moved to `Store.export_records`,
`Store.import_records`, `Store.check` and `contextkit.db.transfer`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from contextkit.db import transfer as _transfer
from contextkit.db.transfer import read_jsonl, to_line
from contextkit.store.store import Store
from contextkit.thread import Thread

__all__ = ["check", "export_records", "export_thread", "import_records", "read_jsonl", "to_line"]


def export_thread(thread: Thread) -> Iterator[dict[str, Any]]:
    """The records of one thread (see `contextkit.db.transfer.export_thread`)."""
    return _transfer.export_thread(thread.ref)


def export_records(store: Store, *, owner: str | None = None) -> Iterator[dict[str, Any]]:
    """`store.export_records(owner=owner)`."""
    return store.export_records(owner=owner)


def import_records(store: Store, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """`store.import_records(records)`."""
    return store.import_records(records)


def check(store: Store) -> list[str]:
    """`store.check()`."""
    return store.check()
