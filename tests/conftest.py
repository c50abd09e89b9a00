"""Shared fixtures: every store test runs on a real SQLite file and a real PostgreSQL server.

PostgreSQL comes from `CONTEXTKIT_TEST_PG_URL` (set by `.ci/run`, which starts a throw-away
server). Without it the PostgreSQL cases skip with the reason shown; under `CI=true` a
missing server is an error instead, so CI cannot go green without testing PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import contextkit

PG_URL = os.environ.get("CONTEXTKIT_TEST_PG_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI nothing skips: a skipped test (a missing optional dependency, a missing
    server) fails, so CI cannot go green without running it."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which runs every test: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a whole module skipped at import (`pytest.importorskip`)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which runs every test: {report.longrepr}"


def _pg_admin_url() -> sa.URL:
    if not PG_URL:
        reason = "PostgreSQL not configured: set CONTEXTKIT_TEST_PG_URL (see .ci/postgres.sh)"
        if IN_CI:
            pytest.fail(f"{reason}; CI must test PostgreSQL")
        pytest.skip(reason)
    return contextkit.db.engine.normalize_url(PG_URL)


class Database:
    """A fresh, empty database for one test; `url` is what `contextkit.open()` takes."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._admin: sa.Engine | None = None
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'contextkit.db'}"
            return
        admin_url = _pg_admin_url()
        self.name = f"ck_{uuid.uuid4().hex[:16]}"
        self._admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = admin_url.set(database=self.name).render_as_string(hide_password=False)

    def engine(self) -> sa.Engine:
        return contextkit.db.engine.create_engine(self.url)

    def drop(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db = Database(request.param, tmp_path)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def store(database: Database) -> Iterator[contextkit.Store]:
    s = contextkit.open(database.url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[contextkit.Store]:
    s = contextkit.open(f"sqlite:///{tmp_path / 'contextkit.db'}")
    try:
        yield s
    finally:
        s.close()


def table_counts(store: contextkit.Store) -> dict[str, int]:
    """Row counts of every contextkit table: the 'nothing was written' check."""
    names = [
        "threads",
        "messages",
        "tool_calls",
        "calls",
        "calibrations",
        "summaries",
        "blobs",
        "search_docs",
    ]
    with store.engine.connect() as conn:
        return {n: conn.execute(sa.text(f"SELECT count(*) FROM {n}")).scalar_one() for n in names}


@pytest.fixture(scope="session")
def deepseek_server() -> Iterator[object]:
    """One local DeepSeek-compatible server for the session (real HTTP on 127.0.0.1)."""
    from contextkit.testing.server import serve

    with serve() as server:
        yield server


@pytest.fixture
def deepseek(deepseek_server: object) -> Iterator[object]:
    """The local server, reset to a fresh state (no cache, script, faults) for this test."""
    deepseek_server.reset()  # type: ignore[attr-defined]
    yield deepseek_server


EXPORT_T0 = "2024-05-01T12:00:00+00:00"


def export_header(tid: str) -> dict[str, Any]:
    """Export records of a valid thread, field by field: the base that import tests break."""
    return {
        "type": "thread",
        "id": tid,
        "owner": "importer",
        "model": "deepseek-v4-flash",
        "system": None,
        "max_context_tokens": 131_072,
        "metadata": {},
        "window_start": 1,
        "created_at": EXPORT_T0,
        "updated_at": EXPORT_T0,
    }


def export_message(tid: str, seq: int) -> dict[str, Any]:
    role = "user" if seq % 2 else "assistant"
    return {
        "type": "message",
        "thread": tid,
        "seq": seq,
        "message": {"role": role, "content": f"m{seq}"},
        "pinned": False,
        "idempotency_key": None,
        "created_at": EXPORT_T0,
    }


def export_summary(tid: str) -> dict[str, Any]:
    return {
        "type": "summary",
        "thread": tid,
        "n": 1,
        "from_seq": 1,
        "upto_seq": 1,
        "text": "- User: m1",
        "token_count": 8,
        "summarizer": "extractive",
        "model": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "created_at": EXPORT_T0,
    }


def export_call(tid: str) -> dict[str, Any]:
    return {
        "type": "call",
        "thread": tid,
        "n": 1,
        "message_seq": 2,
        "response_id": "r1",
        "model": "deepseek-v4-flash",
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "reasoning_tokens": 0,
        "cache_hit_tokens": 0,
        "cache_miss_tokens": 10,
        "predicted_prompt_tokens": 10,
        "predicted_cache_hit_tokens": 0,
        "structure": "s",
        "cost_usd": 0.0,
        "latency_ms": 1.0,
        "finish_reason": "stop",
        "window_start": 1,
        "created_at": EXPORT_T0,
    }
