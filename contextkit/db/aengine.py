"""The async twin of `contextkit.db.engine`: the same settings, statements and retries on
SQLAlchemy asyncio (`sqlite+aiosqlite`, `postgresql+psycopg` async), never blocking the loop.

A step's function is the same sync `fn(conn)` the sync driver runs: `AsyncConnection.run_sync`
runs it with the async driver doing the I/O underneath, so a lock wait (SQLite's busy timeout,
a PostgreSQL row lock) suspends this task and leaves the event loop free. Retries sleep with
`asyncio.sleep`. Cancelling a task mid-step rolls its transaction back: nothing half-written.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from contextkit.db import engine as _engine
from contextkit.db.steps import Read, Runner, Steps, Write
from contextkit.errors import StoreError, ValidationError

if TYPE_CHECKING:  # SQLAlchemy's asyncio needs greenlet: imported when an engine is made
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["aclose", "adrive", "async_url", "create_async_engine", "sync_url"]

T = TypeVar("T")

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}
_CLOSED: weakref.WeakSet[AsyncEngine] = weakref.WeakSet()


def async_url(url: str | URL | None) -> URL:
    """`url` with an async driver: `sqlite://` → `sqlite+aiosqlite://`, PostgreSQL → psycopg
    (async); an URL that names an async driver already is kept."""
    parsed = _engine.normalize_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValidationError(f"contextkit stores threads in SQLite or PostgreSQL, not {backend}")
    if parsed.get_dialect().is_async or parsed.drivername == "postgresql+psycopg":
        return parsed
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def sync_url(url: URL) -> URL:
    """The same database through the sync driver (what migrations run on)."""
    return url.set(drivername=_SYNC_DRIVERS[url.get_backend_name()])


def create_async_engine(
    url: str | URL | None = None,
    *,
    echo: bool = False,
    busy_timeout: float = _engine.BUSY_TIMEOUT_S,
) -> AsyncEngine:
    """An `AsyncEngine` for `url` with the settings of `contextkit.db.engine.create_engine`."""
    parsed, kwargs = _engine.engine_options(async_url(url), echo=echo, busy_timeout=busy_timeout)
    try:
        from sqlalchemy.ext.asyncio import create_async_engine as _create

        engine = _create(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise _engine.driver_missing(parsed, exc) from None
    except (ImportError, ValueError) as exc:  # greenlet missing for SQLAlchemy's asyncio
        missing = ModuleNotFoundError(str(exc), name="greenlet")
        raise _engine.driver_missing(parsed, missing) from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.InvalidRequestError) as exc:
        raise ValidationError(f"not a usable async database URL ({exc})") from None
    _engine.register(engine.sync_engine, busy_timeout)
    return engine


async def aclose(engine: AsyncEngine) -> None:
    """Release the engine's connections; any later operation on it raises `StoreError`."""
    _CLOSED.add(engine)
    await engine.dispose()


async def _arun(
    engine: AsyncEngine, fn: Callable[[Connection], T], *, write: bool, foreign_keys: bool
) -> T:
    if engine in _CLOSED:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(
            f"the store for {where} was closed; open it again with contextkit.open_async()"
        )
    retry = _engine.retry_for(engine.sync_engine)
    while True:
        try:
            async with engine.connect() as conn:
                if write:
                    await conn.execution_options(**{_engine.WRITE_OPTION: True})
                return await conn.run_sync(
                    lambda sync: _engine.in_transaction(sync, fn, foreign_keys=foreign_keys)
                )
        except DBAPIError as exc:
            await asyncio.sleep(retry.pause(exc))


async def adrive(engine: AsyncEngine, plan: Steps[T]) -> T:
    """Run a plan of steps on `engine`, awaiting each: the async twin of `engine.drive`."""
    runner = Runner(plan)
    while (step := runner.next()) is not None:
        try:
            if isinstance(step, Read):
                value = await _arun(engine, step.fn, write=False, foreign_keys=True)
            elif isinstance(step, Write):
                value = await _arun(engine, step.fn, write=True, foreign_keys=step.foreign_keys)
            elif step.afn is not None:
                value = await step.afn()
            elif step.blocking:
                value = await asyncio.to_thread(step.fn)
            else:
                value = step.fn()
        except Exception as exc:  # thrown into the plan: it decides
            runner.settle(error=exc)
        else:
            runner.settle(value)
    return runner.result
