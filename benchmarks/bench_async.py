"""Many users at once: `AsyncStore` + `AsyncConversation` on one event loop vs `Store` +
`Conversation` driven by one OS thread per user, against the local DeepSeek server (run in
a process of its own, as a remote API is, so it takes no GIL time from the measured loop).

Each of `--users` users runs `--turns` chat turns in its own thread (`send()`: user message
appended, prompt built, model called, reply and usage recorded). The server answers after
`--latency` seconds, as a model does, so the store's work overlaps the model's. Reported per
database and twin: wall time, turns per second, per-turn latency p50/p99, and for the async
twin the event loop's stalls (a ticker coroutine wakes every 5 ms; a stall is how late it
woke) p50/p99/max. Then the event loop while another process holds the write lock for 2 s
during one `await aconv.send()` (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the thread row
`FOR UPDATE`). Correctness: every thread ends with seqs 1..2*turns, each user message once.
Exit status 1 on a lost or duplicated message.

    python benchmarks/bench_async.py [--quick] [--users 50] [--turns 20] [--latency 0.05]
        [--pg-url postgresql+psycopg://...]   (or CONTEXTKIT_BENCH_PG_URL)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openai
import sqlalchemy as sa
from _common import percentile, print_table, write_results

import contextkit

PACKAGES = ["contextkit", "sqlalchemy", "aiosqlite", "psycopg", "openai"]
MODEL = "deepseek-v4-flash"


class Ticker:
    """Every stall of the event loop: how late a 5 ms sleep woke, in seconds."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.stalls.append(max(0.0, now - last - 0.005))
            last = now

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    def stop(self) -> dict[str, float]:
        assert self._task is not None
        self._task.cancel()
        values = self.stalls or [0.0]
        return {
            "lag_p50_ms": percentile(values, 50) * 1e3,
            "lag_p99_ms": percentile(values, 99) * 1e3,
            "lag_max_ms": max(values) * 1e3,
        }


def run_async(url: str, base_url: str, users: int, turns: int) -> dict[str, Any]:
    async def user(store: contextkit.AsyncStore, client: Any, n: int) -> list[float]:
        thread = await store.thread(f"user-{n}", model=MODEL, owner=f"o{n % 5}")
        conv = contextkit.AsyncConversation(client, thread, predict_cache=False)
        times = []
        for i in range(turns):
            start = time.perf_counter()
            await conv.send(f"user {n} turn {i}: tell me something", max_tokens=200)
            times.append(time.perf_counter() - start)
        return times

    async def main() -> dict[str, Any]:
        store = await contextkit.open_async(url)
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
        warm = contextkit.AsyncConversation(client, await store.thread("warm-up", model=MODEL))
        await warm.send("warm up", max_tokens=20)  # the SDK's lazy imports, off the clock
        ticker = Ticker()
        ticker.start()
        start = time.perf_counter()
        per_user = await asyncio.gather(*(user(store, client, n) for n in range(users)))
        wall = time.perf_counter() - start
        lag = ticker.stop()
        await client.close()
        await store.close()
        return {"wall_s": wall, "latencies": [t for ts in per_user for t in ts], **lag}

    return asyncio.run(main())


def run_sync(url: str, base_url: str, users: int, turns: int) -> dict[str, Any]:
    store = contextkit.open(url)
    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    warm = contextkit.Conversation(client, store.thread("warm-up", model=MODEL))
    warm.send("warm up", max_tokens=20)  # the SDK's lazy imports, off the clock
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    gate = threading.Barrier(users + 1)

    def user(n: int) -> None:
        try:
            thread = store.thread(f"user-{n}", model=MODEL, owner=f"o{n % 5}")
            conv = contextkit.Conversation(client, thread, predict_cache=False)
            gate.wait()
            for i in range(turns):
                start = time.perf_counter()
                conv.send(f"user {n} turn {i}: tell me something", max_tokens=200)
                with lock:
                    latencies.append(time.perf_counter() - start)
        except BaseException as exc:  # reported after the join
            errors.append(exc)
            raise

    workers = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for w in workers:
        w.start()
    gate.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    client.close()
    store.close()
    if errors:
        raise errors[0]
    return {"wall_s": wall, "latencies": latencies}


def verify(url: str, users: int, turns: int) -> list[str]:
    """Problems of the stored threads: lost, duplicated or out-of-order messages."""
    engine = contextkit.db.engine.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT t.id, count(*), min(m.seq), max(m.seq), t.last_seq FROM threads t "
                "JOIN messages m ON m.thread_pk = t.pk WHERE t.id <> 'warm-up' "
                "GROUP BY t.id, t.last_seq"
            )
        ).all()
        users_msgs = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT m.content || '/' || t.id) FROM messages m "
                "JOIN threads t ON t.pk = m.thread_pk WHERE m.role = 'user' "
                "AND t.id <> 'warm-up'"
            )
        ).one()
    engine.dispose()
    problems = []
    if len(rows) != users:
        problems.append(f"{len(rows)} threads, expected {users}")
    for tid, count, low, high, last in rows:
        if (count, low, high, last) != (2 * turns, 1, 2 * turns, 2 * turns):
            problems.append(f"{tid}: {count} messages, seqs {low}..{high}, last_seq {last}")
    if tuple(users_msgs) != (users * turns, users * turns):
        problems.append(f"user messages (all, distinct) = {tuple(users_msgs)}")
    return problems


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
with psycopg.connect(sys.argv[1].replace("postgresql+psycopg://", "postgresql://")) as conn:
    conn.execute("SELECT pk FROM threads WHERE id = 'user-0' FOR UPDATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
""",
}


def locked_send(url: str, kind: str, base_url: str, hold: float) -> dict[str, float]:
    """One `await aconv.send()` while another process holds the lock `hold` seconds."""

    async def main() -> dict[str, float]:
        store = await contextkit.open_async(url)
        thread = await store.thread("user-0", model=MODEL, owner="o0")
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench")
        conv = contextkit.AsyncConversation(client, thread, predict_cache=False)
        target = url.removeprefix("sqlite:///") if kind == "sqlite" else url
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER[kind], target, str(hold)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        ticker = Ticker()
        ticker.start()
        start = time.perf_counter()
        await conv.send("are you there?", max_tokens=50)
        waited = time.perf_counter() - start
        lag = ticker.stop()
        locker.wait(timeout=60)
        await client.close()
        await store.close()
        return {"send_s": waited, **lag}

    return asyncio.run(main())


SERVER = """
import sys, time
from contextkit.testing.server import serve
with serve() as server:
    server.set_latency(float(sys.argv[1]))
    print(server.base_url, flush=True)
    while True:
        time.sleep(3600)
"""


@contextlib.contextmanager
def model_server(latency: float) -> Iterator[str]:
    """The local server in a process of its own (as a remote API is): its request handling
    does not compete for this process's GIL with the event loop being measured."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(latency)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def fresh_pg(admin_url: str, name: str) -> str:
    parsed = contextkit.db.engine.normalize_url(admin_url)
    admin = sa.create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 users x 5 turns")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05, help="model latency, seconds")
    parser.add_argument("--hold", type=float, default=2.0, help="lock held, seconds")
    parser.add_argument("--pg-url", default=os.environ.get("CONTEXTKIT_BENCH_PG_URL"))
    args = parser.parse_args(argv)
    users, turns = (10, 5) if args.quick else (args.users, args.turns)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, model_server(args.latency) as base_url:
        databases = [("sqlite", lambda name: f"sqlite:///{Path(tmp) / name}.db")]
        if args.pg_url:
            databases.append(("postgresql", lambda name: fresh_pg(args.pg_url, name)))
        for kind, make in databases:
            for twin, run in (("async", run_async), ("sync", run_sync)):
                url = make(f"bench_{twin}")
                contextkit.open(url).close()  # migrated before the clock starts
                result = run(url, base_url, users, turns)
                bad = verify(url, users, turns)
                problems += [f"{kind} {twin}: {p}" for p in bad]
                latencies = result.pop("latencies")
                row = {
                    "database": kind,
                    "twin": f"{twin} ({'1 event loop' if twin == 'async' else f'{users} threads'})",
                    "users x turns": f"{users} x {turns}",
                    "wall_s": result["wall_s"],
                    "turns_per_s": users * turns / result["wall_s"],
                    "turn_p50_ms": statistics.median(latencies) * 1e3,
                    "turn_p99_ms": percentile(latencies, 99) * 1e3,
                    "lag_p99_ms": result.get("lag_p99_ms"),
                    "lag_max_ms": result.get("lag_max_ms"),
                    "lost_or_duplicated": len(bad),
                }
                rows.append(row)
            held = locked_send(make("bench_locked"), kind, base_url, args.hold)
            rows.append(
                {
                    "database": kind,
                    "twin": f"async, lock held {args.hold:g} s by another process",
                    "users x turns": "1 x 1",
                    "wall_s": held["send_s"],
                    "turns_per_s": None,
                    "turn_p50_ms": held["send_s"] * 1e3,
                    "turn_p99_ms": None,
                    "lag_p99_ms": held["lag_p99_ms"],
                    "lag_max_ms": held["lag_max_ms"],
                    "lost_or_duplicated": 0,
                }
            )
    headers = list(rows[0])
    print_table(
        headers,
        [[row[h] for h in headers] for row in rows],
        title=f"{users} users x {turns} turns, model latency {args.latency:g} s",
    )
    write_results(
        "async",
        {
            "users": users,
            "turns": turns,
            "latency_s": args.latency,
            "rows": rows,
            "violations": {"lost or duplicated messages": len(problems)},
        },
        PACKAGES,
    )
    for p in problems:
        print(f"VIOLATION: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
