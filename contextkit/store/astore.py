"""`AsyncStore` and `open_async()`: the store for asyncio apps, never blocking the loop.

The twin of `Store`: the same plans (`BaseStore`, `BaseThread`) run on SQLAlchemy asyncio
(`sqlite+aiosqlite` by default, `postgresql+psycopg` async), over the same file format and
migrations. Migrations run once per database per process, in a worker thread, before the
first use; the admin operations (export, import, integrity check) run the sync store's code
in a worker thread too (bulk work, not a chat turn's path).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from contextkit.db import aengine, migrate, transfer
from contextkit.db import engine as db
from contextkit.db.engine import URL, Engine
from contextkit.db.steps import Steps
from contextkit.models import spec_for
from contextkit.policy import CompactionPolicy
from contextkit.recall import SearchHit
from contextkit.store.base import THREADS_PAGE, BaseStore
from contextkit.summarizers import Summarizer
from contextkit.thread import AsyncThread
from contextkit.tokens.calibration import Calibration

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AsyncStore", "open_async"]

T = TypeVar("T")

DEFAULT_MODEL = "deepseek-v4-flash"
"""Whose tokenizer `open_async` builds in its worker thread (the first count's cost)."""
_MIGRATED: set[str] = set()
"""Databases (URL with password) this process has brought to the head revision."""


class AsyncStore(BaseStore):
    """Threads in one database, for asyncio: `await store.thread(...)` → `AsyncThread`.

    Safe to share between the tasks of one event loop (its connection pool hands each
    operation its own connection); open one per event loop.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        compaction: CompactionPolicy | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        super().__init__(compaction=compaction, summarizer=summarizer)
        self.engine = engine

    @property
    def url(self) -> URL:
        return self.engine.url

    def __repr__(self) -> str:
        return f"<AsyncStore {self.url.render_as_string(hide_password=True)}>"

    async def close(self) -> None:
        """Release pooled connections; the store and its threads refuse further work."""
        await aengine.aclose(self.engine)

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self, plan: Steps[T]) -> T:
        return await aengine.adrive(self.engine, plan)

    async def thread(
        self,
        id: str,
        *,
        model: str | None = None,
        owner: str = "",
        system: str | None = None,
        max_context_tokens: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AsyncThread:
        """`Store.thread`, awaited: get the thread `id` of `owner`, creating it if needed."""
        plan = self._thread_plan(id, model, owner, system, max_context_tokens, metadata)
        return AsyncThread(self, await self._run(plan))

    async def get_thread(self, id: str, *, owner: str = "") -> AsyncThread:
        """`Store.get_thread`, awaited: the existing thread, or `NotFound`."""
        return AsyncThread(self, await self._run(self._get_thread_plan(id, owner)))

    async def admin_thread(self, id: str, *, owner: str | None = None) -> AsyncThread | None:
        """`Store.admin_thread`, awaited (operators' tools)."""
        state = await self._run(self._admin_thread_plan(id, owner))
        return None if state is None else AsyncThread(self, state)

    def threads(
        self, *, owner: str = "", all_owners: bool = False, page_size: int = THREADS_PAGE
    ) -> AsyncIterator[AsyncThread]:
        """`Store.threads` as an async iterator (`async for thread in store.threads()`)."""
        owner = self._threads_args(owner, page_size)
        return self._thread_pages(None if all_owners else owner, page_size)

    async def _thread_pages(self, owner: str | None, page_size: int) -> AsyncIterator[AsyncThread]:
        cursor: tuple[Any, int] | None = None
        while True:
            states = await self._run(self._threads_page_plan(owner, cursor, page_size))
            for state in states:
                yield AsyncThread(self, state)
            if len(states) < page_size:
                return
            cursor = (states[-1].updated_at, states[-1].pk)

    async def calibration(self, model: str) -> Calibration:
        """`Store.calibration`, awaited."""
        return await self._run(self._calibration_plan(model))

    async def search(
        self,
        query: str,
        *,
        owner: str = "",
        limit: int = 10,
        roles: Iterable[str] | None = None,
    ) -> list[SearchHit]:
        """`Store.search`, awaited: the messages of `owner`'s threads that match `query`,
        best first; never another owner's."""
        return await self._run(self._search_plan(query, owner, limit, roles))

    async def export_records(self, *, owner: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """`Store.export_records` as an async iterator (pages read in a worker thread)."""
        engine = db.create_engine(aengine.sync_url(self.url))
        try:
            records = transfer.export_records(engine, owner=owner)
            while True:
                page = await asyncio.to_thread(_take, records, 500)
                for record in page:
                    yield record
                if len(page) < 500:
                    return
        finally:
            engine.dispose()

    async def import_records(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """`Store.import_records`, run in a worker thread."""
        return await self._admin(lambda engine: transfer.import_records(engine, records))

    async def check(self) -> list[str]:
        """`Store.check`, run in a worker thread."""
        return await self._admin(transfer.check)

    async def _admin(self, fn: Callable[[Engine], T]) -> T:
        def run() -> T:
            engine = db.create_engine(aengine.sync_url(self.url))
            try:
                return fn(engine)
            finally:
                engine.dispose()

        return await asyncio.to_thread(run)


def _take(records: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for record in records:
        out.append(record)
        if len(out) == n:
            break
    return out


async def open_async(
    url: str | URL | None = None,
    *,
    migrate_schema: bool = True,
    echo: bool = False,
    compaction: CompactionPolicy | None = None,
    summarizer: Summarizer | None = None,
    busy_timeout: float = 30.0,
) -> AsyncStore:
    """`contextkit.open` for asyncio: `store = await contextkit.open_async(url)`.

    `url` as for `open` (a `sqlite://` or `postgresql://` URL gets the async driver:
    `sqlite+aiosqlite`, psycopg async; needs the `async` extra). The schema is brought to
    the head revision once per database per process, in a worker thread.
    """
    engine = aengine.create_async_engine(url, echo=echo, busy_timeout=busy_timeout)
    try:
        await _schema(engine, migrate_schema=migrate_schema, busy_timeout=busy_timeout)
    except BaseException:
        await engine.dispose()
        raise
    return AsyncStore(engine, compaction=compaction, summarizer=summarizer)


def _warm_tokenizer() -> None:
    """Build the default model's tokenizer here (a worker thread), not on the event loop:
    the first count in a process loads its vocabulary."""
    spec_for(DEFAULT_MODEL).tokenizer.count("")


async def _schema(engine: AsyncEngine, *, migrate_schema: bool, busy_timeout: float) -> None:
    key = engine.url.render_as_string(hide_password=False)
    if key in _MIGRATED:
        return
    memory = engine.url.get_backend_name() == "sqlite" and engine.url.database in (
        None,
        "",
        ":memory:",
    )
    if memory:  # a private database of this engine: migrate it through the engine itself
        await aengine.adrive(engine, migrate.upgrade_plan(migrate_schema=migrate_schema))
        await asyncio.to_thread(_warm_tokenizer)
        return

    # concurrent first openers each run the upgrade: idempotent, serialized by the database
    def run() -> None:
        sync = migrate.open_engine(
            aengine.sync_url(engine.url),
            migrate_schema=migrate_schema,
            busy_timeout=busy_timeout,
        )
        sync.dispose()
        _warm_tokenizer()

    await asyncio.to_thread(run)
    _MIGRATED.add(key)
