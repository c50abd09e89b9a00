"""`Store`: the database of threads, and `open()`, the way to get one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from types import TracebackType
from typing import Any

from contextkit import recall
from contextkit._validators import check_int
from contextkit.db import calls, migrate, search, threads, transfer
from contextkit.db import engine as db
from contextkit.db.engine import URL, Engine
from contextkit.errors import NotFound, UnknownModelError, ValidationError
from contextkit.models import spec_for
from contextkit.policy import CompactionPolicy
from contextkit.recall import SearchHit
from contextkit.settings import check_owner, thread_settings
from contextkit.summarizers import ExtractiveSummarizer, Summarizer
from contextkit.thread import Thread
from contextkit.tokens.calibration import Calibration
from contextkit.types import check_id

__all__ = ["Store", "open"]


class Store:
    """Threads in one database (SQLite file or PostgreSQL). Thread-safe; share one per process."""

    def __init__(
        self,
        engine: Engine,
        *,
        compaction: CompactionPolicy | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.engine = engine
        self.compaction: CompactionPolicy = compaction or CompactionPolicy()
        """Default compaction policy of `build()` on this store's threads."""
        self.summarizer: Summarizer = summarizer or ExtractiveSummarizer()
        """Default summarizer (offline and deterministic unless one is given)."""

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
        check_id(id, "thread id")
        owner = check_owner(owner)
        values = thread_settings(
            model=model, system=system, max_context_tokens=max_context_tokens, metadata=metadata
        )
        state = db.write(self.engine, lambda conn: threads.get_or_create(conn, id, owner, values))
        return Thread(self, state)

    def get_thread(self, id: str, *, owner: str = "") -> Thread:
        """The existing thread `id` of `owner`; `NotFound` if there is none, never creates."""
        check_id(id, "thread id")
        owner = check_owner(owner)
        state = db.read(self.engine, partial(threads.by_id, id=id, owner=owner))
        if state is None:
            raise NotFound(f"no thread {id!r} of owner {owner!r}")
        return Thread(self, state)

    def admin_thread(self, id: str, *, owner: str | None = None) -> Thread | None:
        """The thread `id` (of `owner`, or of whichever owner has one), or None: for
        operators' tools (CLI, export). `ValidationError` if several owners have an `id`
        and no `owner` is given. Applications use `thread()` / `get_thread()`.
        """
        check_id(id, "thread id")
        if owner is not None:
            owner = check_owner(owner)
            state = db.read(self.engine, partial(threads.by_id, id=id, owner=owner))
            return None if state is None else Thread(self, state)
        found = db.read(self.engine, partial(threads.by_id_any_owner, id=id))
        if len(found) > 1:
            owners = ", ".join(repr(s.owner) for s in found[:5])
            raise ValidationError(
                f"{len(found)} owners have a thread {id!r} ({owners}); name the owner "
                "(owner=..., or --owner on the command line)"
            )
        return Thread(self, found[0]) if found else None

    def threads(
        self, *, owner: str = "", all_owners: bool = False, page_size: int = 200
    ) -> Iterator[Thread]:
        """The owner's threads, most recently updated first (`all_owners=True`: everyone's)."""
        owner = check_owner(owner)
        check_int(page_size, "page_size", 1, 100_000)
        cursor: tuple[Any, int] | None = None
        while True:
            states = db.read(
                self.engine,
                partial(
                    threads.page,
                    owner=None if all_owners else owner,
                    cursor=cursor,
                    limit=page_size,
                ),
            )
            for state in states:
                yield Thread(self, state)
            if len(states) < page_size:
                return
            cursor = (states[-1].updated_at, states[-1].pk)

    def calibration(self, model: str) -> Calibration:
        """What the provider reported beyond contextkit's counts for `model`, per prompt
        structure, as learned from recorded calls (`build()` adds the positive gaps)."""
        try:
            name = spec_for(model).name
        except UnknownModelError:  # a model this process has not registered: as stored
            name = model
        return db.read(self.engine, partial(calls.calibration, model=name))

    def export_records(self, *, owner: str | None = None) -> Iterator[dict[str, Any]]:
        """Export records of every thread (of `owner`; all owners when None), paged."""
        return transfer.export_records(self.engine, owner=owner)

    def import_records(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Recreate exported threads; returns their ids (each thread all or nothing)."""
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
        parsed = recall.parse_query(query)
        found = db.read(
            self.engine,
            partial(
                search.search_owner,
                owner=check_owner(owner),
                match=parsed.match(),
                limit=recall.check_limit(limit),
                roles=recall.check_roles(roles),
            ),
        )
        return recall.hits(found, parsed)


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
