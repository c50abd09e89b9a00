"""The schema comes only from Alembic migrations, which ship with the installed package."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import Database

import contextkit
from contextkit.store import migrate
from contextkit.store.schema import Base


def test_open_in_an_empty_directory_creates_the_database(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    env.pop("CONTEXTKIT_URL", None)
    code = "import contextkit; s = contextkit.open(); print(s.url)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    db = tmp_path / "contextkit.db"
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (migrate.head_revision(),)
        ]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_contextkit_url_environment_variable(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    env = {**os.environ, "CONTEXTKIT_URL": f"sqlite:///{target}"}
    code = "import contextkit; contextkit.open().thread('a', model='deepseek-v4-flash')"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert target.is_file() and not (tmp_path / "contextkit.db").exists()


def _cli() -> list[str]:
    exe = shutil.which("contextkit", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "contextkit"]


def test_cli_db_upgrade(database: Database, tmp_path: Path) -> None:
    out = subprocess.run(
        [*_cli(), "db", "upgrade", database.url], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert f"-> {migrate.head_revision()}" in out.stdout
    again = subprocess.run(
        [*_cli(), "db", "upgrade", database.url], capture_output=True, text=True, cwd=tmp_path
    )
    assert "already at revision" in again.stdout
    current = subprocess.run(
        [*_cli(), "db", "current", database.url], capture_output=True, text=True
    )
    assert "up to date" in current.stdout
    engine = database.engine()
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_migrations_match_the_models(database: Database) -> None:
    engine = database.engine()
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(database: Database) -> None:
    engine = database.engine()
    migrate.upgrade(engine)
    assert migrate.downgrade(engine, "base") is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert {"threads", "messages", "tool_calls"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_open_without_migrating_refuses_an_old_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    try:
        contextkit.open(url, migrate_schema=False)
    except contextkit.ContextKitError as exc:
        assert "contextkit db upgrade" in str(exc)
    else:
        raise AssertionError("expected ContextKitError")
    contextkit.open(url).close()
    contextkit.open(url, migrate_schema=False).close()
