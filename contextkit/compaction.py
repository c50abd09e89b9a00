"""Compaction: fold older turns into a rolling summary when the prompt nears its budget.

Rare and large: nothing happens until the prompt passes the high-water mark (80% of the
budget); then everything but the most recent ~30% of the budget is summarized at once, the
previous summary folded in, so the next compaction is many turns away and every prompt in
between keeps a byte-identical prefix. Messages are never edited or deleted: a summary is a
row covering a seq range, and the window simply starts after it.

The summarizer runs outside any transaction. The summary commits only if no other
compaction committed meanwhile (an optimistic check on the thread's summary counter), so
two workers never both summarize a range, and a crash or an error leaves the thread as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from attrs import field, frozen
from sqlalchemy import Connection, insert, select, update

from contextkit._validators import at_least, check_fraction, check_int
from contextkit.errors import ValidationError
from contextkit.store import engine as db
from contextkit.store.blobs import fetch
from contextkit.store.codec import MESSAGE_COLUMNS, message_from_row
from contextkit.store.ledger import spec_for
from contextkit.store.schema import MessageRow, SummaryRow, ThreadRow, utcnow
from contextkit.tokens.template import message_tokens
from contextkit.types import Message, Role

if TYPE_CHECKING:
    from contextkit.store.thread import Thread

__all__ = [
    "SUMMARY_HEADER",
    "CompactionPolicy",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Summarizer",
    "Summary",
    "SummaryResult",
    "compact",
    "summary_message",
]

SUMMARY_HEADER = "Summary of the earlier conversation:\n"

MAX_FOLD = 4
"""A compaction reads at most this many budgets of the messages leaving the window."""


def _fraction(_: object, attribute: Any, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValidationError(f"{attribute.name} must be a number in (0, 1], got {value!r:.40}")


@frozen(kw_only=True)
class CompactionPolicy:
    """When to compact and how much to keep.

    `high_water`: compact once the prompt would pass this share of the budget.
    `keep_recent`: the live turns kept verbatim after a compaction, as a share of the budget.
    The summary gets `summary_share` of the budget, within [`min_summary_tokens`,
    `max_summary_tokens`] (chat summaries of 200-400 tokens; more for large windows).
    """

    high_water: float = field(default=0.8, validator=_fraction)
    keep_recent: float = field(default=0.3, validator=_fraction)
    summary_share: float = field(default=0.05, validator=_fraction)
    min_summary_tokens: int = field(default=256, validator=at_least(16))
    max_summary_tokens: int = field(default=4_000, validator=at_least(16))
    enabled: bool = True

    def __attrs_post_init__(self) -> None:
        if self.keep_recent >= self.high_water:
            raise ValidationError(
                f"keep_recent ({self.keep_recent}) must be below high_water ({self.high_water})"
            )
        if self.min_summary_tokens > self.max_summary_tokens:
            raise ValidationError("min_summary_tokens must not exceed max_summary_tokens")

    def summary_tokens(self, budget: int) -> int:
        """The summary length target for a prompt budget."""
        scaled = int(budget * self.summary_share)
        return max(self.min_summary_tokens, min(self.max_summary_tokens, scaled))


@frozen(kw_only=True)
class SummaryResult:
    """What a summarizer returns: the text and, for LLM summarizers, what the call cost."""

    text: str
    summarizer: str
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@frozen(kw_only=True)
class Summary:
    """A stored summary: it covers messages 1..`upto_seq`; `from_seq` is where it took over."""

    n: int
    from_seq: int
    upto_seq: int
    text: str
    token_count: int
    summarizer: str
    model: str | None
    cost_usd: float
    created_at: Any

    def to_message(self) -> dict[str, Any]:
        return summary_message(self.text)


def summary_message(text: str) -> dict[str, Any]:
    """How a summary enters the prompt: one system message after the pinned ones."""
    return {"role": "system", "content": SUMMARY_HEADER + text}


@runtime_checkable
class Summarizer(Protocol):
    """Turns the messages leaving the window (and the previous summary) into one summary."""

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult: ...


_NUMBER = re.compile(r"\d+")
_FACT = re.compile(
    r"\b(?:my|our|name|called|prefer|preference|always|never|please|must|should|need|want|"
    r"like|deadline|order|account|email|address|phone|decid|agree|todo|remember|important)",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_PROPER = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


class ExtractiveSummarizer:
    """Offline, deterministic: keeps the sentences most likely to carry facts.

    Sentences with numbers, names, preferences, decisions and requests score highest, user
    sentences above assistant ones. Rolling: the previous summary's lines compete with the
    new sentences (with a small bonus, so old facts survive), but at least `new_share` of the
    target goes to the newest messages, so later facts always get in. Lines keep their
    conversation order.
    """

    name = "extractive"

    def __init__(self, *, new_share: float = 0.4) -> None:
        self.new_share = check_fraction(new_share, "new_share")

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        spec = spec_for(model)
        old: list[tuple[float, int, str]] = []
        new: list[tuple[float, int, str]] = []
        seen: set[str] = set()
        order = 0
        for line in (previous or "").splitlines():
            line = line.strip()
            if line and line not in seen and not line.startswith("- ("):
                seen.add(line)
                old.append((_score(line, line.startswith("- User:")) + 1.0, order, line))
                order += 1
        for message in messages:
            if message.role not in (Role.USER, Role.ASSISTANT):
                continue
            user = message.role is Role.USER
            for sentence in _SENTENCE.split(message.text):
                sentence = " ".join(sentence.split())
                score = _score(sentence, user) if len(sentence) >= 3 else 0.0
                line = f"- {'User' if user else 'Assistant'}: {sentence[:400]}"
                if score > 0 and line not in seen:
                    seen.add(line)
                    new.append((score, order, line))
                    order += 1
        chosen: dict[int, str] = {}
        used = 0

        def fill(candidates: list[tuple[float, int, str]], limit: int) -> None:
            nonlocal used
            for _, position, line in sorted(candidates, key=lambda c: (-c[0], c[1])):
                cost = spec.tokenizer.count(line + "\n")
                if position not in chosen and used + cost <= limit:
                    used += cost
                    chosen[position] = line

        fill(new, int(max_tokens * self.new_share))
        fill(old + new, max_tokens)
        text = "\n".join(chosen[p] for p in sorted(chosen)) or "- (no notable facts)"
        return SummaryResult(text=text, summarizer=self.name)


def _score(sentence: str, user: bool) -> float:
    facts = len(_FACT.findall(sentence)) + min(len(_NUMBER.findall(sentence)), 3)
    score = 2.0 * facts + len(_PROPER.findall(sentence))
    return score * (1.5 if user else 1.0) + (1.0 if user and score else 0.0)


_LLM_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Merge the previous summary (if any) with the new messages into one updated summary. "
    "Keep every fact that may matter later: names, numbers, identifiers, dates, decisions, "
    "open tasks and the user's stated preferences. Drop pleasantries and repetition. Write "
    "terse bullet points in the conversation's language. Output only the summary."
)


class LLMSummarizer:
    """Summarizes with a chat model through the openai SDK (thinking off, to keep it cheap)."""

    name = "llm"

    def __init__(self, client: Any, *, model: str = "deepseek-v4-flash") -> None:
        self.client = client
        self.model = model

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        spec = spec_for(self.model)
        transcript = "\n\n".join(_transcript_line(m) for m in messages)
        prompt = (
            f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n{transcript}\n\n"
            f"Write the updated summary in at most {max_tokens} tokens."
        )
        response = self.client.chat.completions.create(
            model=spec.api_model,
            messages=[
                {"role": "system", "content": _LLM_INSTRUCTIONS},
                {"role": "user", "content": prompt},
            ],
            max_tokens=max_tokens,
            extra_body={"thinking": {"type": "disabled"}},
        )
        text = (response.choices[0].message.content or "").strip()
        if not text:
            raise ValidationError("the summarizer model returned an empty summary")
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        hit = getattr(usage, "prompt_cache_hit_tokens", 0) or 0
        cost = spec.cost(hit, max(prompt_tokens - hit, 0), completion_tokens) or 0.0
        return SummaryResult(
            text=text,
            summarizer=self.name,
            model=spec.name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
        )


def _transcript_line(message: Message) -> str:
    if message.role is Role.TOOL:
        return f"[tool result {message.tool_call_id}]: {message.text}"
    calls = "".join(
        f" [calls {c.function.name}({c.function.arguments})]" for c in message.tool_calls
    )
    return f"[{message.role.value}]: {message.text}{calls}"


def latest_summary(conn: Connection, thread_pk: int, n: int) -> Summary | None:
    """The summary number `n` of a thread (0: none)."""
    if n == 0:
        return None
    row = (
        conn.execute(select(SummaryRow).where(SummaryRow.thread_pk == thread_pk, SummaryRow.n == n))
        .mappings()
        .one()
    )
    return _summary(row)


def _summary(row: Any) -> Summary:
    return Summary(
        n=row["n"],
        from_seq=row["from_seq"],
        upto_seq=row["upto_seq"],
        text=row["text"],
        token_count=row["token_count"],
        summarizer=row["summarizer"],
        model=row["model"],
        cost_usd=row["cost_usd"] or 0.0,
        created_at=row["created_at"],
    )


def summaries(thread: Thread) -> list[Summary]:
    """All summaries of a thread, oldest first."""

    def read(conn: Connection) -> list[Summary]:
        thread._locked_row(conn)
        rows = conn.execute(
            select(SummaryRow).where(SummaryRow.thread_pk == thread._pk).order_by(SummaryRow.n)
        ).mappings()
        return [_summary(r) for r in rows]

    return db.read(thread.store.engine, read)


@frozen
class _Plan:
    expected_n: int
    from_seq: int
    new_start: int
    previous: str | None
    messages: tuple[Message, ...]
    model: str
    budget: int


def compact(
    thread: Thread,
    *,
    summarizer: Summarizer | None = None,
    policy: CompactionPolicy | None = None,
    max_tokens: int = 0,
    force: bool = False,
) -> Summary | None:
    """Summarize the older part of the window now; returns the new summary, or None.

    None means nothing to do (the window already holds only recent turns) or another worker
    committed a compaction first. Summarizer errors propagate with the thread unchanged.
    """
    policy = policy or CompactionPolicy()
    summarizer = summarizer or ExtractiveSummarizer()
    if not isinstance(policy, CompactionPolicy):
        raise ValidationError(f"policy must be a CompactionPolicy, got {type(policy).__name__}")
    if not isinstance(summarizer, Summarizer):
        raise ValidationError("summarizer must have a summarize(messages, ...) method")
    check_int(max_tokens, "max_tokens", 0, 10**9)
    plan = db.read(
        thread.store.engine,
        lambda conn: _plan(conn, thread, policy, max_tokens, force=force),
    )
    if plan is None:
        return None
    result = summarizer.summarize(
        plan.messages,
        previous=plan.previous,
        max_tokens=policy.summary_tokens(plan.budget),
        model=plan.model,
    )
    if not isinstance(result, SummaryResult) or not result.text.strip():
        raise ValidationError("a summarizer must return a SummaryResult with non-empty text")
    spec = spec_for(plan.model)
    tokens = message_tokens(summary_message(result.text), spec)
    return db.write(thread.store.engine, lambda conn: _commit(conn, thread, plan, result, tokens))


def _plan(
    conn: Connection, thread: Thread, policy: CompactionPolicy, max_tokens: int, *, force: bool
) -> _Plan | None:
    from contextkit.window import cut_point

    row = thread._locked_row(conn)
    budget = row["max_context_tokens"] - max_tokens
    previous = latest_summary(conn, row["pk"], row["summary_n"])
    threshold = row["cum_weight"] - int(budget * policy.keep_recent)
    new_start = cut_point(conn, row, row["window_start"], threshold, user_only=not force)
    if new_start is None or new_start <= row["window_start"]:
        return None
    from_seq = previous.upto_seq + 1 if previous is not None else 1
    # Fold in at most MAX_FOLD budgets of leaving messages: a history imported in bulk (or
    # left uncompacted) is summarized from its recent end, never loaded whole.
    weights = dict(
        conn.execute(
            select(MessageRow.seq, MessageRow.cum_before).where(
                MessageRow.thread_pk == row["pk"], MessageRow.seq.in_([from_seq, new_start])
            )
        ).all()
    )
    limit = weights[new_start] - MAX_FOLD * budget
    if weights.get(from_seq, 0) < limit:
        oldest = cut_point(conn, row, from_seq, limit)
        if oldest is not None:
            from_seq = min(oldest, new_start)
    cols = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
    messages = tuple(
        message_from_row(r)
        for r in fetch(
            conn,
            select(*cols)
            .where(
                MessageRow.thread_pk == row["pk"],
                MessageRow.seq >= from_seq,
                MessageRow.seq < new_start,
                MessageRow.pinned.is_(False),
            )
            .order_by(MessageRow.seq),
        )
    )
    return _Plan(
        expected_n=row["summary_n"],
        from_seq=from_seq,
        new_start=new_start,
        previous=previous.text if previous is not None else None,
        messages=messages,
        model=row["model"],
        budget=budget,
    )


def _commit(
    conn: Connection, thread: Thread, plan: _Plan, result: SummaryResult, tokens: int
) -> Summary | None:
    row = thread._locked_row(conn)
    if row["summary_n"] != plan.expected_n:
        return None
    n = plan.expected_n + 1
    now = utcnow()
    values = {
        "thread_pk": row["pk"],
        "n": n,
        "from_seq": plan.from_seq,
        "upto_seq": plan.new_start - 1,
        "text": result.text,
        "token_count": tokens,
        "summarizer": result.summarizer,
        "model": result.model,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": result.cost_usd,
        "created_at": now,
    }
    conn.execute(insert(SummaryRow).values(**values))
    conn.execute(
        update(ThreadRow)
        .where(ThreadRow.pk == row["pk"])
        .values(summary_n=n, window_start=max(row["window_start"], plan.new_start))
    )
    return _summary(values)
