"""The exceptions contextkit raises.

Everything contextkit raises on bad input or a refused operation is a `ContextKitError`,
so callers can catch one type; each message says what was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AsyncOnlyError",
    "CacheWarning",
    "CompactionWarning",
    "ContextKitError",
    "ContextOverflowError",
    "ImageError",
    "LengthWarning",
    "NotFound",
    "NotFoundError",
    "PermissionDenied",
    "PermissionDeniedError",
    "StoreError",
    "UnknownModelError",
    "ValidationError",
]


class ContextKitError(Exception):
    """Base class of every error contextkit raises on purpose."""


class ValidationError(ContextKitError, ValueError):
    """Input had the wrong shape or value; nothing was written."""


class ContextOverflowError(ContextKitError):
    """The prompt cannot fit the token budget, even with only the newest turn.

    Carries the numbers so callers can react (raise the budget, lower `max_tokens`,
    shorten the message).
    """

    def __init__(
        self, message: str, *, needed: int | None = None, budget: int | None = None
    ) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget


class PermissionDeniedError(ContextKitError):
    """Kept for compatibility; contextkit no longer raises it for threads.

    Thread ids are unique per owner (revision 0007): another owner's id names a new thread
    of yours, so a tenant guessing ids learns nothing. Code catching it keeps working.
    """


PermissionDenied = PermissionDeniedError
"""Kept for one release: the old name of `PermissionDeniedError`."""


class ImageError(ContextKitError, ValueError):
    """An image is corrupt, of an unsupported format, or beyond the model's limits."""


class UnknownModelError(ContextKitError, KeyError):
    """A model id is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFoundError(ContextKitError, LookupError):
    """The thread or message does not exist (or was deleted)."""


NotFound = NotFoundError
"""Kept for one release: the old name of `NotFoundError`."""


class AsyncOnlyError(ContextKitError, RuntimeError):
    """A sync method was called on an object backed by the async store (an `AsyncThread`).

    Such an object has only its awaited methods: a sync call would have to block the event
    loop on database I/O. The message names the awaited method to use instead.
    """


class StoreError(ContextKitError):
    """The database refused or failed an operation after bounded retries."""


class CompactionWarning(UserWarning):
    """A compaction failed; the thread is unchanged and the prompt fell back to the cut point."""


class CacheWarning(UserWarning):
    """A call breaks the provider's prefix cache in a way the caller can avoid."""


class LengthWarning(UserWarning):
    """A reply stopped at `max_tokens` (finish_reason "length"): it is cut short."""
