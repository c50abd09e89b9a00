"""Small helpers shared by the benchmarks: timing, statistics, tables, JSON results.

Import from a benchmark script run as `python benchmarks/<name>.py` (its directory is on
`sys.path`; `benchmarks/__init__.py` puts it there for `python -m benchmarks`):
`from _common import ...`.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

RESULTS_DIR = Path(__file__).resolve().parent / "results"

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
]
"""Filler vocabulary for synthetic threads: ~1.3 tokens a word, no facts to summarize."""


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds `fn()` took (`time.perf_counter`) and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(
    cases: Mapping[str, Callable[[], T]], repeat: int, *, collect: bool = True
) -> tuple[dict[str, list[float]], dict[str, T]]:
    """Run every case once per round, `repeat` rounds, rotating the order each round.

    Interleaving (A B, B A, A B, ...) spreads drift (thermal, other load, caches) over all
    cases alike. Returns the seconds of each run per case and each case's last result; with
    `collect`, a full garbage collection runs (untimed) before each run.
    """
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, T] = {}
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            last.pop(name, None)
            if collect:
                gc.collect()
            seconds, last[name] = timed(cases[name])
            times[name].append(seconds)
    return times, last


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, linearly interpolated."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max, p90 and count of a series (same unit as the values)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "p90": percentile(values, 90),
        "n": len(values),
    }


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed distribution versions (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info(packages: Iterable[str] = ()) -> dict[str, Any]:
    """Python version, platform, CPU count (and usable CPUs), versions of `packages`."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": package_versions(packages),
    }


def run_fresh(code: str, *args: str, timeout: float = 120.0) -> tuple[float, Any]:
    """Run `code` in a fresh interpreter; wall seconds and the JSON of its last stdout line."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}):\n{proc.stderr}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None
) -> None:
    """Print rows as an aligned text table (first column left, the others right aligned)."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    if title:
        print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:,.2f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def write_results(name: str, payload: Mapping[str, Any], packages: Iterable[str] = ()) -> Path:
    """Write `payload` plus machine info and a UTC timestamp to `results/<name>.json`."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {
        "benchmark": name,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(packages),
        **payload,
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """`[fn(x) for x in items]` in forked worker processes (one per usable CPU), order kept.

    For work judged by what it computes (tokens, costs, violations), not by how long it
    takes: timings measured inside overlap. `fn` must be a module-level function; with one
    worker (or one item) it runs in this process.
    """
    workers = min(workers or usable_cpus(), len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    # HF tokenizers warns (and turns its threads off) in children forked after it ran.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(fn, items))
