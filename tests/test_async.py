"""The async twins: every public sync method has an awaited twin that does the same thing,
and none of them blocks the event loop (a ticker coroutine measures the loop's stalls)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa
from conftest import Database, table_counts

import contextkit
from contextkit.testing.server import Reply, ToolCall

MODEL = "deepseek-v4-flash"

TWINS = [
    (contextkit.Thread, contextkit.AsyncThread),
    (contextkit.Store, contextkit.AsyncStore),
    (contextkit.Conversation, contextkit.AsyncConversation),
]
ITERATORS = {"messages", "history", "threads", "export_records"}
"""Methods whose sync form returns an iterator: the async twin returns an async iterator."""


def public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member) and not isinstance(member, type)
    }


@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=lambda c: c.__name__)
def test_every_public_method_has_an_awaited_twin_with_the_same_signature(sync, twin):
    sync_methods, twin_methods = public_methods(sync), public_methods(twin)
    assert sync_methods, sync
    missing = sorted(set(sync_methods) - set(twin_methods))
    assert not missing, f"{twin.__name__} lacks {missing}"
    for name, method in sync_methods.items():
        other = twin_methods[name]
        sync_params = list(inspect.signature(method).parameters)
        twin_params = list(inspect.signature(other).parameters)
        assert sync_params == twin_params, name
        if name in ITERATORS:
            assert not inspect.iscoroutinefunction(other), name
        elif name not in ("close",) or twin is contextkit.AsyncStore:
            assert inspect.iscoroutinefunction(other), f"{twin.__name__}.{name} is not async"
    sync_props = {n for n, v in inspect.getmembers(sync) if isinstance(v, property)}
    twin_props = {n for n, v in inspect.getmembers(twin) if isinstance(v, property)}
    assert sync_props <= twin_props


def test_the_summarizer_twins_share_one_request():
    assert inspect.iscoroutinefunction(contextkit.AsyncLLMSummarizer.asummarize)
    assert list(inspect.signature(contextkit.AsyncLLMSummarizer.asummarize).parameters) == list(
        inspect.signature(contextkit.LLMSummarizer.summarize).parameters
    )


# -- the same scenario on both twins ------------------------------------------------------

RESPONSE = {
    "id": "r1",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "",
                "reasoning_content": "look it up",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 900, "completion_tokens": 12, "prompt_cache_hit_tokens": 0},
}


def scenario_steps() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """One scripted use of the whole Thread API (what each step returns is compared)."""
    long = "My order number is 4471-{} and I prefer email. " * 12
    steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("append", ({"role": "user", "content": "hello"},), {"idempotency_key": "k1"}),
        ("append", ({"role": "user", "content": "hello"},), {"idempotency_key": "k1"}),
        ("append", ({"role": "assistant", "content": "hi"},), {"pinned": True}),
    ]
    steps += [
        ("extend", ([{"role": "user", "content": long.replace("{}", str(i))}, {"role": "assistant",
         "content": f"noted {i}"}],), {})
        for i in range(40)
    ]  # fmt: skip
    steps += [
        ("build", (), {"max_tokens": 500}),
        ("prepare", (), {"max_tokens": 500, "extra": "today is Monday", "thinking": False}),
        ("check_turn", ({"role": "user", "content": "next"},), {"max_tokens": 500}),
        ("record_call", (RESPONSE,), {}),
        ("pending_tool_calls", (), {}),
        ("append", ({"role": "tool", "tool_call_id": "c1", "content": "found"},), {}),
        ("answered", ({"role": "user", "content": "hello"}, "k1"), {}),
        ("compact", (), {}),
        ("summaries", (), {}),
        ("get", (3,), {}),
        ("update", (), {"system": "Be brief."}),
        ("build", (), {"max_tokens": 500, "format": "anthropic"}),
        ("stats", (), {}),
        ("info", (), {}),
        ("calibration", (), {}),
    ]
    return steps


def comparable(value: Any) -> Any:
    """A step's result without what differs between two runs (times, ids, pks)."""
    if isinstance(value, contextkit.Prompt):
        return (value.to_list(), value.prompt_tokens, value.window_start, value.structure)
    if isinstance(value, contextkit.Message):
        return (value.seq, value.to_openai(), value.pinned)
    if isinstance(value, contextkit.ThreadInfo):
        return (value.model, value.system, value.message_count, value.total_tokens)
    if isinstance(value, contextkit.Summary):
        return (value.n, value.from_seq, value.upto_seq, value.text, value.token_count)
    if isinstance(value, contextkit.Stats):
        return (value.messages, value.tokens, value.window_start, value.calls, value.cost_usd)
    if isinstance(value, tuple):
        return tuple(comparable(v) for v in value)
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if hasattr(value, "message") and hasattr(value, "usage"):  # usage.Recorded
        return (comparable(value.message), value.usage, value.finish_reason, value.cost_usd)
    return value


def run_sync(store: contextkit.Store, tid: str) -> list[Any]:
    t = store.thread(tid, model=MODEL, owner="o", max_context_tokens=3_000)
    out = []
    for name, args, kwargs in scenario_steps():
        if name == "calibration":
            out.append(store.calibration(MODEL).deltas)
            continue
        try:
            out.append(comparable(getattr(t, name)(*args, **kwargs)))
        except contextkit.ContextKitError as exc:  # the same error on both twins
            out.append((type(exc), str(exc)))
    out.append([comparable(m) for m in t.messages(after=70, page_size=3)])
    out.append([comparable(m) for m in t.history(page_size=7)])
    t.delete()
    return out


async def run_async(store: contextkit.AsyncStore, tid: str) -> list[Any]:
    t = await store.thread(tid, model=MODEL, owner="o", max_context_tokens=3_000)
    out = []
    for name, args, kwargs in scenario_steps():
        if name == "calibration":
            out.append((await store.calibration(MODEL)).deltas)
            continue
        try:
            out.append(comparable(await getattr(t, name)(*args, **kwargs)))
        except contextkit.ContextKitError as exc:
            out.append((type(exc), str(exc)))
    out.append([comparable(m) async for m in t.messages(after=70, page_size=3)])
    out.append([comparable(m) async for m in t.history(page_size=7)])
    await t.delete()
    return out


def test_the_same_scenario_gives_the_same_results_on_both_twins(database: Database):
    store = contextkit.open(database.url)
    expected = run_sync(store, "twin")
    store.close()

    async def go() -> list[Any]:
        astore = await contextkit.open_async(database.url)
        try:
            return await run_async(astore, "twin")
        finally:
            await astore.close()

    got = asyncio.run(go())
    assert len(got) == len(expected) == len(scenario_steps()) + 2
    for (name, _, _), a, b in zip(scenario_steps(), got, expected, strict=False):
        assert a == b, name
    assert got[-2:] == expected[-2:]
    assert any(isinstance(s, tuple) and s[0] == 1 for s in expected[len(scenario_steps()) - 7])


def test_errors_and_nothing_written_are_the_same_on_the_async_twin(database: Database):
    async def go() -> None:
        astore = await contextkit.open_async(database.url)
        t = await astore.thread("e", model=MODEL)
        with pytest.raises(contextkit.ValidationError):
            await t.append({"role": "robot", "content": "x"})
        with pytest.raises(contextkit.ValidationError):
            await t.extend([{"role": "user", "content": "ok"}, {"role": "user"}])
        with pytest.raises(contextkit.NotFound):
            await t.get(1)
        with pytest.raises(contextkit.NotFound):
            await astore.get_thread("nope")
        with pytest.raises(contextkit.ValidationError):
            astore.threads(page_size=0)
        other = await astore.thread("e", owner="mallory", model=MODEL)
        await other.append({"role": "user", "content": "mine"})
        assert [m.text async for m in t.messages()] == []
        await t.delete()
        with pytest.raises(contextkit.NotFound):
            await t.append({"role": "user", "content": "late"})
        await astore.close()
        with pytest.raises(contextkit.StoreError):
            await other.info()

    asyncio.run(go())
    store = contextkit.open(database.url)
    counts = table_counts(store)
    store.close()
    assert counts["messages"] == 1 and counts["threads"] == 1


# -- the event loop is never blocked -----------------------------------------------------


class Ticker:
    """Measures the event loop's longest stall: a coroutine that wakes every 5 ms."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.005)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


LOCKER = {
    "sqlite": """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
""",
    "postgresql": """
import sys, time, psycopg
url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://")
with psycopg.connect(url) as conn:
    conn.execute("SELECT pk FROM threads WHERE id = 'lag' FOR UPDATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
""",
}


def hold_lock(database: Database, seconds: float) -> subprocess.Popen[str]:
    target = database.url.removeprefix("sqlite:///") if database.kind == "sqlite" else database.url
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER[database.kind], target, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_send_waiting_on_another_process_lock_never_stalls_the_loop(database, deepseek):
    """Acceptance: another process holds the write lock for 2 s during `await aconv.send()`;
    the loop keeps ticking, and the send completes once the lock is released."""

    async def go() -> tuple[float, float, contextkit.Reply]:
        astore = await contextkit.open_async(database.url)
        athread = await astore.thread("lag", model=MODEL)
        await athread.append({"role": "user", "content": "warm up"})
        client = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t")
        conv = contextkit.AsyncConversation(client, athread)
        await conv.send("warm up", max_tokens=50)  # the SDK's lazy imports: not the store's
        locker = hold_lock(database, 2.0)
        try:
            async with Ticker() as ticker:
                started = time.perf_counter()
                reply = await conv.send("are you there?", max_tokens=50)
                waited = time.perf_counter() - started
        finally:
            locker.wait(timeout=30)
            await client.close()
            await astore.close()
        return ticker.worst, waited, reply

    worst, waited, reply = asyncio.run(go())
    print(
        f"\n{database.kind}: send waited {waited:.2f} s, loop's longest stall {worst * 1e3:.1f} ms"
    )
    assert waited >= 1.5  # it did wait for the lock ...
    assert worst < 0.25  # ... without holding the loop (the inline form stalled it ~2 s)
    assert reply.content and reply.message.seq == 5


def test_compaction_with_a_sync_llm_summarizer_runs_off_the_loop(tmp_path, deepseek):
    """A summarizer on a sync client (blocking HTTP) is called in a worker thread."""
    deepseek.set_latency(0.6)
    sync_client = openai.OpenAI(base_url=deepseek.base_url, api_key="t")
    warm = [contextkit.Message.parse({"role": "user", "content": "warm the SDK's imports"})]
    contextkit.LLMSummarizer(sync_client).summarize(warm, previous=None, max_tokens=20, model=MODEL)

    async def go() -> tuple[float, list[contextkit.Summary]]:
        astore = await contextkit.open_async(
            f"sqlite:///{tmp_path / 'c.db'}", summarizer=contextkit.LLMSummarizer(sync_client)
        )
        t = await astore.thread("c", model=MODEL, max_context_tokens=2_000)
        await t.extend(
            [{"role": "user" if i % 2 == 0 else "assistant", "content": "words " * 60}
             for i in range(40)]
        )  # fmt: skip
        async with Ticker() as ticker:
            await t.build(max_tokens=100)
        summaries = await t.summaries()
        await astore.close()
        return ticker.worst, summaries

    worst, summaries = asyncio.run(go())
    assert summaries and summaries[0].summarizer == "llm"
    assert worst < 0.25, f"loop stalled {worst:.2f} s"


def test_async_llm_summarizer_is_awaited(tmp_path, deepseek):
    aclient = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t")

    async def go() -> list[contextkit.Summary]:
        astore = await contextkit.open_async(
            f"sqlite:///{tmp_path / 'a.db'}", summarizer=contextkit.AsyncLLMSummarizer(aclient)
        )
        t = await astore.thread("s", model=MODEL, max_context_tokens=2_000)
        await t.extend(
            [{"role": "user" if i % 2 == 0 else "assistant", "content": "facts " * 60}
             for i in range(40)]
        )  # fmt: skip
        await t.build(max_tokens=100)
        out = await t.summaries()
        await astore.close()
        await aclient.close()
        return out

    summaries = asyncio.run(go())
    assert len(summaries) == 1 and summaries[0].model == MODEL and summaries[0].cost_usd > 0
    with pytest.raises(contextkit.ValidationError, match="AsyncStore"):
        contextkit.AsyncLLMSummarizer(aclient).summarize(
            [], previous=None, max_tokens=9, model=MODEL
        )


# -- AsyncConversation ---------------------------------------------------------------------


def test_tools_of_one_step_run_concurrently_and_are_stored_in_call_order(database, deepseek):
    deepseek.script(
        Reply(
            reasoning="both",
            tool_calls=[ToolCall("slow", '{"n": 1}'), ToolCall("slow", '{"n": 2}'),
                        ToolCall("fast", "{}")],
        ),
        Reply(content="done", reasoning="ok"),
    )  # fmt: skip
    order: list[str] = []

    async def slow(n: int) -> str:
        order.append(f"start{n}")
        await asyncio.sleep(0.4 if n == 1 else 0.2)
        order.append(f"slow{n}")
        return f"slow {n}"

    def fast() -> str:
        order.append("fast")
        return "fast"

    async def go() -> tuple[contextkit.Reply, float, list[str]]:
        astore = await contextkit.open_async(database.url)
        t = await astore.thread("tools", model=MODEL)
        client = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t")
        conv = contextkit.AsyncConversation(client, t)
        started = time.perf_counter()
        reply = await conv.run("go", tools={"slow": slow, "fast": fast})
        elapsed = time.perf_counter() - started
        tools = [m.text async for m in t.messages() if m.role.value == "tool"]
        await client.close()
        await astore.close()
        return reply, elapsed, tools

    reply, elapsed, tools = asyncio.run(go())
    assert reply.content == "done"
    assert order[-1] == "slow1" and order.index("slow2") < order.index("slow1")
    # concurrent: both slow tools started before either finished (in turn: start1 slow1 ...)
    assert max(order.index("start1"), order.index("start2")) < order.index("slow2")
    assert tools == ["slow 1", "slow 2", "fast"]  # call order, not completion order
    assert elapsed > 0.4


def test_async_send_stream_and_keyed_retry(database, deepseek):
    async def go() -> None:
        astore = await contextkit.open_async(database.url)
        t = await astore.thread("s", model=MODEL)
        client = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t")
        conv = contextkit.AsyncConversation(client, t)
        first = await conv.send("hello", idempotency_key="u1")
        again = await conv.send("hello", idempotency_key="u1")
        assert again.replayed and again.content == first.content
        async with await conv.send("stream please", stream=True) as stream:
            parts = [d.text async for d in stream]
        assert stream.reply is not None and "".join(parts).endswith(stream.reply.content)
        stats = await t.stats()
        assert (stats.messages, stats.calls) == (4, 2)
        await client.close()
        await astore.close()

    asyncio.run(go())


def test_a_cancelled_send_leaves_the_thread_valid(database, deepseek):
    """Cancelled while the model call is in flight: the user message stays (what arrived is
    kept), nothing is half-written, and the next send works."""
    deepseek.set_latency(2.0)

    async def go() -> tuple[list[str], contextkit.Reply]:
        astore = await contextkit.open_async(database.url)
        t = await astore.thread("cancel", model=MODEL)
        client = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t", max_retries=0)
        conv = contextkit.AsyncConversation(client, t)
        task = asyncio.create_task(conv.send("slow one"))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deepseek.set_latency(0.0)
        reply = await conv.send(None)  # retry the call on the thread as it is
        roles = [m.role.value async for m in t.messages()]
        await client.close()
        await astore.close()
        return roles, reply

    roles, reply = asyncio.run(go())
    assert roles == ["user", "assistant"] and reply.content


def test_cancelling_appends_mid_flight_never_half_writes(database):
    """Many appends cancelled at random points: every stored seq is contiguous and every
    stored message complete; the thread's counters match its rows."""

    async def go() -> None:
        astore = await contextkit.open_async(database.url)
        t = await astore.thread("c", model=MODEL)
        tasks = [
            asyncio.create_task(t.extend([{"role": "user", "content": f"m{i}-{j}"}
                                          for j in range(5)]))
            for i in range(40)
        ]  # fmt: skip
        for i, task in enumerate(tasks):
            if i % 3 == 0:
                await asyncio.sleep(0.001)
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await astore.close()

    asyncio.run(go())
    store = contextkit.open(database.url)
    t = store.get_thread("c")
    seqs = [m.seq for m in t.messages()]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) % 5 == 0
    assert t.info().message_count == len(seqs) and store.check() == []
    store.close()


def test_a_sync_thread_in_async_conversation_is_deprecated_and_off_the_loop(store, deepseek):
    t = store.thread("old", model=MODEL)

    async def go() -> contextkit.Reply:
        client = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t")
        with pytest.warns(DeprecationWarning, match="open_async"):
            conv = contextkit.AsyncConversation(client, t)
        reply = await conv.send("hi")
        await client.close()
        return reply

    assert asyncio.run(go()).content
    assert [m.role.value for m in t.messages()] == ["user", "assistant"]
    with pytest.raises(contextkit.ValidationError, match="AsyncThread"):
        contextkit.AsyncConversation(object(), "not a thread")  # type: ignore[arg-type]


# -- many users on one AsyncStore ----------------------------------------------------------


async def lagged(coro: Awaitable[Any]) -> tuple[Any, float]:
    async with Ticker() as ticker:
        result = await coro
    return result, ticker.worst


def test_fifty_async_users_twenty_turns_lose_nothing(database, deepseek):
    """Acceptance 2 (the test part; the timing comparison is benchmarks/bench_async.py)."""
    users, turns = 50, 20

    async def user(astore: contextkit.AsyncStore, client: Any, n: int) -> None:
        t = await astore.thread(f"user-{n}", model=MODEL, owner=f"o{n % 5}")
        conv = contextkit.AsyncConversation(client, t, predict_cache=False)
        for i in range(turns):
            await conv.send(f"user {n} turn {i}", max_tokens=200)

    async def go() -> float:
        astore = await contextkit.open_async(database.url)
        client = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="t")
        _, worst = await lagged(asyncio.gather(*(user(astore, client, n) for n in range(users))))
        await client.close()
        await astore.close()
        return worst

    worst = asyncio.run(go())
    engine = database.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT t.id, count(*), min(m.seq), max(m.seq), count(DISTINCT m.content) "
                "FROM threads t JOIN messages m ON m.thread_pk = t.pk GROUP BY t.id"
            )
        ).all()
    engine.dispose()
    assert len(rows) == users
    for _, count, low, high, distinct in rows:
        assert (count, low, high) == (2 * turns, 1, 2 * turns)
        assert distinct >= turns + 1  # every user message once (replies may repeat)
    print(f"\n{database.kind}: {users}x{turns} turns, loop's longest stall {worst * 1e3:.0f} ms")


ASYNC_WORKER = """
import asyncio, sys, time, pathlib
import contextkit
url, thread_id, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[5]
go = pathlib.Path(sys.argv[4])
async def main():
    store = await contextkit.open_async(url)
    t = await store.thread(thread_id, model="deepseek-v4-flash", owner="load")
    while not go.exists():
        await asyncio.sleep(0.005)
    async def writer(k):
        for i in range(k, n, 4):
            await t.append({"role": "user", "content": f"{tag}-{i}"})
    await asyncio.gather(*(writer(k) for k in range(4)))
    await store.close()
asyncio.run(main())
"""


@pytest.mark.parametrize("layout", ["one-thread", "eight-threads"])
def test_eight_async_processes_thousand_appends(database: Database, tmp_path: Path, layout):
    """The 8x1,000 concurrency test on the async store: 8 processes, each with 4 tasks."""
    contextkit.open(database.url).close()
    threads = ["hot"] * 8 if layout == "one-thread" else [f"t{i}" for i in range(8)]
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ASYNC_WORKER, database.url, tid, "1000", str(go), f"w{i}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, tid in enumerate(threads)
    ]
    time.sleep(1.5)
    go.touch()
    for p in procs:
        err = p.communicate(timeout=600)[1]
        assert p.returncode == 0, err
    engine = database.engine()
    with engine.connect() as conn:
        per_thread = conn.execute(
            sa.text(
                "SELECT t.id, t.last_seq, count(*), min(m.seq), max(m.seq), "
                "count(DISTINCT m.content) FROM threads t "
                "JOIN messages m ON m.thread_pk = t.pk GROUP BY t.id, t.last_seq"
            )
        ).all()
    engine.dispose()
    expected = 8000 if layout == "one-thread" else 1000
    assert len(per_thread) == (1 if layout == "one-thread" else 8)
    for _, last_seq, count, low, high, distinct in per_thread:
        assert (last_seq, count, low, high, distinct) == (expected,) * 2 + (1,) + (expected,) * 2


def test_open_async_migrates_a_new_database_once_and_refuses_an_old_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"

    async def go() -> None:
        stores = await asyncio.gather(*(contextkit.open_async(url) for _ in range(4)))
        t = await stores[0].thread("x", model=MODEL)
        await t.append({"role": "user", "content": "hi"})
        for s in stores:
            await s.close()

    asyncio.run(go())
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert revision == contextkit.db.migrate.head_revision()

    old = tmp_path / "old.db"
    contextkit.db.migrate.upgrade(contextkit.db.engine.create_engine(f"sqlite:///{old}"), "0002")

    async def refuse() -> None:
        with pytest.raises(contextkit.ContextKitError, match="db upgrade"):
            await contextkit.open_async(f"sqlite:///{old}", migrate_schema=False)

    asyncio.run(refuse())


def test_the_readme_async_block_runs_as_written(tmp_path, deepseek):
    """The README's FastAPI example, run as written (the local server for DeepSeek's)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Async\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("https://api.deepseek.com", deepseek.base_url)
    test = """
from fastapi.testclient import TestClient
with TestClient(app) as http:
    for text in ("hello", "again"):
        r = http.post("/chat/trip-1", params={"user": "alice", "message": text})
        assert r.status_code == 200, r.text
        print(r.json()["seq"], r.json()["cost_usd"] > 0)
    other = http.post("/chat/trip-1", params={"user": "bob", "message": "mine"}).json()
    print("bob", other["seq"])
"""
    out = subprocess.run(
        [sys.executable, "-c", code + test],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "True", "4", "True", "bob", "2"]
    assert (tmp_path / "chat.db").exists()


def store_scenario_sync(url: str) -> list[Any]:
    store = contextkit.open(url)
    a = store.thread("s1", model=MODEL, owner="alice", metadata={"k": 1})
    a.extend([{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
    store.thread("s2", model=MODEL, owner="alice")
    store.thread("s1", model=MODEL, owner="bob")
    out: list[Any] = [
        [t.id for t in store.threads(owner="alice", page_size=1)],
        sorted((t.id, t.owner) for t in store.threads(all_owners=True)),
        store.get_thread("s1", owner="alice").info().message_count,
        store.admin_thread("s2").owner,  # type: ignore[union-attr]
        store.admin_thread("nope"),
    ]
    try:
        store.admin_thread("s1")
    except contextkit.ValidationError as exc:
        out.append(str(exc))
    records = list(store.export_records(owner="alice"))
    out.append([r["type"] for r in records])
    a.delete()
    out.append(store.import_records([r for r in records if r.get("id", r.get("thread")) == "s1"]))
    out.append(store.check())
    out.append([m.text for m in store.get_thread("s1", owner="alice").messages()])
    store.close()
    return out


async def store_scenario_async(url: str) -> list[Any]:
    store = await contextkit.open_async(url)
    a = await store.thread("s1", model=MODEL, owner="alice", metadata={"k": 1})
    await a.extend([{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
    await store.thread("s2", model=MODEL, owner="alice")
    await store.thread("s1", model=MODEL, owner="bob")
    out: list[Any] = [
        [t.id async for t in store.threads(owner="alice", page_size=1)],
        sorted([(t.id, t.owner) async for t in store.threads(all_owners=True)]),
        (await (await store.get_thread("s1", owner="alice")).info()).message_count,
        (await store.admin_thread("s2")).owner,  # type: ignore[union-attr]
        await store.admin_thread("nope"),
    ]
    try:
        await store.admin_thread("s1")
    except contextkit.ValidationError as exc:
        out.append(str(exc))
    records = [r async for r in store.export_records(owner="alice")]
    out.append([r["type"] for r in records])
    await a.delete()
    chosen = [r for r in records if r.get("id", r.get("thread")) == "s1"]
    out.append(await store.import_records(chosen))
    out.append(await store.check())
    restored = await store.get_thread("s1", owner="alice")
    out.append([m.text async for m in restored.messages()])
    await store.close()
    return out


def test_the_store_twins_give_the_same_results(database: Database, tmp_path: Path):
    expected = store_scenario_sync(database.url)
    (tmp_path / "second").mkdir()
    second = Database(database.kind, tmp_path / "second")
    try:
        got = asyncio.run(store_scenario_async(second.url))
    finally:
        second.drop()
    assert got == expected
    assert expected[0] == ["s2", "s1"] and expected[-1] == ["one", "two"]


class Failing:
    def summarize(self, messages: Any, **kw: Any) -> Any:
        raise RuntimeError("the summarizer is down")


def test_warnings_point_at_the_callers_line_on_both_twins(tmp_path):
    """A warning raised inside a plan names the app's line (the driver frames skipped)."""
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "words " * 60} for i in range(30)
    ]
    store = contextkit.open(f"sqlite:///{tmp_path / 's.db'}", summarizer=Failing())
    t = store.thread("w", model=MODEL, max_context_tokens=1_500)
    t.extend(turns)
    with pytest.warns(contextkit.CompactionWarning) as sync_warned:
        t.build(max_tokens=100)
    store.close()

    async def go() -> list[warnings.WarningMessage]:
        astore = await contextkit.open_async(f"sqlite:///{tmp_path / 'a.db'}", summarizer=Failing())
        at = await astore.thread("w", model=MODEL, max_context_tokens=1_500)
        await at.extend(turns)
        with pytest.warns(contextkit.CompactionWarning) as warned:
            await at.prepare(max_tokens=100)
        await astore.close()
        return list(warned)

    for w in [*sync_warned, *asyncio.run(go())]:
        assert w.filename == __file__, (w.filename, w.lineno)
