"""Mutation check: does the suite catch each of these deliberate bugs in the core modules?

    python tests/mutations.py                 # every mutation, SQLite and PostgreSQL cases
    python tests/mutations.py --db sqlite     # SQLite cases only (no server needed)
    python tests/mutations.py --only budget-slack,cache-unit-32
    python tests/mutations.py --list

The working tree is copied to a temporary directory once; each mutation replaces one exact
source snippet in that copy (the real files are never edited), runs the tests named for it
there (`pytest -x -q -n 0`, the copy first on PYTHONPATH, so subprocesses the tests start
import the mutated code too), and restores the file. A mutation is *caught* when those tests
fail, *survived* when they pass; `error` means the tests could not run (a collection error),
which counts as not caught. First the unmutated copy runs every test selection once: a
selection that fails unmutated would make its mutations look caught, so the run stops.

Each entry names the invariant the tests hold against it. The exit status is 1 if fewer than
90% are caught or any mutation marked `required` survives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    invariant: str
    required: bool = True
    """Listed in issue #21: must be caught."""
    select: str | None = None
    """A pytest -k expression narrowing `tests`."""
    env: dict[str, str] = field(default_factory=dict)


W, C, CUT = "contextkit/window.py", "contextkit/compaction.py", "contextkit/db/cut.py"
M = Mutation
MUTATIONS: list[Mutation] = [
    # --- the ones issue #21 lists -------------------------------------------------------
    M(
        "budget-slack-20",
        W,
        "    if calibrated > budget:\n        return None, calibrated",
        "    if calibrated > budget + 20:\n        return None, calibrated",
        ("tests/test_layout.py", "tests/test_window.py"),
        "the prompt never exceeds the budget (invariant 2): exact to the token",
    ),
    M(
        "calibration-ignored",
        W,
        "    calibrated = total + Calibration.headroom(snap.correction)",
        "    calibrated = total",
        ("tests/test_window.py", "tests/test_usage.py"),
        "the budget counts the correction learned from reported usage",
    ),
    M(
        "negative-correction-allowed",
        "contextkit/tokens/calibration.py",
        "        return max(correction, 0)",
        "        return correction",
        ("tests/test_layout.py", "tests/test_window.py", "tests/test_usage.py"),
        "a provider counting less never buys budget (headroom is max(correction, 0))",
    ),
    M(
        "fold-drops-last-message",
        C,
        "partial(_leaving, ref=ref, first=first, stop=stop)",
        "partial(_leaving, ref=ref, first=first, stop=stop - 1)",
        ("tests/test_compaction.py",),
        "every folded message reaches the summarizer (invariant 1/7, checked by content)",
        select="reaches_the_summarizer",
    ),
    M(
        "cut-not-persisted",
        "contextkit/db/threads.py",
        "        .values(window_start=start)\n",
        "        .values(window_start=ThreadRow.window_start)\n",
        ("tests/test_window.py",),
        "a moved cut point is stored: the next build starts where it moved (prefix stability)",
    ),
    M(
        "cut-at-97-percent",
        W,
        "    return cum_weight - max(int(budget * low_water) - fixed, 0)",
        "    return cum_weight - max(int(budget * 0.97) - fixed, 0)",
        ("tests/test_layout.py", "tests/test_window.py"),
        "the cut moves rarely, in one step down to the low-water mark (not a sliding window)",
    ),
    M(
        "head-without-calls-0",
        CUT,
        "        _BOUNDARY,\n        MessageRow.cum_before >= threshold,\n",
        "        MessageRow.cum_before >= threshold,\n",
        ("tests/test_window.py",),
        "a window never starts on a tool result without its call (invariant 5); the job of "
        "the former `_head_without_calls` is the cut's boundary predicate now",
    ),
    M(
        "no-generation-prompt-after-developer",
        "contextkit/tokens/deepseek_v4.py",
        'or block.role not in ("user", "developer"):',
        'or block.role not in ("user",):',
        ("tests/test_golden_encoder.py", "tests/test_template.py"),
        "counts are DeepSeek's own encoder's: a trailing developer message opens the reply",
    ),
    M(
        "summarizer-validation-removed",
        C,
        "        if not isinstance(result, SummaryResult) or not result.text.strip():",
        "        if False:",
        ("tests/test_compaction.py",),
        "a summarizer's bad result is refused and the thread stays unchanged",
        select="empty_summary",
    ),
    M(
        "cache-unit-32",
        "contextkit/cache/model.py",
        "UNIT = 64\n",
        "UNIT = 32\n",
        ("tests/test_cache.py",),
        "the prefix cache is modelled in DeepSeek's 64-token units",
    ),
    M(
        "replay-rule-every-turn",
        "contextkit/accounting.py",
        "    return policy is ReasoningReplay.TOOL_TURNS and turn_tool_calls",
        "    return policy is ReasoningReplay.TOOL_TURNS",
        ("tests/test_window.py",),
        "reasoning is replayed on tool-call turns only (invariant 4)",
    ),
    M(
        "replay-rule-no-flip",
        "contextkit/tokens/chat.py",
        "                kept[j] = has[j]",
        "                kept[j] = False",
        ("tests/test_window.py",),
        "a turn that makes a tool call later replays its earlier reasoning (invariant 4)",
    ),
    # --- more -------------------------------------------------------------------------------
    M(
        "task-not-anchored",
        W,
        "    return task if task is not None and not task[0].pinned else None",
        "    return None",
        ("tests/test_long_turns.py", "tests/test_window.py"),
        "the current turn's user message is always in the prompt (invariant 7)",
        required=False,
    ),
    M(
        "seq-gap",
        "contextkit/db/messages.py",
        "        seq += 1\n        msg = item.message",
        "        seq += 2\n        msg = item.message",
        ("tests/test_store.py",),
        "seqs are contiguous 1..last_seq",
        required=False,
    ),
    M(
        "idempotency-key-unchecked",
        "contextkit/db/messages.py",
        "    if message_to_row(stored) != item.row:",
        "    if False:",
        ("tests/test_store.py",),
        "a key reused for other content is refused",
        required=False,
    ),
    M(
        "owner-not-filtered",
        "contextkit/db/threads.py",
        "select(ThreadRow).where(ThreadRow.owner == owner, ThreadRow.id == id)",
        "select(ThreadRow).where(ThreadRow.id == id)",
        ("tests/test_store.py",),
        "tenants are isolated: an owner's ids name only its own threads (invariant 6)",
        required=False,
    ),
    M(
        "image-base-tokens-dropped",
        "contextkit/tokens/image_tokens.py",
        "    return limits.base_tokens + limits.tile_tokens * tiles",
        "    return limits.tile_tokens * tiles",
        ("tests/test_image_tokens.py",),
        "an image costs 85 + 170 per 512-px tile",
        required=False,
    ),
    M(
        "image-not-fitted",
        "contextkit/tokens/image_tokens.py",
        "    if longest > limits.fit:",
        "    if False:",
        ("tests/test_image_tokens.py",),
        "an image is shrunk to fit 2048x2048 before its tiles are counted",
        required=False,
    ),
    M(
        "pinned-reversed",
        CUT,
        "_PINNED).order_by(MessageRow.seq)",
        "_PINNED).order_by(MessageRow.seq.desc())",
        ("tests/test_window.py", "tests/test_layout.py"),
        "layout order: system, pinned (in the order pinned), summary, window, extra",
        required=False,
    ),
    M(
        "summary-before-pinned",
        W,
        "        if i == len(snap.pinned) and snap.summary is not None:",
        "        if i == 0 and snap.summary is not None:",
        ("tests/test_window.py", "tests/test_compaction.py"),
        "layout order: the summary comes after the pinned messages",
        required=False,
        select="not two_processes and not kill",
    ),
    M(
        "extra-first",
        W,
        "    forms += request.extra_forms",
        "    forms = [*request.extra_forms, *forms]",
        ("tests/test_window.py",),
        "layout order: `extra` is always last (volatile context never in the prefix)",
        required=False,
    ),
    M(
        "compaction-race-unchecked",
        C,
        "    if state.summary_n != plan.expected_n:\n        return None",
        "    if False:\n        return None",
        ("tests/test_compaction.py",),
        "two workers never both commit a compaction",
        required=False,
        select="two_processes",
    ),
    M(
        "keep-recent-ignored",
        C,
        "    return state.cum_weight - int(budget * policy.keep_recent)",
        "    return state.cum_weight",
        ("tests/test_layout.py", "tests/test_compaction.py"),
        "a compaction keeps the most recent ~30% of the budget verbatim",
        required=False,
        select="not two_processes and not kill",
    ),
    M(
        "summary-chain-restarts",
        C,
        "    from_seq = previous.upto_seq + 1 if previous is not None else 1",
        "    from_seq = start",
        ("tests/test_compaction.py",),
        "summaries chain from seq 1: each takes over where the last ended",
        required=False,
        select="not two_processes and not kill",
    ),
    M(
        "calibration-gap-sign",
        "contextkit/tokens/calibration.py",
        "        return reported - predicted",
        "        return predicted - reported",
        ("tests/test_window.py", "tests/test_usage.py"),
        "the correction is reported minus predicted",
        required=False,
    ),
    M(
        "cost-prices-swapped",
        "contextkit/models.py",
        "            prompt_cache_hit * self.input_cache_hit\n"
        "            + prompt_cache_miss * self.input_cache_miss",
        "            prompt_cache_hit * self.input_cache_miss\n"
        "            + prompt_cache_miss * self.input_cache_hit",
        ("tests/test_usage.py",),
        "cost prices cache hits and misses at their own prices",
        required=False,
    ),
    M(
        "record-twice",
        "contextkit/usage.py",
        "            if seen is not None:  # this call's reply, recorded before",
        "            if False:  # this call's reply, recorded before",
        ("tests/test_usage.py", "tests/test_send_contract.py"),
        "every reply is stored exactly once (invariant 8)",
        required=False,
    ),
    M(
        "pending-call-not-checked",
        W,
        "    if state.pending_calls:\n        ids = cut.unanswered(conn, state.pk)",
        "    if False:\n        ids = cut.unanswered(conn, state.pk)",
        ("tests/test_window.py",),
        "a tool call without its result at build time is named (invariant 5)",
        required=False,
    ),
    M(
        "tool-results-unordered",
        "contextkit/tokens/deepseek_v4.py",
        '        if block.role == "user" and len(results) > 1 and order:',
        "        if False:",
        ("tests/test_golden_encoder.py",),
        "tool results render in the order of their calls, as DeepSeek's encoder does",
        required=False,
    ),
    M(
        "special-token-counts-2",
        "contextkit/tokens/deepseek_v4.py",
        "    if piece in _SPECIALS:\n        return 1",
        "    if piece in _SPECIALS:\n        return 2",
        ("tests/test_golden_encoder.py",),
        "a template special token counts as one token",
        required=False,
    ),
    M(
        "orphan-tool-result-accepted",
        "contextkit/db/messages.py",
        "        if call_seq is None:\n            raise ValidationError(",
        "        if call_seq is None and False:\n            raise ValidationError(",
        ("tests/test_validation.py", "tests/test_store.py"),
        "a tool result answers a pending call of its thread (invariant 5)",
        required=False,
    ),
    M(
        "llm-summarizer-thinks",
        "contextkit/summarizers.py",
        'extra_body={"thinking": {"type": "disabled"}}',
        'extra_body={"thinking": {"type": "enabled"}}',
        ("tests/test_compaction.py",),
        "LLM summaries run with thinking off (cheap)",
        required=False,
        select="llm_summarizer",
    ),
    M(
        "high-water-ignored",
        W,
        "            if snap.pressure > policy.high_water * budget:",
        "            if snap.pressure > budget:",
        ("tests/test_compaction.py",),
        "compaction starts at the high-water mark (80%), not when the budget is full",
        required=False,
        select="not two_processes and not kill",
    ),
]


def _copy_tree(dest: Path) -> None:
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.db", "*.db-*", ".hypothesis", ".mypy_cache",
            ".ruff_cache", ".pytest_cache", "results",
        ),
    )  # fmt: skip


def _pytest(copy: Path, tests: tuple[str, ...], select: str | None, db: str | None) -> int:
    expr = [e for e in (select, "not postgresql" if db == "sqlite" else None) if e]
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider"]
    if expr:
        args += ["-k", " and ".join(f"({e})" for e in expr)]
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("CONTEXTKIT_URL", None)
    out = subprocess.run(
        [*args, *tests], cwd=copy, env=env, capture_output=True, text=True, timeout=1800
    )
    return out.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--db", choices=("sqlite", "both"), default="both")
    parser.add_argument("--only", default=None, help="comma-separated mutation names")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {m.name for m in MUTATIONS}
        if unknown:
            parser.error(f"unknown mutations: {', '.join(sorted(unknown))}")
        chosen = [m for m in MUTATIONS if m.name in names]
    if args.list:
        for m in chosen:
            print(f"{m.name:40} {m.file:36} {m.invariant}")
        return 0
    for m in chosen:  # every snippet exactly once in the real file
        count = (ROOT / m.file).read_text(encoding="utf-8").count(m.old)
        if count != 1:
            print(f"{m.name}: the snippet occurs {count} times in {m.file}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="ck-mutations-") as tmp:
        copy = Path(tmp) / "tree"
        _copy_tree(copy)
        selections = {(m.tests, m.select) for m in chosen}
        print(f"baseline: {len(selections)} test selections on the unmutated copy ...", flush=True)
        for tests, select in sorted(selections, key=str):
            if _pytest(copy, tests, select, args.db) != 0:
                print(f"baseline fails: {' '.join(tests)} -k {select!r}", file=sys.stderr)
                return 2
        rows = []
        for m in chosen:
            target = copy / m.file
            original = (ROOT / m.file).read_text(encoding="utf-8")
            target.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
            started = time.monotonic()
            try:
                rc = _pytest(copy, m.tests, m.select, args.db)
            finally:
                target.write_text(original, encoding="utf-8")
            result = {0: "SURVIVED", 1: "caught"}.get(rc, f"error ({rc})")
            rows.append((m, result, time.monotonic() - started))
            print(f"  {m.name:38} {result:9} {rows[-1][2]:6.1f} s", flush=True)
    caught = sum(r == "caught" for _, r, _ in rows)
    print()
    print("| mutation | file | invariant the tests hold | tests | result |")
    print("| --- | --- | --- | --- | --- |")
    for m, result, _ in rows:
        tests = ", ".join(Path(t).name for t in m.tests) + (f" -k {m.select!r}" if m.select else "")
        listed = " (#21)" if m.required else ""
        print(f"| {m.name}{listed} | {m.file} | {m.invariant} | {tests} | {result} |")
    share = caught / len(rows) if rows else 0.0
    print(f"\ncaught {caught}/{len(rows)} ({share:.0%}); db: {args.db}")
    missed = [m.name for m, r, _ in rows if r != "caught" and m.required]
    if missed:
        print(f"required mutations not caught: {', '.join(missed)}")
    return 0 if share >= 0.9 and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
