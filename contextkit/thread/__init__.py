"""Thread handles: `Thread` (sync) and `AsyncThread` (awaited), one set of decisions."""

from contextkit.thread._async import AsyncThread
from contextkit.thread._base import BaseThread
from contextkit.thread._sync import Thread

__all__ = ["AsyncThread", "BaseThread", "Thread"]
