"""Part 4, replay: the longest real conversations under 8K / 32K budgets, every strategy."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from _common import parallel_map, print_table, timed
from bench_compaction import (
    RESERVE,
    Conversation,
    PromptTokens,
    Run,
    Settings,
    run_contextkit,
    run_full,
    run_window,
    select,
    worker_store,
)

import contextkit

from .common import MAX_TOKENS, PRO, preload, quiet
from .langchain import lc_deepseek_counter, run_langchain
from .llamaindex import run_llamaindex

REPLAY_STRATEGIES = (
    "full",
    "window",
    "langchain-approx",
    "langchain-deepseek",
    "llamaindex",
    "contextkit",
)
REPLAY_TITLES = {
    "full": "full history (no trimming)",
    "window": "sliding window, exact template counts",
    "langchain-approx": "LangChain trim_messages (approximate)",
    "langchain-deepseek": "LangChain trim_messages (DeepSeek tokenizer)",
    "llamaindex": "LlamaIndex Memory",
    "contextkit": "contextkit",
}


@dataclass(frozen=True)
class ReplayJob:
    base: str
    budget: int
    conv: Conversation


def _run_summary(run: Run, seconds: float) -> dict[str, Any]:
    report = run.report
    assert report is not None
    hit = report.hit_tokens
    prompt = sum(run.prompt_tokens)
    pro = contextkit.get_model(PRO).cost(hit, prompt - hit, run.completion_tokens)
    extra = run.extra
    return {
        "turns": run.turns,
        "served": run.served,
        "failed": run.failed,
        "prompt_tokens": prompt,
        "max_prompt_tokens": max(run.prompt_tokens, default=0),
        "completion_tokens": run.completion_tokens,
        "hit_tokens": hit,
        "upper_bound_tokens": report.upper_bound_tokens,
        "cost_flash": run.cost_usd,
        "cost_pro": pro,
        "budget_violations": extra.get("budget_violations", 0),
        "max_over_budget": extra.get("max_over_budget", 0),
        "newest_dropped": extra.get("newest_dropped", 0),
        "count_mismatches": extra.get("count_mismatches", 0),
        "compactions": extra.get("compactions", 0),
        "summarizer_llm_cost": extra.get("summarizer_llm_cost_usd", 0.0),
        "seconds": seconds,
    }


def replay_job(job: ReplayJob) -> dict[str, dict[str, Any]]:
    """Every strategy on one conversation at one budget (runs in a worker process)."""
    quiet()
    conv, cfg = job.conv, Settings(job.budget, MAX_TOKENS, thinking=True)
    tokens = PromptTokens(thinking=True)
    tokens.preload(text for turn in conv.turns for text in turn)
    store, summarizer = worker_store(job.base)
    runners: dict[str, Callable[[], Run]] = {
        "full": lambda: run_full(conv, tokens, cfg),
        "window": lambda: run_window(conv, tokens, cfg),
        "langchain-approx": lambda: run_langchain(conv, tokens, cfg, "approximate"),
        "langchain-deepseek": lambda: run_langchain(conv, tokens, cfg, lc_deepseek_counter),
        "llamaindex": lambda: run_llamaindex(conv, tokens, cfg),
        "contextkit": lambda: run_contextkit(
            conv, tokens, cfg, store, summarizer, thread_id=f"{conv.id}@{job.budget}"
        ),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, runner in runners.items():
        seconds, run = timed(runner)
        out[name] = _run_summary(run, seconds)
    return out


def _replay_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total = {
        k: sum(r[k] for r in runs)
        for k in runs[0]
        if k not in ("failed", "max_prompt_tokens", "max_over_budget")
    }
    served = total["served"]
    prompt = total["prompt_tokens"]
    total.update(
        conversations=len(runs),
        failed=sum(r["failed"] for r in runs),
        max_prompt_tokens=max(r["max_prompt_tokens"] for r in runs),
        max_over_budget=max(r["max_over_budget"] for r in runs),
        mean_prompt_tokens=prompt / served if served else 0.0,
        hit_ratio=total["hit_tokens"] / prompt if prompt else 0.0,
        hit_of_upper_bound=(
            total["hit_tokens"] / total["upper_bound_tokens"]
            if total["upper_bound_tokens"]
            else 1.0
        ),
        cost_flash_per_1000_turns=1000 * total["cost_flash"] / served if served else 0.0,
        cost_pro_per_1000_turns=1000 * total["cost_pro"] / served if served else 0.0,
    )
    return total


def part_replay(quick: bool) -> dict[str, Any]:
    budgets = (8_000, 32_000)
    n_convs, max_turns = (2, 50) if quick else (16, 150)
    t0 = time.perf_counter()
    selection = select(
        n_convs,
        min_messages=20,
        max_merged=0.1,
        user_cap=min(budgets) - MAX_TOKENS - RESERVE,
    )
    convs = [replace(c, turns=c.turns[:max_turns]) for c in selection.conversations]
    turns = sum(len(c.turns) for c in convs)
    print(
        f"  {len(convs)} conversations, {turns:,} turns (at most {max_turns} each), "
        f"loaded in {time.perf_counter() - t0:.1f}s; budgets {budgets}",
        flush=True,
    )
    preload()
    base = tempfile.mkdtemp(prefix="ck-bench-replay-")
    try:
        jobs = [ReplayJob(base, b, c) for b in budgets for c in convs]
        done = parallel_map(replay_job, jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results: dict[str, Any] = {}
    violations = {"contextkit_budget_violations": 0, "contextkit_count_mismatches": 0}
    for budget in budgets:
        per = [d for j, d in zip(jobs, done, strict=True) if j.budget == budget]
        table = {s: _replay_totals([d[s] for d in per]) for s in REPLAY_STRATEGIES}
        results[str(budget)] = table
        ck = table["contextkit"]
        violations["contextkit_budget_violations"] += ck["budget_violations"]
        violations["contextkit_count_mismatches"] += ck["count_mismatches"]
        print_table(
            [
                "strategy",
                "turns served",
                "over budget",
                "newest dropped",
                "mean prompt",
                "hit ratio",
                "$ flash",
                "$ pro",
                "$/1k turns flash",
            ],
            [
                [
                    REPLAY_TITLES[s],
                    f"{r['served']:,}/{r['turns']:,}",
                    r["budget_violations"],
                    r["newest_dropped"],
                    r["mean_prompt_tokens"],
                    f"{r['hit_ratio']:.3f}",
                    f"{r['cost_flash']:.4f}",
                    f"{r['cost_pro']:.4f}",
                    f"{r['cost_flash_per_1000_turns']:.4f}",
                ]
                for s, r in table.items()
            ],
            title=f"4. replay at a {budget:,}-token budget (max_tokens {MAX_TOKENS})",
        )
    return {
        "budgets": list(budgets),
        "max_tokens": MAX_TOKENS,
        "thinking": True,
        "conversations": len(convs),
        "max_turns": max_turns,
        "turns": turns,
        "selection": selection.stats,
        "strategies": list(REPLAY_STRATEGIES),
        "titles": REPLAY_TITLES,
        "results": results,
        "violations": violations,
    }
