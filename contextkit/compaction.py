"""Compaction: fold older turns into a rolling summary when the prompt nears its budget.

Rare and large: nothing happens until the prompt passes the high-water mark (80% of the
budget); then everything but the most recent ~30% of the budget is summarized at once, the
previous summary folded in, so the next compaction is many turns away and every prompt in
between keeps a byte-identical prefix. Messages are never edited or deleted: a summary is a
row covering a seq range, and the window simply starts after it.

The summarizer runs outside any transaction. The summary commits only if no other
compaction committed meanwhile (an optimistic check on the thread's summary counter), so
two workers never both summarize a range, and a crash or an error leaves the thread as it was.
The arithmetic (`keep_threshold`, `chunk_end`) is pure; `compact` reads, summarizes, commits.
A long backlog (a bulk import) is folded in chunks of at most `MAX_FOLD` budgets, each
committed as it is summarized and rolled into the next: memory bounded, time linear, and the
summaries cover the history from its first message.
"""

from __future__ import annotations

from functools import partial

import attrs
from attrs import frozen

from contextkit._validators import check_int
from contextkit.counting import message_tokens
from contextkit.db import cut, steps, summaries, threads
from contextkit.db.engine import Connection
from contextkit.db.schema import utcnow
from contextkit.db.steps import Steps
from contextkit.db.threads import ThreadRef, ThreadState
from contextkit.errors import ContextOverflowError, ValidationError
from contextkit.models import spec_for
from contextkit.policy import MAX_FOLD, CompactionPolicy
from contextkit.summarizers import (
    SUMMARY_HEADER,
    ExtractiveSummarizer,
    LLMSummarizer,
    Summarizer,
    Summary,
    SummaryResult,
    summary_message,
)
from contextkit.types import Message

__all__ = [
    "MAX_FOLD",
    "SUMMARY_HEADER",
    "CompactionPolicy",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Plan",
    "Summarizer",
    "Summary",
    "SummaryResult",
    "chunk_end",
    "compact",
    "keep_threshold",
    "summaries_of",
    "summary_message",
]


@frozen
class Plan:
    """What one compaction folds: messages `from_seq`..`new_start - 1` and the old summary.

    `stops` ends each chunk the summarizer is given (the last is `new_start`): a long
    backlog is folded a bounded chunk at a time, each rolled into the next.
    """

    expected_n: int
    from_seq: int
    new_start: int
    previous: str | None
    stops: tuple[int, ...]
    model: str
    budget: int


def keep_threshold(state: ThreadState, policy: CompactionPolicy, max_tokens: int) -> int:
    """The `cum_before` the new window start must reach to keep `keep_recent` of the budget."""
    budget = state.max_context_tokens - max_tokens
    return state.cum_weight - int(budget * policy.keep_recent)


def chunk_end(from_weight: int, budget: int) -> int:
    """The `cum_before` a chunk starting at `from_weight` may end at: `MAX_FOLD` budgets on,
    so one summarizer call reads a bounded share of a backlog however long it is."""
    return from_weight + MAX_FOLD * budget


def summaries_of(ref: ThreadRef) -> Steps[list[Summary]]:
    """All summaries of a thread, oldest first."""

    def read(conn: Connection) -> list[Summary]:
        threads.locked(conn, ref)
        return summaries.all_summaries(conn, ref.pk)

    return steps.read(read)


def compact(
    ref: ThreadRef,
    *,
    summarizer: Summarizer | None = None,
    policy: CompactionPolicy | None = None,
    max_tokens: int = 0,
    force: bool = False,
    summary_room: int | None = None,
) -> Steps[Summary | None]:
    """Summarize the older part of the window now; returns the new summary, or None.

    None means nothing to do (the window already holds only recent turns) or another worker
    committed a compaction first. Summarizer errors propagate with the thread unchanged but
    for the chunks of a long backlog committed before the failing one (progress, kept).
    The summary's target length is the policy's, at most `summary_room` tokens (what fits
    beside the fixed part and the recent turns of a small budget).
    """
    policy = policy or CompactionPolicy()
    summarizer = summarizer or ExtractiveSummarizer()
    if not isinstance(policy, CompactionPolicy):
        raise ValidationError(f"policy must be a CompactionPolicy, got {type(policy).__name__}")
    if not isinstance(summarizer, Summarizer):
        raise ValidationError("summarizer must have a summarize(messages, ...) method")
    check_int(max_tokens, "max_tokens", 0, 10**9)
    plan = yield from steps.read(lambda conn: _plan(conn, ref, policy, max_tokens, force=force))
    if plan is None:
        return None
    target = policy.summary_tokens(plan.budget)
    spec = spec_for(plan.model)
    if summary_room is not None:  # the room is for the whole message: header and text
        header = message_tokens(summary_message("", upto_seq=plan.new_start - 1), spec)
        target = max(16, min(target, summary_room - header))
    summary: Summary | None = None
    first, previous, expected = plan.from_seq, plan.previous, plan.expected_n
    for stop in plan.stops:
        folded = yield from steps.read(partial(_leaving, ref=ref, first=first, stop=stop))
        result = yield from summarize(
            summarizer, folded, previous=previous, max_tokens=target, model=plan.model
        )
        if not isinstance(result, SummaryResult) or not result.text.strip():
            raise ValidationError("a summarizer must return a SummaryResult with non-empty text")
        tokens = message_tokens(summary_message(result.text, upto_seq=stop - 1), spec)
        chunk = attrs.evolve(plan, expected_n=expected, from_seq=first, new_start=stop)
        summary = yield from steps.write(
            partial(_commit, ref=ref, plan=chunk, result=result, tokens=tokens)
        )
        if summary is None:  # another worker compacted meanwhile: it goes on from here
            return None
        first, previous, expected = stop, result.text, expected + 1
    return summary


def summarize(
    summarizer: Summarizer,
    messages: list[Message],
    *,
    previous: str | None,
    max_tokens: int,
    model: str,
) -> Steps[SummaryResult]:
    """The summarizer call as a step: awaited when it has `asummarize` (async drivers), run
    inline when it is the offline `ExtractiveSummarizer`, else off the event loop."""
    fn = partial(
        summarizer.summarize, messages, previous=previous, max_tokens=max_tokens, model=model
    )
    native = getattr(summarizer, "asummarize", None)
    afn = (
        partial(native, messages, previous=previous, max_tokens=max_tokens, model=model)
        if callable(native)
        else None
    )
    return steps.call(fn, afn, blocking=not isinstance(summarizer, ExtractiveSummarizer))


def _leaving(conn: Connection, *, ref: ThreadRef, first: int, stop: int) -> list[Message]:
    state = threads.locked(conn, ref)
    return cut.leaving(conn, state.pk, first, stop)


def _plan(
    conn: Connection, ref: ThreadRef, policy: CompactionPolicy, max_tokens: int, *, force: bool
) -> Plan | None:
    state = threads.locked(conn, ref)
    budget = state.max_context_tokens - max_tokens
    if budget < 1:  # no prompt fits: nothing to size a summary or a chunk by
        raise ContextOverflowError(
            f"max_tokens={max_tokens:,} leaves no room for a prompt in thread {ref.id!r}'s "
            f"max_context_tokens={state.max_context_tokens:,}; compact with a smaller "
            "max_tokens",
            needed=max_tokens,
            budget=state.max_context_tokens,
        )
    previous = summaries.latest(conn, state.pk, state.summary_n)
    threshold = keep_threshold(state, policy, max_tokens)
    start = state.window_start
    new_start = cut.cut_point(conn, state, start, threshold, user_only=not force)
    if (new_start is None or new_start <= start) and state.turn_seq > 0:
        # The current turn alone outgrows what is kept (a long tool loop): fold its
        # completed steps; its user message stays in the prompt (see `window`).
        first = max(start, state.turn_seq + 1)
        inside = cut.cut_point(conn, state, first, threshold)
        new_start = inside if inside is not None and inside >= first else None
    if new_start is None or new_start <= start:
        return None
    from_seq = previous.upto_seq + 1 if previous is not None else 1
    weights = cut.weights_at(conn, state.pk, [from_seq, new_start])
    stops: list[int] = []
    position = weights.get(from_seq, 0)
    while weights[new_start] - position > MAX_FOLD * budget:
        found = cut.next_boundary(conn, state, chunk_end(position, budget), before=new_start)
        if found is None:
            break
        stop, position = found
        stops.append(stop)
    return Plan(
        expected_n=state.summary_n,
        from_seq=from_seq,
        new_start=new_start,
        previous=previous.text if previous is not None else None,
        stops=(*stops, new_start),
        model=state.model,
        budget=budget,
    )


def _commit(
    conn: Connection, ref: ThreadRef, plan: Plan, result: SummaryResult, tokens: int
) -> Summary | None:
    state = threads.locked(conn, ref)
    if state.summary_n != plan.expected_n:
        return None
    values = {
        "n": plan.expected_n + 1,
        "from_seq": plan.from_seq,
        "upto_seq": plan.new_start - 1,
        "text": result.text,
        "token_count": tokens,
        "summarizer": result.summarizer,
        "model": result.model,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": result.cost_usd,
        "created_at": utcnow(),
    }
    return summaries.add_summary(
        conn, state.pk, values, window_start=max(state.window_start, plan.new_start)
    )
