"""Persistence: the schema, migrations, and the `Store` / `Thread` handles."""

from contextkit.store.store import Store, open
from contextkit.store.thread import Thread

__all__ = ["Store", "Thread", "open"]
