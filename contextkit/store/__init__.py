"""The `Store` / `AsyncStore` facades, `open()` and `open_async()`; the database layer
itself is `contextkit.db`."""

from contextkit.store.astore import AsyncStore, open_async
from contextkit.store.store import Store, open
from contextkit.thread import AsyncThread, Thread

__all__ = ["AsyncStore", "AsyncThread", "Store", "Thread", "open", "open_async"]
