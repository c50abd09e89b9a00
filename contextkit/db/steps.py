"""Operations as plans of I/O steps: one implementation, run by a sync or an async driver.

An operation that needs the database (or a summarizer) between its decisions is written once,
as a generator that yields `Read`, `Write` and `Call` steps and receives each step's result.
`contextkit.db.engine.drive` runs a plan on a sync `Engine`; `contextkit.db.aengine.adrive`
runs the same plan on an `AsyncEngine` without blocking the event loop (the httpx way: the
decisions are shared, only the I/O differs). A step that raises is thrown back into the plan,
so `try`/`except` around a `yield` behaves as around a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeAlias, TypeVar

from attrs import frozen
from sqlalchemy.engine import Connection

__all__ = ["Call", "Read", "Runner", "Step", "Steps", "Write", "call", "read", "write"]

T = TypeVar("T")


@frozen
class Read(Generic[T]):
    """Run `fn(conn)` in a read transaction (one consistent snapshot)."""

    fn: Callable[[Connection], T]


@frozen
class Write(Generic[T]):
    """Run `fn(conn)` in a write transaction, retried on lock conflicts (bounded)."""

    fn: Callable[[Connection], T]
    foreign_keys: bool = True


@frozen
class Call(Generic[T]):
    """Call code that is not the database (a summarizer): `fn()` on a sync driver.

    The async driver awaits `afn()` when there is one, else runs `fn` in a worker thread
    when `blocking` (it may wait on the network), else calls it inline (pure, short).
    """

    fn: Callable[[], T]
    afn: Callable[[], Awaitable[T]] | None = None
    blocking: bool = True


Step: TypeAlias = "Read[Any] | Write[Any] | Call[Any]"
Steps: TypeAlias = Generator["Step", Any, T]
"""A plan returning `T`: yields steps, is sent each step's result."""


def read(fn: Callable[[Connection], T]) -> Steps[T]:
    """`value = yield from read(fn)`: a typed read step."""
    result: T = yield Read(fn)
    return result


def write(fn: Callable[[Connection], T], *, foreign_keys: bool = True) -> Steps[T]:
    """`value = yield from write(fn)`: a typed write step."""
    result: T = yield Write(fn, foreign_keys)
    return result


def call(
    fn: Callable[[], T], afn: Callable[[], Awaitable[T]] | None = None, *, blocking: bool = True
) -> Steps[T]:
    """`value = yield from call(fn, afn)`: a typed call of non-database code."""
    result: T = yield Call(fn, afn, blocking)
    return result


class Runner(Generic[T]):
    """Walks a plan for a driver: `next()` is the step to run (None once the plan returned,
    its value in `result`); `settle()` hands the plan that step's value or error."""

    def __init__(self, plan: Steps[T]) -> None:
        self._plan = plan
        self._value: Any = None
        self._error: Exception | None = None
        self.result: T

    def next(self) -> Step | None:
        value, error = self._value, self._error
        self._value = self._error = None
        try:
            return self._plan.throw(error) if error is not None else self._plan.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def settle(self, value: Any = None, error: Exception | None = None) -> None:
        self._value, self._error = value, error
