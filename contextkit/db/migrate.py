"""Schema migrations through Alembic: the only way contextkit's tables change.

The migration scripts ship inside the package (`contextkit/_migrations` in the wheel;
`migrations/` at the top of a source checkout), so an installed contextkit can migrate a
new database from any working directory.

Opening a database that is already at the newest revision needs no Alembic: its revision is
read from Alembic's version table with plain SQL and compared with `HEAD`, a constant (a
test checks it against the scripts). Alembic is imported only to upgrade or downgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from contextkit.db import engine as _engine
from contextkit.db import steps
from contextkit.db.recount import recount_all
from contextkit.db.steps import Steps
from contextkit.errors import ContextKitError, StoreError, ValidationError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "HEAD",
    "VERSION_TABLE",
    "backfill",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrations_dir",
    "open_engine",
    "read_revision",
    "script_head",
    "upgrade",
    "upgrade_plan",
]

HEAD = "0009"
"""The newest schema revision: the last script of `migrations/versions` (checked by a test).
Adding a migration means updating this."""

VERSION_TABLE = "alembic_version"
"""Where Alembic records a database's revision (its default name, in the default schema)."""

_PACKAGE = Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed package, else the checkout."""
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ContextKitError(
        "contextkit's migration scripts are missing from this installation; reinstall contextkit"
    )


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def script_head() -> str:
    """The newest revision according to the migration scripts themselves (imports Alembic
    and reads every script; `HEAD` is the same without either)."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


def head_revision() -> str:
    """The newest schema revision (`HEAD`)."""
    return HEAD


def read_revision(conn: Connection) -> str | None:
    """The database's schema revision, None for a database without contextkit's tables.

    Read straight from Alembic's version table: one query on SQLite (a missing table is an
    error that leaves the transaction usable); on PostgreSQL, where a failed statement aborts
    the transaction, the table is looked up first (`to_regclass`, the search path's, as
    Alembic does).
    """
    select = text(f"SELECT version_num FROM {VERSION_TABLE}")
    if conn.dialect.name == "postgresql":
        found = conn.execute(text(f"SELECT to_regclass('{VERSION_TABLE}') IS NOT NULL"))
        if not found.scalar():
            return None
        rows = conn.execute(select).all()
    else:
        try:
            rows = conn.execute(select).all()
        except OperationalError as exc:
            if f"no such table: {VERSION_TABLE}" in str(exc.orig):
                return None
            raise
    if len(rows) > 1:
        heads = ", ".join(sorted(str(r[0]) for r in rows))
        raise ContextKitError(f"the database records several schema revisions ({heads})")
    return None if not rows else str(rows[0][0])


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database behind `engine` (None: no contextkit tables)."""
    with engine.connect() as conn:
        return read_revision(conn)


def _lock(conn: Connection) -> None:
    """Serialize concurrent migrators: advisory lock (PostgreSQL) / write lock (SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7046031822)"))


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Upgrade to `revision` (default head) unless already there; returns the new revision.

    Safe when several processes open a new database at once: they queue on a lock and the
    later ones find the work done.
    """
    return _engine.drive(engine, upgrade_plan(revision))


def upgrade_plan(revision: str = "head", *, migrate_schema: bool = True) -> Steps[str]:
    """`upgrade` as a plan, for either driver; with `migrate_schema=False` a database that
    is not at `revision` raises `ContextKitError` instead."""
    target = HEAD if revision == "head" else revision
    current = yield from steps.read(read_revision)
    if current == target:
        return target
    if not migrate_schema:
        raise ContextKitError("the database schema is not up to date; run: contextkit db upgrade")
    _check_forward(current, target)

    def run(conn: Connection) -> None:
        from alembic import command

        _lock(conn)
        if read_revision(conn) != target:
            command.upgrade(_config(conn), revision)
            if target == HEAD:
                backfill(conn)

    yield from steps.write(run, foreign_keys=False)
    return target


def _check_forward(current: str | None, target: str) -> None:
    """An upgrade goes forward: `target` must be a known revision that is not older than
    the database's (alembic's upgrade would silently do nothing)."""
    scripts = _scripts()
    known = {script.revision for script in scripts.walk_revisions()}
    if target not in known:
        raise ValidationError(f"no schema revision {target!r}; known: {', '.join(sorted(known))}")
    if current is None:
        return
    older = {script.revision for script in scripts.walk_revisions("base", current)}
    if target in older:
        raise ValidationError(
            f"the database is at revision {current}, newer than {target}; upgrade does not go "
            "back (contextkit.db.migrate.downgrade does, losing what newer revisions store)"
        )


def backfill(conn: Connection) -> None:
    """Data the revisions leave for live code: bookkeeping needs the tokenizer.

    Migrations are frozen (they carry their own SQL and import no library code), so the
    per-message counts and window weights of rows written before those columns existed are
    filled here, with the current code, once the schema is at head.
    """
    recount_all(conn, only_missing=True)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Downgrade to `revision` ("base" drops every contextkit table)."""

    def run(conn: Connection) -> None:
        from alembic import command

        _lock(conn)
        command.downgrade(_config(conn), revision)

    _engine.write(engine, run, foreign_keys=False)
    return current_revision(engine)


def open_engine(
    url: str | URL | None,
    *,
    echo: bool = False,
    migrate_schema: bool = True,
    busy_timeout: float = _engine.BUSY_TIMEOUT_S,
) -> Engine:
    """An engine for `url` whose schema is at head (upgraded unless `migrate_schema=False`).

    Driver and connection failures become `StoreError`; a bad location `ValidationError`.
    """
    engine = _engine.create_engine(url, echo=echo, busy_timeout=busy_timeout)
    try:
        if migrate_schema:
            upgrade(engine)
        elif current_revision(engine) != HEAD:
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
    return engine
