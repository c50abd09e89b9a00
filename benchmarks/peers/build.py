"""Part 2, build: latency of history -> next prompt vs history length, per library."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from _common import interleaved, print_table, summarize, timed

import contextkit

from . import agents_sdk, contextkit_side, langchain, llamaindex, oracle
from .common import BUILD_BUDGET, MAX_TOKENS, MODEL, BuildCase, Msg, synthetic_history

BUILD_REPEAT = {100: 30, 1_000: 20, 10_000: 7, 100_000: 3}
BUILD_REPEAT_QUICK = {100: 7, 1_000: 5, 10_000: 3}


def part_build(quick: bool) -> dict[str, Any]:
    """Median latency of each library's "history -> next prompt" path per history length."""
    repeats = BUILD_REPEAT_QUICK if quick else BUILD_REPEAT
    golden = oracle.check_golden()  # the budget check's oracle, against DeepSeek's encoder
    sizes: dict[str, Any] = {}
    for size, repeat in repeats.items():
        history = synthetic_history(size, seed=size)
        with tempfile.TemporaryDirectory(prefix="ck-bench-build-") as tmp:
            path = Path(tmp)
            fill: dict[str, float] = {}
            cases: list[BuildCase] = []
            makers: list[Callable[[Path, list[Msg]], BuildCase]] = [
                contextkit_side.build_case,
                langchain.build_case,
                llamaindex.build_case,
                lambda p, h: agents_sdk.build_case(p, h, None),
                lambda p, h: agents_sdk.build_case(p, h, 100),
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
                # the oracle: HF tokenizers over DeepSeek's V4 rendering, not contextkit's count
                "prompt_tokens": oracle.prompt_tokens(prompt, thinking=True),
                "prompt_tokens_contextkit": contextkit.count_messages(prompt, MODEL, thinking=True),
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
    miscounted = [
        s
        for s, row in sizes.items()
        if row[ck]["prompt_tokens"] != row[ck]["prompt_tokens_contextkit"]
    ]
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
        "oracle": golden,
        "violations": {
            "contextkit_build_over_budget": len(over),
            "contextkit_count_differs_from_oracle": len(miscounted),
            "oracle_differs_from_deepseek_encoder": golden["render_mismatches"]
            + golden["count_mismatches"],
        },
    }
