"""Schema migrations through Alembic: the only way contextkit's tables change.

The migration scripts ship inside the package (`contextkit/_migrations` in the wheel;
`migrations/` at the top of a source checkout), so an installed contextkit can migrate a
new database from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from contextkit.db import engine as _engine
from contextkit.db import steps
from contextkit.db.recount import recount_all
from contextkit.db.steps import Steps
from contextkit.errors import ContextKitError, StoreError, ValidationError

__all__ = [
    "backfill",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrations_dir",
    "open_engine",
    "upgrade",
    "upgrade_plan",
]

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
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


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
    target = head_revision() if revision == "head" else revision
    current = yield from steps.read(_revision)
    if current == target:
        return target
    if not migrate_schema:
        raise ContextKitError("the database schema is not up to date; run: contextkit db upgrade")
    _check_forward(current, target)

    def run(conn: Connection) -> None:
        _lock(conn)
        if MigrationContext.configure(conn).get_current_revision() != target:
            command.upgrade(_config(conn), revision)
            if target == head_revision():
                backfill(conn)

    yield from steps.write(run, foreign_keys=False)
    return target


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _check_forward(current: str | None, target: str) -> None:
    """An upgrade goes forward: `target` must be a known revision that is not older than
    the database's (alembic's upgrade would silently do nothing)."""
    scripts = ScriptDirectory.from_config(_config())
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
        elif current_revision(engine) != head_revision():
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
