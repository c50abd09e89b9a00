"""`Store`: the database of threads, and `open()`, the way to get one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from contextkit._validators import check_int
from contextkit.errors import ContextKitError, PermissionDenied, StoreError, ValidationError
from contextkit.models import get_model
from contextkit.store import engine as db
from contextkit.store import migrate
from contextkit.store.schema import THREADS, ThreadRow, utcnow
from contextkit.store.thread import Thread
from contextkit.types import ThreadInfo, canonical_json, check_id, check_text

if TYPE_CHECKING:
    from contextkit.compaction import CompactionPolicy, Summarizer

__all__ = ["Store", "open"]

_MAX_METADATA = 64 * 1024


class Store:
    """Threads in one database (SQLite file or PostgreSQL). Thread-safe; share one per process."""

    def __init__(
        self,
        engine: Engine,
        *,
        compaction: CompactionPolicy | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        from contextkit.compaction import CompactionPolicy, ExtractiveSummarizer

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
        """Release pooled connections."""
        self.engine.dispose()

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
        """Get the thread `id`, creating it if it does not exist.

        Creating needs `model`. For an existing thread, settings passed here that differ
        from the stored ones are updated (the caller's configuration wins); settings left
        at None are kept. A thread of another owner raises `PermissionDenied`.
        """
        check_id(id, "thread id")
        owner = _check_owner(owner)
        values = self._settings(
            model=model, system=system, max_context_tokens=max_context_tokens, metadata=metadata
        )

        def txn(conn: Connection) -> tuple[int, ThreadInfo]:
            row = self._row(conn, id)
            if row is None:
                if model is None:
                    raise ValidationError(
                        f"thread {id!r} does not exist; pass model= (e.g. 'deepseek-v4-flash') "
                        "to create it"
                    )
                now = utcnow()
                new = {
                    "id": id,
                    "owner": owner,
                    "model": model,
                    "system": system,
                    "max_context_tokens": values.get("max_context_tokens")
                    or get_model(model).default_context_tokens,
                    "metadata": values.get("metadata", {}),
                    "last_seq": 0,
                    "total_tokens": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
                conn.execute(insert(THREADS).values(**new).on_conflict_do_nothing())
                row = self._row(conn, id)
                assert row is not None
            if row["owner"] != owner:
                raise PermissionDenied(
                    f"thread {id!r} belongs to another owner; open it with its owner's id"
                )
            row = self._apply(conn, row, values)
            return row["pk"], self._info_from_row(row)

        pk, info = db.write(self.engine, txn)
        return Thread(self, pk, info)

    def _apply(self, conn: Connection, row: RowMapping, values: Mapping[str, Any]) -> RowMapping:
        """Store changed settings; a new model recounts the thread in its tokenizer.

        Runs inside the caller's write transaction, so a failure changes nothing.
        """
        changed = {k: v for k, v in values.items() if row[k] != v}
        if not changed:
            return row
        from contextkit.store import ledger

        spec = ledger.spec_for(changed.get("model", row["model"]))
        budget = changed.get("max_context_tokens", row["max_context_tokens"])
        if budget > spec.context_window:
            raise ValidationError(
                f"max_context_tokens {budget:,} exceeds {spec.name}'s window "
                f"({spec.context_window:,}); lower it together with the model change"
            )
        conn.execute(
            THREADS.update().where(THREADS.c.pk == row["pk"]).values(**changed, updated_at=utcnow())
        )
        if "model" in changed:
            ledger.recount(conn, row["pk"], spec)
        new = self._row(conn, row["id"])
        assert new is not None
        return new

    def get_thread(self, id: str, *, owner: str = "") -> Thread:
        """The existing thread `id`; `NotFound` if there is none, never creates."""
        from contextkit.errors import NotFound

        check_id(id, "thread id")
        owner = _check_owner(owner)
        row = db.read(self.engine, lambda conn: self._row(conn, id))
        if row is None:
            raise NotFound(f"no thread {id!r}")
        if row["owner"] != owner:
            raise PermissionDenied(f"thread {id!r} belongs to another owner")
        return Thread(self, row["pk"], self._info_from_row(row))

    def admin_thread(self, id: str) -> Thread | None:
        """The thread `id` whatever its owner, or None: for operators' tools (CLI, export).

        Applications should use `thread()` / `get_thread()`, which enforce the owner.
        """
        check_id(id, "thread id")
        row = db.read(self.engine, lambda conn: self._row(conn, id))
        return None if row is None else Thread(self, row["pk"], self._info_from_row(row))

    def threads(
        self, *, owner: str = "", all_owners: bool = False, page_size: int = 200
    ) -> Iterator[Thread]:
        """The owner's threads, most recently updated first (`all_owners=True`: everyone's)."""
        owner = _check_owner(owner)
        check_int(page_size, "page_size", 1, 100_000)
        cursor: tuple[Any, int] | None = None
        while True:

            def page(conn: Connection, cursor: tuple[Any, int] | None = cursor) -> list[RowMapping]:
                stmt = select(ThreadRow).order_by(ThreadRow.updated_at.desc(), ThreadRow.pk.desc())
                if not all_owners:
                    stmt = stmt.where(ThreadRow.owner == owner)
                if cursor is not None:
                    at, pk = cursor
                    stmt = stmt.where(
                        (ThreadRow.updated_at < at)
                        | ((ThreadRow.updated_at == at) & (ThreadRow.pk < pk))
                    )
                return list(conn.execute(stmt.limit(page_size)).mappings())

            rows = db.read(self.engine, page)
            for row in rows:
                yield Thread(self, row["pk"], self._info_from_row(row))
            if len(rows) < page_size:
                return
            cursor = (rows[-1]["updated_at"], rows[-1]["pk"])

    def _row(self, conn: Connection, id: str) -> RowMapping | None:
        stmt = select(ThreadRow).where(ThreadRow.id == id)
        if conn.get_execution_options().get("contextkit_write"):
            stmt = stmt.with_for_update()
        return conn.execute(stmt).mappings().one_or_none()

    def _info_from_row(self, row: RowMapping) -> ThreadInfo:
        return ThreadInfo(
            id=row["id"],
            owner=row["owner"],
            model=row["model"],
            system=row["system"],
            max_context_tokens=row["max_context_tokens"],
            metadata=row["metadata"] or {},
            message_count=row["last_seq"],
            total_tokens=row["total_tokens"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def _settings(
        self,
        *,
        model: str | None,
        system: str | None,
        max_context_tokens: int | None,
        metadata: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Validated thread settings, keyed by column; None means 'not given'."""
        values: dict[str, Any] = {}
        spec = None
        if model is not None:
            if not isinstance(model, str):
                raise ValidationError(f"model must be a string, got {type(model).__name__}")
            spec = get_model(model)
            values["model"] = model
        if system is not None:
            if not isinstance(system, str):
                raise ValidationError(f"system must be a string, got {type(system).__name__}")
            values["system"] = check_text(system, "system")
        if max_context_tokens is not None:
            if isinstance(max_context_tokens, bool) or not isinstance(max_context_tokens, int):
                raise ValidationError(
                    f"max_context_tokens must be an int, got {type(max_context_tokens).__name__}"
                )
            window = spec.context_window if spec is not None else None
            if max_context_tokens < 1 or (window is not None and max_context_tokens > window):
                raise ValidationError(
                    f"max_context_tokens must be between 1 and the model's window "
                    f"({window if window is not None else 'see contextkit.get_model'}), "
                    f"got {max_context_tokens}"
                )
            values["max_context_tokens"] = max_context_tokens
        if metadata is not None:
            values["metadata"] = _check_metadata(metadata)
        return values


def _check_owner(owner: object) -> str:
    if not isinstance(owner, str):
        raise ValidationError(f"owner must be a string, got {type(owner).__name__}")
    if len(owner) > 255:
        raise ValidationError(f"owner is {len(owner)} characters long; the limit is 255")
    return check_text(owner, "owner")


def _check_metadata(metadata: object) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        text = canonical_json(dict(metadata))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"metadata must be JSON-serializable: {exc}") from None
    check_text(text, "metadata")
    if len(text.encode()) > _MAX_METADATA:
        raise ValidationError(f"metadata is larger than {_MAX_METADATA} bytes as JSON")
    import json

    loaded: dict[str, Any] = json.loads(text)
    return loaded


def open(
    url: str | URL | None = None,
    *,
    migrate_schema: bool = True,
    echo: bool = False,
    compaction: CompactionPolicy | None = None,
    summarizer: Summarizer | None = None,
) -> Store:
    """Open the store at `url` (default: `CONTEXTKIT_URL`, else `sqlite:///./contextkit.db`).

    Upgrades the schema to the newest migration first (safe with concurrent openers); with
    `migrate_schema=False` a database that is not up to date raises `ContextKitError`.
    `compaction` and `summarizer` are the defaults `build()` uses on this store's threads.
    """
    engine = db.create_engine(url, echo=echo)
    try:
        if migrate_schema:
            migrate.upgrade(engine)
        elif migrate.current_revision(engine) != migrate.head_revision():
            raise ContextKitError(
                "the database schema is not up to date; run: contextkit db upgrade"
            )
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the database ({type(exc).__name__}: {exc})") from None
    except (ValueError, UnicodeError) as exc:
        engine.dispose()
        raise ValidationError(f"not a usable database location ({exc})") from None
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, compaction=compaction, summarizer=summarizer)
