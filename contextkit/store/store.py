"""`Store`: the database of threads, and `open()`, the way to get one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from contextkit.db import engine as db
from contextkit.db import migrate, transfer
from contextkit.db.engine import URL, Engine
from contextkit.db.steps import Steps
from contextkit.policy import CompactionPolicy
from contextkit.recall import SearchHit
from contextkit.store.base import THREADS_PAGE, BaseStore
from contextkit.summarizers import Summarizer
from contextkit.thread import Thread
from contextkit.tokens.calibration import Calibration

__all__ = ["Store", "open"]

T = TypeVar("T")


class Store(BaseStore):
    """Threads in one database (SQLite file or PostgreSQL). Thread-safe; share one per process."""

    def __init__(
        self,
        engine: Engine,
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
        return f"<Store {self.url.render_as_string(hide_password=True)}>"

    def close(self) -> None:
        """Release pooled connections; the store and its threads refuse further work
        (`StoreError`). Open the database again with `contextkit.open()`."""
        db.close(self.engine)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, plan: Steps[T]) -> T:
        return db.drive(self.engine, plan)

    def thread(
        self,
        id: str,
        *,
        model: str | None = None,
        owner: str = "",
        system: str | None = None,
        max_context_tokens: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Thread:
        """Get the thread `id` of `owner`, creating it if it does not exist.

        Ids are unique per owner: another owner's thread of the same id is another thread,
        never revealed. Creating needs `model`. Opening never changes an existing thread:
        settings passed here must equal the stored ones (or be left at None), else
        `ValidationError`; change them with `thread.update(...)`.
        """
        plan = self._thread_plan(id, model, owner, system, max_context_tokens, metadata)
        return Thread(self, self._run(plan))

    def get_thread(self, id: str, *, owner: str = "") -> Thread:
        """The existing thread `id` of `owner`; `NotFound` if there is none, never creates."""
        return Thread(self, self._run(self._get_thread_plan(id, owner)))

    def admin_thread(self, id: str, *, owner: str | None = None) -> Thread | None:
        """The thread `id` (of `owner`, or of whichever owner has one), or None: for
        operators' tools (CLI, export). `ValidationError` if several owners have an `id`
        and no `owner` is given. Applications use `thread()` / `get_thread()`.
        """
        state = self._run(self._admin_thread_plan(id, owner))
        return None if state is None else Thread(self, state)

    def threads(
        self, *, owner: str = "", all_owners: bool = False, page_size: int = THREADS_PAGE
    ) -> Iterator[Thread]:
        """The owner's threads, most recently updated first (`all_owners=True`: everyone's)."""
        owner = self._threads_args(owner, page_size)
        return self._thread_pages(None if all_owners else owner, page_size)

    def _thread_pages(self, owner: str | None, page_size: int) -> Iterator[Thread]:
        cursor: tuple[Any, int] | None = None
        while True:
            states = self._run(self._threads_page_plan(owner, cursor, page_size))
            for state in states:
                yield Thread(self, state)
            if len(states) < page_size:
                return
            cursor = (states[-1].updated_at, states[-1].pk)

    def calibration(self, model: str) -> Calibration:
        """What the provider reported beyond contextkit's counts for `model`, per prompt
        structure, as learned from recorded calls (`build()` adds the positive gaps)."""
        return self._run(self._calibration_plan(model))

    def export_records(self, *, owner: str | None = None) -> Iterator[dict[str, Any]]:
        """Export records of every thread (of `owner`; all owners when None), paged."""
        return transfer.export_records(self.engine, owner=owner)

    def import_records(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Recreate exported threads; returns their ids (all or nothing: one transaction)."""
        return transfer.import_records(self.engine, records)

    def check(self) -> list[str]:
        """Integrity problems of the whole store (empty list: clean)."""
        return transfer.check(self.engine)

    def search(
        self,
        query: str,
        *,
        owner: str = "",
        limit: int = 10,
        roles: Iterable[str] | None = None,
    ) -> list[SearchHit]:
        """The messages of `owner`'s threads that match `query`, best first (at most
        `limit`); never another owner's. Syntax and `roles` as for `Thread.search`; each hit
        names its thread (`thread_id`)."""
        return self._run(self._search_plan(query, owner, limit, roles))


def open(
    url: str | URL | None = None,
    *,
    migrate_schema: bool = True,
    echo: bool = False,
    compaction: CompactionPolicy | None = None,
    summarizer: Summarizer | None = None,
    busy_timeout: float = 30.0,
) -> Store:
    """Open the store at `url` (default: `CONTEXTKIT_URL`, else `sqlite:///./contextkit.db`).

    `busy_timeout` (seconds, default 30) bounds how long an operation waits for a lock
    another connection holds, retries included; then it raises `StoreError`.

    Upgrades the schema to the newest migration first (safe with concurrent openers); with
    `migrate_schema=False` a database that is not up to date raises `ContextKitError`.
    `compaction` and `summarizer` are the defaults `build()` uses on this store's threads.
    """
    engine = migrate.open_engine(
        url, echo=echo, migrate_schema=migrate_schema, busy_timeout=busy_timeout
    )
    return Store(engine, compaction=compaction, summarizer=summarizer)
