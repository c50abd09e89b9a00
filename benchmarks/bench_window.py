"""build() cost is O(live window), not O(history): a 100,000-message thread vs a 100-message one.

Both threads hold the same kind of messages and the same budget, so their live windows are
alike; only the history differs. Measured side by side in one run, interleaved: steady builds
(the same prompt again) and append+build cycles (a chat turn). Target: p50 ratio <= 2.

    python benchmarks/bench_window.py [--messages 100000] [--url sqlite:///...] [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import WORDS

import contextkit


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _fill(thread: contextkit.Thread, count: int, seed: int) -> None:
    rng = random.Random(seed)
    batch: list[dict[str, object]] = []
    for i in range(count):
        role = "user" if i % 2 == 0 else "assistant"
        batch.append({"role": role, "content": _text(rng, 40)})
        if len(batch) == 1000:
            thread.extend(batch)
            batch = []
    if batch:
        thread.extend(batch)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--budget", type=int, default=8_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--url", default=None, help="database URL (default: a temp SQLite file)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="ck-bench-")
    url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
    store = contextkit.open(url)
    tag = f"{int(time.time())}"
    big = store.thread(
        f"big-{tag}",
        model="deepseek-v4-flash",
        system="You are helpful.",
        max_context_tokens=args.budget,
    )
    small = store.thread(
        f"small-{tag}",
        model="deepseek-v4-flash",
        system="You are helpful.",
        max_context_tokens=args.budget,
    )
    t0 = time.perf_counter()
    _fill(big, args.messages, 1)
    fill_s = time.perf_counter() - t0
    _fill(small, args.small, 2)
    big.build(max_tokens=500)
    small.build(max_tokens=500)

    rng = random.Random(3)
    results: dict[str, dict[str, list[float]]] = {
        "steady": {"big": [], "small": []},
        "turn": {"big": [], "small": []},
    }
    moves = {"big": 0, "small": 0}
    for _ in range(args.repeat):
        for name, thread in (("big", big), ("small", small)):
            start = time.perf_counter()
            moves[name] += thread.prepare(max_tokens=500).moved
            results["steady"][name].append((time.perf_counter() - start) * 1e3)
        for name, thread in (("small", small), ("big", big)):
            start = time.perf_counter()
            thread.append({"role": "user", "content": _text(rng, 40)})
            moves[name] += thread.prepare(max_tokens=500).moved
            results["turn"][name].append((time.perf_counter() - start) * 1e3)
            thread.append({"role": "assistant", "content": _text(rng, 40)})

    big_window = len(big.build(max_tokens=500))
    small_window = len(small.build(max_tokens=500))
    report: dict[str, object] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "database": store.engine.dialect.name,
        "history": {"big": len(big), "small": len(small)},
        "window_messages": {"big": big_window, "small": small_window},
        "fill_seconds_big": round(fill_s, 2),
        "cut_moves_per_1000_turns": {
            name: round(1000 * count / args.repeat, 1) for name, count in moves.items()
        },
    }
    print(
        f"database={report['database']} history big={len(big):,} small={len(small):,} "
        f"window messages big={big_window} small={small_window} (fill {fill_s:.1f}s)"
    )
    for kind, series in results.items():
        row = {}
        for name, values in series.items():
            row[name] = {
                "p50_ms": round(statistics.median(values), 3),
                "p99_ms": round(_pct(values, 0.99), 3),
            }
        ratio = row["big"]["p50_ms"] / row["small"]["p50_ms"]
        row["ratio_p50"] = round(ratio, 3)
        report[kind] = row
        print(
            f"{kind:>6}: big p50 {row['big']['p50_ms']:.2f} ms p99 {row['big']['p99_ms']:.2f} ms"
            f" | small p50 {row['small']['p50_ms']:.2f} ms p99 {row['small']['p99_ms']:.2f} ms"
            f" | ratio {ratio:.2f} (target <= 2)"
        )
    print(f"cut-point moves per 1,000 turns: {report['cut_moves_per_1000_turns']}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"window-{report['database']}.json").write_text(json.dumps(report, indent=2))
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
