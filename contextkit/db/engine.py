"""Engines and transactions that behave the same on SQLite and PostgreSQL.

SQLite gets WAL, a busy timeout, foreign keys, and real transactions (`BEGIN` for reads,
`BEGIN IMMEDIATE` for writes, so two writers queue instead of deadlocking on upgrade).
PostgreSQL writers lock the thread row. Both retry transient conflicts, bounded.
"""

from __future__ import annotations

import os
import random
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

from contextkit.db.steps import Read, Runner, Steps, Write
from contextkit.errors import ContextKitError, StoreError, ValidationError

__all__ = [
    "DEFAULT_URL",
    "URL",
    "Connection",
    "Engine",
    "close",
    "create_engine",
    "drive",
    "normalize_url",
    "read",
    "write",
]

DEFAULT_URL = "sqlite:///./contextkit.db"
BUSY_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 12
WRITE_OPTION = "contextkit_write"
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}

T = TypeVar("T")


def normalize_url(url: str | URL | None) -> URL:
    """Resolve the database URL: argument, then `CONTEXTKIT_URL`, then `./contextkit.db`.

    Plain `postgresql://` URLs use psycopg 3 (the `postgres` extra).
    """
    raw = url if url is not None else os.environ.get("CONTEXTKIT_URL") or DEFAULT_URL
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ValidationError(f"not a database URL: {raw!s:.200} ({exc})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def engine_options(
    url: str | URL | None, *, echo: bool, busy_timeout: float
) -> tuple[URL, dict[str, Any]]:
    """The normalized URL and engine arguments contextkit uses (both drivers)."""
    if (
        isinstance(busy_timeout, bool)
        or not isinstance(busy_timeout, (int, float))
        or not 0 < busy_timeout <= 86_400
    ):
        raise ValidationError(
            f"busy_timeout must be a number of seconds in (0, 86400], got {busy_timeout!r:.40}"
        )
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        if parsed.get_dialect().driver == "psycopg":
            kwargs["connect_args"] = {"options": f"-c lock_timeout={int(busy_timeout * 1000)}"}
    return parsed, kwargs


def driver_missing(parsed: URL, exc: ModuleNotFoundError) -> ContextKitError:
    """The error for a database driver that is not installed, with the install command."""
    if parsed.get_backend_name() == "postgresql":
        hint = "run: pip install 'contextkit[postgres]'"
    elif parsed.get_dialect().is_async:
        hint = "run: pip install 'contextkit[async]'"
    else:
        hint = "contextkit stores threads in SQLite or PostgreSQL (postgresql+psycopg://...)"
    return ContextKitError(
        f"the database driver for {parsed.drivername} is not installed ({exc.name}); {hint}"
    )


def create_engine(
    url: str | URL | None = None, *, echo: bool = False, busy_timeout: float = BUSY_TIMEOUT_S
) -> Engine:
    """An engine for `url` with contextkit's connection settings applied.

    `busy_timeout` (seconds) bounds how long one operation waits for a lock another
    connection holds (SQLite's write lock, a PostgreSQL row lock), retries included; then
    `StoreError` names the database.
    """
    parsed, kwargs = engine_options(url, echo=echo, busy_timeout=busy_timeout)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise driver_missing(parsed, exc) from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ValidationError(f"not a usable database URL ({exc})") from None
    register(engine, busy_timeout)
    return engine


_BUSY: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
"""Each engine's lock-wait bound, for the retries."""
_CLOSED: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Engines whose store was closed: they refuse further work instead of reconnecting."""


def close(engine: Engine) -> None:
    """Release the engine's connections; any later operation on it raises `StoreError`."""
    _CLOSED.add(engine)
    engine.dispose()


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _transient(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


class Retry:
    """The retry rule both drivers share: which errors are lock conflicts, how long to
    pause before the next attempt, and the `StoreError` to raise when out of attempts."""

    def __init__(self, engine_url: URL, bound: float) -> None:
        self.url = engine_url
        self.bound = bound
        self.deadline = time.monotonic() + bound
        self.attempt = 0

    def pause(self, exc: DBAPIError) -> float:
        """Seconds to wait before retrying after `exc`; raises `StoreError` when done."""
        self.attempt += 1
        locked = _transient(exc)
        if locked and self.attempt < MAX_ATTEMPTS and time.monotonic() < self.deadline:
            pause: float = min(2.0, 0.01 * 2**self.attempt) * random.uniform(0.5, 1.5)
            return max(0.0, min(pause, self.deadline - time.monotonic()))
        where = self.url.render_as_string(hide_password=True)
        if locked:
            raise StoreError(
                f"the database {where} stayed locked for {self.bound:g} s: another connection "
                "holds its write lock (a long transaction, another process); retry later, "
                "or give contextkit.open(..., busy_timeout=SECONDS) more time"
            ) from exc
        raise StoreError(
            f"the database {where} failed the operation ({type(exc.orig).__name__}: "
            f"{str(exc.orig).strip()[:300]})"
        ) from exc


def check_open(engine: Engine) -> None:
    """`StoreError` if the engine's store was closed."""
    if engine in _CLOSED:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"the store for {where} was closed; open it again with contextkit.open()")


def retry_for(engine: Engine) -> Retry:
    """A fresh retry budget for one operation on `engine` (its busy timeout)."""
    return Retry(engine.url, _BUSY.get(engine, BUSY_TIMEOUT_S))


def register(engine: Engine, busy_timeout: float) -> None:
    """Record `engine`'s lock-wait bound and apply contextkit's SQLite settings to it (the
    sync engine inside an `AsyncEngine` too: its events fire on the async connections)."""
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout)
    _BUSY[engine] = float(busy_timeout)


def in_transaction(conn: Connection, fn: Callable[[Connection], T], *, foreign_keys: bool) -> T:
    """Run `fn` in a transaction of `conn` (foreign keys off on SQLite when asked)."""
    if foreign_keys or conn.dialect.name != "sqlite":
        with conn.begin():
            return fn(conn)
    return _without_foreign_keys(conn, fn)


def _run(
    engine: Engine, fn: Callable[[Connection], T], *, write: bool, foreign_keys: bool = True
) -> T:
    check_open(engine)
    retry = retry_for(engine)
    while True:
        try:
            with engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                return in_transaction(conn, fn, foreign_keys=foreign_keys)
        except DBAPIError as exc:
            time.sleep(retry.pause(exc))


def _without_foreign_keys(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """Run `fn` in a transaction with SQLite's foreign keys off, checked before commit.

    Schema migrations rebuild tables (copy, drop, rename); with foreign keys on, dropping
    the old `threads` table would cascade-delete every message. The pragma only takes effect
    outside a transaction, hence the raw connection.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    _pragma(raw, "PRAGMA foreign_keys=OFF")
    try:
        with conn.begin():
            result = fn(conn)
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StoreError(f"migration left {len(broken)} dangling rows; rolled back")
        return result
    finally:
        _pragma(raw, "PRAGMA foreign_keys=ON")


def _pragma(raw: Any, sql: str) -> None:
    """Run a pragma on the DBAPI connection (sqlite3's or the aiosqlite adapter's)."""
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def write(engine: Engine, fn: Callable[[Connection], T], *, foreign_keys: bool = True) -> T:
    """Run `fn` in a write transaction, retrying busy/serialization conflicts (bounded).

    `foreign_keys=False` is for schema migrations on SQLite (see `_without_foreign_keys`).
    """
    return _run(engine, fn, write=True, foreign_keys=foreign_keys)


def read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run `fn` in a read transaction (one consistent snapshot), with the same retries."""
    return _run(engine, fn, write=False)


def drive(engine: Engine, plan: Steps[T]) -> T:
    """Run a plan of steps (`contextkit.db.steps`) on `engine`, each in its own transaction."""
    runner = Runner(plan)
    while (step := runner.next()) is not None:
        try:
            if isinstance(step, Read):
                value = _run(engine, step.fn, write=False)
            elif isinstance(step, Write):
                value = _run(engine, step.fn, write=True, foreign_keys=step.foreign_keys)
            else:
                value = step.fn()
        except Exception as exc:  # thrown into the plan: it decides
            runner.settle(error=exc)
        else:
            runner.settle(value)
    return runner.result
