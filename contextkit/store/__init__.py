"""The `Store` facade and `open()`; the database layer itself is `contextkit.db`."""

from contextkit.store.store import Store, open
from contextkit.thread import Thread

__all__ = ["Store", "Thread", "open"]
