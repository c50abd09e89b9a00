"""Kept for one release: `Thread` moved to `contextkit.thread`."""

from contextkit.db.messages import pending
from contextkit.thread import Thread

__all__ = ["Thread", "pending"]
