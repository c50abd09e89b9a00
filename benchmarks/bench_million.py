"""build() on a 1,000,000-message thread vs a 100-message one, on SQLite or PostgreSQL.

The issue's acceptance check at full scale: `bench_window.py`'s comparison (same messages,
same budget, so alike live windows; only the history differs) with a million messages.

1. Fill: the big thread is written through the public bulk path, `thread.extend()` in
   batches of `--batch` messages (one transaction each), with progress lines and the insert
   throughput (wall, and `extend()` alone without generating the texts); then the
   100-message thread.
2. First build of each thread, timed on its own and excluded from the comparison: on a
   bulk-loaded thread the cut point has never moved, and the default `build()` compacts
   once; that first build reads the whole uncut live range, i.e. the whole history, before
   it compacts (see the report's `first_build`: seconds and peak RSS). `--first-build cut`
   instead builds once with compaction off first (the cut point moves in one indexed query),
   so the default build that follows only sees the window.
3. Timed, interleaved (order alternating every round, a full garbage collection untimed
   before each run), `--repeat` rounds per path, for the default path (compaction on, the
   store's offline `ExtractiveSummarizer`) and for `compaction=CompactionPolicy(enabled=
   False)` (cut-point path only): a turn (`append(user)` + `prepare()`) on each thread, a
   steady re-build (`prepare()` again, nothing new), then the assistant reply is appended
   untimed. Both threads get the same texts. Reported: p50/p99 per thread and the big/small
   ratio (target: p50 ratio <= 2), window sizes, cut-point moves and compactions.
4. Size: the SQLite file (and its WAL), or PostgreSQL's `pg_database_size` and the
   `messages` table (heap, indexes).

    python benchmarks/bench_million.py [--messages 1000000] [--url URL]
        [--repeat 300] [--batch 5000] [--budget 8000] [--first-build default|cut]

Without `--url` the store is a temporary SQLite file, removed afterwards (`--keep` keeps
it). With `--url` the two threads are left in that database. Writes
`results/million-<database>.json` (`--first-build cut`: `million-<database>-cut.json`).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import WORDS, percentile, print_table, write_results
from sqlalchemy import text

import contextkit
from contextkit import CompactionPolicy

PACKAGES = ("contextkit", "sqlalchemy", "psycopg", "tiktoken")
MODEL = "deepseek-v4-flash"
SYSTEM = "You are helpful."

PATHS: dict[str, CompactionPolicy | None] = {
    "default": None,
    "no-compaction": CompactionPolicy(enabled=False),
}


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words))


def _batch(rng: random.Random, first: int, count: int, words: int) -> list[dict[str, str]]:
    """`count` messages alternating user/assistant, the first one being number `first`."""
    return [
        {"role": "user" if (first + i) % 2 == 0 else "assistant", "content": _text(rng, words)}
        for i in range(count)
    ]


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(
    thread: contextkit.Thread,
    count: int,
    *,
    batch: int,
    words: int,
    seed: int,
    progress: int = 0,
) -> dict[str, Any]:
    """Append `count` messages with `thread.extend()`, `batch` at a time; timings."""
    rng = random.Random(seed)
    generate_s = extend_s = 0.0
    batch_s: list[float] = []
    done = 0
    start = mark = time.perf_counter()
    mark_done = 0
    next_report = progress
    while done < count:
        n = min(batch, count - done)
        t0 = time.perf_counter()
        messages = _batch(rng, done, n, words)
        t1 = time.perf_counter()
        thread.extend(messages)
        t2 = time.perf_counter()
        generate_s += t1 - t0
        extend_s += t2 - t1
        batch_s.append(t2 - t1)
        done += n
        if progress and (done >= next_report or done == count):
            now = time.perf_counter()
            elapsed = now - start
            recent = (done - mark_done) / (now - mark)
            eta = (count - done) / recent
            print(
                f"  {done:>10,} / {count:,}  {elapsed:7.1f}s  {done / elapsed:7,.0f} msg/s "
                f"(last {done - mark_done:,}: {recent:,.0f} msg/s; extend() alone "
                f"{done / extend_s:,.0f} msg/s)  eta {eta:5.0f}s  rss {_rss_mb():,.0f} MB",
                flush=True,
            )
            mark, mark_done = now, done
            while next_report <= done:
                next_report += progress
    wall = time.perf_counter() - start
    tenth = max(len(batch_s) // 10, 1)
    return {
        "messages": count,
        "batch": batch,
        "batches": len(batch_s),
        "wall_s": round(wall, 2),
        "extend_s": round(extend_s, 2),
        "generate_s": round(generate_s, 2),
        "msg_per_s_wall": round(count / wall, 1),
        "msg_per_s_extend": round(count / extend_s, 1),
        "batch_s_p50": round(statistics.median(batch_s), 4),
        "batch_s_max": round(max(batch_s), 4),
        "batch_s_first_tenth_p50": round(statistics.median(batch_s[:tenth]), 4),
        "batch_s_last_tenth_p50": round(statistics.median(batch_s[-tenth:]), 4),
    }


def first_build(thread: contextkit.Thread, how: str, max_tokens: int) -> dict[str, Any]:
    """The thread's first build(s), each timed; then one warm default build for reference."""
    out: dict[str, Any] = {}
    steps = [("cut", PATHS["no-compaction"])] if how == "cut" else []
    steps += [("default", None), ("default_again", None)]
    for name, policy in steps:
        opts = {} if policy is None else {"compaction": policy}
        gc.collect()
        t0 = time.perf_counter()
        prompt = thread.prepare(max_tokens=max_tokens, **opts)
        seconds = time.perf_counter() - t0
        out[name] = {
            "seconds": round(seconds, 4),
            "moved": prompt.moved,
            "window_start": prompt.window_start,
            "window_messages": len(prompt.messages),
            "prompt_tokens": prompt.prompt_tokens,
        }
    out["summaries"] = len(thread.summaries())
    out["peak_rss_mb"] = round(_rss_mb())
    return out


def measure(
    threads: dict[str, contextkit.Thread],
    policy: CompactionPolicy | None,
    *,
    repeat: int,
    max_tokens: int,
    words: int,
    seed: int,
) -> dict[str, Any]:
    """Turns and steady re-builds on every thread, interleaved; milliseconds per run."""
    opts: dict[str, Any] = {} if policy is None else {"compaction": policy}
    names = list(threads)
    times: dict[str, dict[str, list[float]]] = {
        kind: {name: [] for name in names} for kind in ("turn", "steady")
    }
    window: dict[str, list[int]] = {name: [] for name in names}
    tokens: dict[str, list[int]] = {name: [] for name in names}
    moved = dict.fromkeys(names, 0)
    summaries_before = {name: len(t.summaries()) for name, t in threads.items()}
    rng = random.Random(seed)
    for round_ in range(repeat):
        order = names if round_ % 2 == 0 else names[::-1]
        user, reply = _text(rng, words), _text(rng, words)
        for kind in ("turn", "steady"):
            for name in order:
                thread = threads[name]
                gc.collect()
                t0 = time.perf_counter()
                if kind == "turn":
                    thread.append({"role": "user", "content": user})
                prompt = thread.prepare(max_tokens=max_tokens, **opts)
                times[kind][name].append((time.perf_counter() - t0) * 1e3)
                if kind == "turn":
                    moved[name] += prompt.moved
                    window[name].append(len(prompt.messages))
                    tokens[name].append(prompt.prompt_tokens)
        for name in order:
            threads[name].append({"role": "assistant", "content": reply})
    result: dict[str, Any] = {}
    for kind, series in times.items():
        row: dict[str, Any] = {
            name: {
                "p50_ms": round(statistics.median(v), 3),
                "p99_ms": round(percentile(v, 99), 3),
                "max_ms": round(max(v), 3),
            }
            for name, v in series.items()
        }
        row["ratio_p50"] = round(row["big"]["p50_ms"] / row["small"]["p50_ms"], 3)
        row["ratio_p99"] = round(row["big"]["p99_ms"] / row["small"]["p99_ms"], 3)
        result[kind] = row
    result["window_messages_median"] = {n: statistics.median(v) for n, v in window.items()}
    result["prompt_tokens_median"] = {n: statistics.median(v) for n, v in tokens.items()}
    result["moves_per_1000_turns"] = {n: round(1000 * c / repeat, 1) for n, c in moved.items()}
    result["compactions"] = {
        n: len(t.summaries()) - summaries_before[n] for n, t in threads.items()
    }
    return result


def database_size(store: contextkit.Store) -> dict[str, Any]:
    """Bytes on disk: the SQLite file and WAL, or PostgreSQL's database and messages table."""
    engine = store.engine
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        sizes = {
            "file_bytes": path.stat().st_size,
            "wal_bytes": _size(path.with_name(path.name + "-wal")),
        }
        with engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        sizes["pages_bytes"] = int(pages) * int(page)
        return sizes
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_database_size(current_database()), pg_total_relation_size('messages'),"
                " pg_relation_size('messages'), pg_indexes_size('messages')"
            )
        ).one()
    return {
        "database_bytes": row[0],
        "messages_total_bytes": row[1],
        "messages_heap_bytes": row[2],
        "messages_indexes_bytes": row[3],
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _mb(value: int) -> str:
    return f"{value / 1e6:,.1f} MB"


def server_version(store: contextkit.Store) -> str:
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            return "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar_one())
        return str(conn.execute(text("SELECT version()")).scalar_one())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--budget", type=int, default=8_000, help="max_context_tokens")
    parser.add_argument("--max-tokens", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=300, help="rounds per path")
    parser.add_argument("--batch", type=int, default=5_000, help="messages per extend()")
    parser.add_argument("--words", type=int, default=40, help="words per message")
    parser.add_argument("--progress", type=int, default=100_000, help="report every N")
    parser.add_argument("--first-build", choices=("default", "cut"), default="default")
    parser.add_argument("--url", default=None, help="database URL (default: a temp SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the temp SQLite file")
    args = parser.parse_args()

    started = time.perf_counter()
    tmp = None if args.url else tempfile.mkdtemp(prefix="ck-million-")
    url = args.url or f"sqlite:///{Path(tmp or '') / 'million.db'}"
    store = contextkit.open(url)
    dialect = store.engine.dialect.name
    try:
        version = server_version(store)
        print(f"database: {store.engine.url.render_as_string(hide_password=True)}")
        print(f"server: {version}")
        tag = f"{int(time.time())}-{os.getpid()}"
        threads = {
            name: store.thread(
                f"million-{name}-{tag}",
                model=MODEL,
                system=SYSTEM,
                max_context_tokens=args.budget,
            )
            for name in ("big", "small")
        }
        print(
            f"filling {args.messages:,} messages with extend() in batches of {args.batch:,} "
            f"({args.words} words each)",
            flush=True,
        )
        fill_big = fill(
            threads["big"],
            args.messages,
            batch=args.batch,
            words=args.words,
            seed=1,
            progress=args.progress,
        )
        fill_small = fill(threads["small"], args.small, batch=args.batch, words=args.words, seed=2)
        size_filled = database_size(store)
        print(
            f"filled in {fill_big['wall_s']:,.1f}s: {fill_big['msg_per_s_wall']:,.0f} msg/s "
            f"wall, {fill_big['msg_per_s_extend']:,.0f} msg/s in extend() "
            f"(texts {fill_big['generate_s']:.1f}s); batch p50 {fill_big['batch_s_p50']:.3f}s "
            f"(first tenth {fill_big['batch_s_first_tenth_p50']:.3f}s, last tenth "
            f"{fill_big['batch_s_last_tenth_p50']:.3f}s), max {fill_big['batch_s_max']:.3f}s",
            flush=True,
        )
        print("size after fill: " + ", ".join(f"{k} {_mb(v)}" for k, v in size_filled.items()))

        print(f"first builds (--first-build {args.first_build}), excluded from the comparison:")
        first = {}
        for name, thread in threads.items():
            first[name] = first_build(thread, args.first_build, args.max_tokens)
            steps = ", ".join(
                f"{step} {info['seconds']:.3f}s (moved={info['moved']}, "
                f"window {info['window_messages']} msgs, {info['prompt_tokens']:,} tokens)"
                for step, info in first[name].items()
                if isinstance(info, dict)
            )
            print(
                f"  {name}: {steps}; summaries {first[name]['summaries']}, "
                f"peak rss {first[name]['peak_rss_mb']:,} MB",
                flush=True,
            )

        phases: dict[str, Any] = {}
        for i, (path_name, policy) in enumerate(PATHS.items()):
            t0 = time.perf_counter()
            phases[path_name] = measure(
                threads,
                policy,
                repeat=args.repeat,
                max_tokens=args.max_tokens,
                words=args.words,
                seed=3 + i,
            )
            phases[path_name]["seconds"] = round(time.perf_counter() - t0, 1)
            res = phases[path_name]
            print(
                f"{path_name}: {args.repeat} rounds in {res['seconds']}s; window messages "
                f"(median) {res['window_messages_median']}, prompt tokens (median) "
                f"{res['prompt_tokens_median']}, cut moves+compactions per 1,000 turns "
                f"{res['moves_per_1000_turns']}, compactions {res['compactions']}",
                flush=True,
            )

        history = {name: len(thread) for name, thread in threads.items()}
        size_end = database_size(store)
        rows = []
        for path_name, res in phases.items():
            for kind in ("turn", "steady"):
                r = res[kind]
                rows.append(
                    [
                        path_name,
                        kind,
                        r["big"]["p50_ms"],
                        r["big"]["p99_ms"],
                        r["small"]["p50_ms"],
                        r["small"]["p99_ms"],
                        r["ratio_p50"],
                        r["ratio_p99"],
                        "yes" if r["ratio_p50"] <= 2 else "NO",
                    ]
                )
        print_table(
            [
                "path",
                "case",
                "big p50 ms",
                "big p99 ms",
                "small p50 ms",
                "small p99 ms",
                "ratio p50",
                "ratio p99",
                "p50 ratio <= 2",
            ],
            rows,
            title=(
                f"build() on {dialect}: history big={history['big']:,} vs "
                f"small={history['small']:,}, max_context_tokens={args.budget:,}, "
                f"max_tokens={args.max_tokens}, {args.repeat} rounds"
            ),
        )
        total = size_end.get("pages_bytes", size_end.get("database_bytes", 0))
        per_msg = total / max(sum(history.values()), 1)
        print(
            "\nsize at end: "
            + ", ".join(f"{k} {_mb(v)}" for k, v in size_end.items())
            + f" (~{per_msg:,.0f} bytes per stored message)"
        )
        wall = time.perf_counter() - started
        print(f"total wall time {wall:,.1f}s, peak rss {_rss_mb():,.0f} MB")
        out = write_results(
            f"million-{dialect}" + ("-cut" if args.first_build == "cut" else ""),
            {
                "database": dialect,
                "server": version,
                "config": {
                    k: getattr(args, k)
                    for k in (
                        "messages",
                        "small",
                        "budget",
                        "max_tokens",
                        "repeat",
                        "batch",
                        "words",
                        "first_build",
                    )
                },
                "history": history,
                "fill": {"big": fill_big, "small": fill_small},
                "first_build": first,
                "paths": phases,
                "size_after_fill": size_filled,
                "size_at_end": size_end,
                "wall_s": round(wall, 1),
                "peak_rss_mb": round(_rss_mb()),
            },
            PACKAGES,
        )
        print(f"wrote {out}")
    finally:
        store.close()
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"kept {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
