"""Shared by the peer benchmarks: settings, SQLite engines, case types, synthetic history."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_compaction import Run, Settings

import contextkit

MODEL = "deepseek-v4-flash"
PRO = "deepseek-v4-pro"
SYSTEM = "You are a helpful assistant."
MAX_TOKENS = 500
BUILD_BUDGET = 8_000

Msg = dict[str, Any]


def quiet() -> None:
    """Silence import-time deprecation notices of the peers (langchain-community's sunset)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module=r"langchain.*")


def preload() -> None:
    """Import the peers (and build the tokenizers) once, before forking workers."""
    from . import agents_sdk, langchain, llamaindex, oracle

    quiet()
    agents_sdk.preload()
    langchain.preload()
    llamaindex.preload()
    oracle.preload()
    contextkit.count_tokens("warm up", MODEL)


# --- SQLite engines --------------------------------------------------------------------------


SQLITE_SETTINGS = ("wal", 1)
"""What every library's SQLite file runs with: WAL, synchronous=NORMAL (1). contextkit's
own settings, given to each peer (`sqlite_engine`, `agents_sdk.NormalSQLiteSession`) and
read back from each library's own connection (`Target.settings`)."""


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def read_settings(dbapi_conn: Any) -> tuple[str, int]:
    """(journal_mode, synchronous) of a DB-API SQLite connection."""
    cur = dbapi_conn.cursor()
    mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
    sync = cur.execute("PRAGMA synchronous").fetchone()[0]
    cur.close()
    return str(mode).lower(), int(sync)


def engine_settings(engine: sa.Engine) -> tuple[str, int]:
    with engine.connect() as conn:
        return read_settings(conn.connection.dbapi_connection)


async def async_engine_settings(engine: Any) -> tuple[str, int]:
    async with engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
    return str(mode).lower(), int(sync)


def sqlite_engine(path: Path) -> sa.Engine:
    """A plain SQLAlchemy engine on `path` with contextkit's SQLite settings."""
    engine = sa.create_engine(f"sqlite:///{path}")
    sa.event.listen(engine, "connect", _pragmas)
    return engine


def async_sqlite_engine(path: Path) -> Any:
    """The same for aiosqlite (LlamaIndex's store, the Agents SDK's SQLAlchemySession)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    sa.event.listen(engine.sync_engine, "connect", _pragmas)
    return engine


# --- what each peer module provides per part -------------------------------------------------


@dataclass
class Target:
    """One way of appending: `load` converts (untimed), `append` stores (timed);
    `settings` reads (journal_mode, synchronous) back from the library's own connection."""

    name: str
    load: Callable[[list[Msg]], list[Any]]
    append: Callable[[list[Any], int], None]
    close: Callable[[], None]
    settings: Callable[[], tuple[str, int]]


@dataclass
class BuildCase:
    name: str
    call: Callable[[], list[Any]]
    prompt: Callable[[list[Any]], list[Msg]]
    """The returned messages as OpenAI dicts (system prompt first), to count tokens."""
    close: Callable[[], None]


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def check_prompt(run: Run, ids: Sequence[int], cfg: Settings, newest: str, sent: Msg) -> None:
    """Count a replayed prompt over the budget, or one that does not end on the newest turn."""
    over = len(ids) + cfg.max_tokens - cfg.budget
    if over > 0:
        run.extra["budget_violations"] = run.extra.get("budget_violations", 0) + 1
        run.extra["max_over_budget"] = max(run.extra.get("max_over_budget", 0), over)
    if sent.get("role") != "user" or sent.get("content") != newest:
        run.extra["newest_dropped"] = run.extra.get("newest_dropped", 0) + 1


# --- synthetic history -----------------------------------------------------------------------

_VOCAB_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from "
    "or one had by word but not what all were we when your can said there use an each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than "
    "first water been call who oil its now find long down day did get come made may part "
    "database thread window budget token prompt cache summary model reply context message"
)
_VOCAB = tuple(_VOCAB_TEXT.split())


def filler(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(words))


def synthetic_history(count: int, seed: int) -> list[Msg]:
    rng = random.Random(seed)
    return [
        {"role": ("user", "assistant")[i % 2], "content": filler(rng, rng.randint(20, 80))}
        for i in range(count)
    ]
