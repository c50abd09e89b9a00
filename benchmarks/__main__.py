"""Run the benchmark suite and write `benchmarks/results/summary.md` (plus JSON and PNG plots).

    python -m benchmarks [--quick] [--only NAME[,NAME...]] [--list]

Each benchmark runs in its own interpreter (fresh imports, no state shared between them) and
writes its JSON to `benchmarks/results/`; `report.py` then renders the Markdown summary and
the plots from all JSON results present. `--quick` is the CI size (under 2 minutes on 2
cores); timings are reported, never asserted. The exit status is 1 when any benchmark found
a correctness violation (budget overrun, token mismatch, orphaned tool message, missing
reasoning) or failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SUITE: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (script, quick arguments, full arguments)
    "tokens": (
        "bench_tokens.py",
        ["--messages", "2000", "--repeat", "1", "--load-repeat", "1"],
        ["--messages", "10000", "--repeat", "3", "--load-repeat", "3"],
    ),
    "count_messages": (
        "bench_count_messages.py",
        ["--quick"],
        ["--requests", "2000", "--repeat", "5"],
    ),
    "append": ("bench_peers.py", ["--parts", "append", "--quick"], ["--parts", "append"]),
    "build": ("bench_peers.py", ["--parts", "build", "--quick"], ["--parts", "build"]),
    "replay": ("bench_peers.py", ["--parts", "replay", "--quick"], ["--parts", "replay"]),
    "agents": ("bench_peers.py", ["--parts", "agents", "--quick"], ["--parts", "agents"]),
    "policy": ("bench_policy.py", ["--quick"], []),
    "async": ("bench_async.py", ["--quick"], []),
    "coldstart": ("bench_coldstart.py", ["--quick"], []),
    "search": (
        "bench_search.py",
        ["--messages", "20000", "--queries", "200", "--append-rounds", "3"],
        [],
    ),
}


def _selected(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(SUITE)
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITE)}")
    return [n for n in SUITE if n in names]


def _load_suite(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="CI sizes (< 2 minutes)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only these, of: {', '.join(SUITE)}"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (script, quick, full) in SUITE.items():
            print(f"{name:8} {script} quick: {' '.join(quick)} | full: {' '.join(full) or '-'}")
        return 0
    names = _selected(args.only)
    mode = "quick" if args.quick else "full"
    results = HERE / "results"
    results.mkdir(parents=True, exist_ok=True)
    suite_path = results / "suite.json"
    suite = _load_suite(suite_path)
    runs: dict[str, Any] = dict(suite.get("benchmarks", {}))
    started = datetime.now(timezone.utc)
    wall = time.perf_counter()
    for name in names:
        script, quick, full = SUITE[name]
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n===== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(cmd, check=False).returncode
        seconds = time.perf_counter() - start
        status = {0: "ok", 1: "correctness violation"}.get(code, f"failed (exit {code})")
        print(f"===== {name}: {status}, {seconds:.1f}s", flush=True)
        runs[name] = {
            "mode": mode,
            "exit_code": code,
            "status": status,
            "seconds": round(seconds, 1),
            "command": " ".join(["python", *cmd[1:]]),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    total = time.perf_counter() - wall
    doc = {
        "mode": mode,
        "command": "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + "".join(f" --only {n}" for n in (names if args.only else [])),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round(total, 1),
        "ran": names,
        "benchmarks": runs,
    }
    suite_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    from report import render

    summary = render(results)
    failed = [n for n in names if runs[n]["exit_code"] != 0]
    print(f"\nsuite ({mode}): {len(names)} benchmark(s) in {total:.1f}s", end="")
    print(f"; FAILED: {', '.join(failed)}" if failed else "; all passed their checks")
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
