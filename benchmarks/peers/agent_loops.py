"""Part agents: synthetic agent loops; what each strategy sends on every model call."""

from __future__ import annotations

import shutil
import statistics
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from _common import parallel_map, print_table
from bench_compaction import worker_store

from . import oracle
from .agents_sdk import run_agents_sdk
from .common import MAX_TOKENS, preload, quiet
from .contextkit_side import ContextkitLoop
from .langchain import LangChainLoop
from .llamaindex import LlamaIndexLoop
from .loop_script import AGENTS_LIMIT, Audit, LoopStrategy, loop_messages, make_loop

LOOP_STRATEGIES = ("langchain", "llamaindex", "agents", "contextkit")
LOOP_TITLES = {
    "langchain": "LangChain trim_messages",
    "llamaindex": "LlamaIndex Memory",
    "agents": f"Agents SDK Runner + session (limit={AGENTS_LIMIT})",
    "contextkit": "contextkit",
}


@dataclass(frozen=True)
class LoopJob:
    base: str
    budget: int
    seed: int
    turns: int


def loop_job(job: LoopJob) -> dict[str, dict[str, Any]]:
    """Every strategy on one synthetic agent session (runs in a worker process)."""
    quiet()
    script = make_loop(job.seed, job.turns)
    store, _ = worker_store(job.base)
    strategies: dict[str, LoopStrategy] = {
        "langchain": LangChainLoop(job.budget),
        "llamaindex": LlamaIndexLoop(job.budget, f"loop-{job.seed}"),
        "contextkit": ContextkitLoop(store, f"loop-{job.seed}@{job.budget}", job.budget),
    }
    audits: dict[str, Audit] = {}
    for name, strategy in strategies.items():
        audit = audits[name] = Audit()
        try:
            for turn in script:
                for message, call in loop_messages(turn):
                    strategy.add(message)
                    if call:
                        audit.check(strategy.prompt(), message, job.budget)
        finally:
            strategy.close()
    audits["agents"] = run_agents_sdk(script, job.budget, job.seed, job.base)
    return {name: asdict(audits[name]) for name in LOOP_STRATEGIES}


def part_agents(quick: bool) -> dict[str, Any]:
    budgets = (8_000,) if quick else (8_000, 32_000)
    loops, turns = (2, 8) if quick else (4, 25)
    preload()
    golden = oracle.check_golden()  # the budget check's oracle, against DeepSeek's encoder
    base = tempfile.mkdtemp(prefix="ck-bench-agents-")
    try:
        jobs = [LoopJob(base, b, seed, turns) for b in budgets for seed in range(loops)]
        done = parallel_map(loop_job, jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    script_stats = [make_loop(s, turns) for s in range(loops)]
    steps = [len(t.steps) for script in script_stats for t in script]
    results: dict[str, Any] = {}
    violations: dict[str, int] = {}
    for budget in budgets:
        per = [d for j, d in zip(jobs, done, strict=True) if j.budget == budget]
        table: dict[str, dict[str, int]] = {}
        for name in LOOP_STRATEGIES:
            rows = [d[name] for d in per]
            table[name] = {
                k: (max if k.startswith("max_") else sum)(r[k] for r in rows) for k in rows[0]
            }
        results[str(budget)] = table
        ck = table["contextkit"]
        for key in (
            "budget_violations",
            "orphaned_tool_results",
            "unanswered_tool_calls",
            "missing_reasoning",
            "newest_dropped",
        ):
            violations[f"contextkit_{key}"] = violations.get(f"contextkit_{key}", 0) + ck[key]
        print_table(
            [
                "strategy",
                "calls",
                "refused",
                "over budget",
                "orphaned results",
                "unanswered calls",
                "no reasoning",
                "newest dropped",
                "max prompt",
            ],
            [
                [
                    LOOP_TITLES[n],
                    r["calls"],
                    r["refused"],
                    r["budget_violations"],
                    r["orphaned_tool_results"],
                    r["unanswered_tool_calls"],
                    r["missing_reasoning"],
                    r["newest_dropped"],
                    r["max_prompt_tokens"],
                ]
                for n, r in table.items()
            ],
            title=f"agent loops at a {budget:,}-token budget ({loops} sessions x {turns} turns)",
        )
    return {
        "budgets": list(budgets),
        "max_tokens": MAX_TOKENS,
        "sessions": loops,
        "turns_per_session": turns,
        "tool_steps_per_turn": {"mean": statistics.fmean(steps), "max": max(steps)},
        "agents_limit": AGENTS_LIMIT,
        "strategies": list(LOOP_STRATEGIES),
        "titles": LOOP_TITLES,
        "results": results,
        "oracle": golden,
        "violations": {
            **violations,
            "oracle_differs_from_deepseek_encoder": golden["render_mismatches"]
            + golden["count_mismatches"],
        },
    }
