"""Recording model calls: the assistant message, its usage, cost, and the calibration loop.

`record()` stores the reply and one `calls` row in a single transaction, keyed by the call
(`Prompt.call_key`, contextkit's own), so recording one call's reply twice adds nothing; the
provider's response id is kept as data only (servers reuse ids across restarts). The gap
between reported and predicted prompt tokens is kept per model and prompt structure, and the
next `build()` budgets with it (self-calibrating counts).

Usage is `reported` (the provider's) or `counted`: a stream cut before its usage chunk is
recorded with contextkit's own count of what arrived (`response["usage_source"] = "counted"`,
or `record_usage` for a call that delivered nothing). A counted call is priced as if no
prompt token hit the cache (its cache split is unknown and stored as 0/0: an upper bound on
the cost) and never calibrates the prompt counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import attrs
from attrs import field, frozen

from contextkit._sdk import MAX_TOKENS, Usage, as_mapping
from contextkit._validators import check_int
from contextkit.db import calls, messages, steps, summaries, threads
from contextkit.db.codec import message_to_row
from contextkit.db.engine import Connection
from contextkit.db.steps import Steps
from contextkit.db.threads import ThreadRef
from contextkit.errors import ValidationError
from contextkit.models import spec_for
from contextkit.prompt import Prompt
from contextkit.tokens.calibration import Calibration
from contextkit.types import Message, Role, check_id, check_text

__all__ = [
    "INTERRUPTED",
    "USAGE_SOURCES",
    "Recorded",
    "Stats",
    "Usage",
    "answered",
    "now_ms",
    "record",
    "record_call",
    "record_usage",
    "stats",
]

INTERRUPTED = "interrupted"
"""The `finish_reason` stored for a streamed reply cut short (what arrived is kept)."""

USAGE_SOURCES = ("reported", "counted")
"""Where a call's usage came from: the provider's report, or contextkit's count."""


@frozen
class Recorded:
    """What `record_call` stored: the message, and the call's usage, finish reason, cost."""

    message: Message
    usage: Usage | None
    finish_reason: str | None
    cost_usd: float | None
    usage_source: str = "reported"


@frozen(kw_only=True)
class Stats:
    """A thread's size and what its calls cost; `predicted_*` is contextkit's own estimate."""

    messages: int
    tokens: int
    window_start: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cache_hit_tokens: int
    cache_miss_tokens: int
    predicted_prompt_tokens: int
    predicted_cache_hit_tokens: int
    cost_usd: float
    """Model calls plus summarizer calls."""
    compactions: int = 0
    summarizer_cost_usd: float = 0.0
    prefix_breaks: Mapping[str, int] = field(factory=dict)
    """Calls whose prompt did not extend the previous call's, by cause (see
    `Prompt.prefix_break`): each is a prefix-cache miss from that point on."""
    interrupted_calls: int = 0
    """Calls whose stream was cut short (`finish_reason == "interrupted"`)."""
    counted_calls: int = 0
    """Calls whose usage contextkit counted (no usage reported): their cost is an upper
    bound and their cache split unknown (0 hit, 0 miss)."""

    @property
    def cache_hit_ratio(self) -> float:
        """Share of prompt tokens served from the provider's cache (0.0 with no calls)."""
        total = self.cache_hit_tokens + self.cache_miss_tokens
        return self.cache_hit_tokens / total if total else 0.0

    def __repr__(self) -> str:
        """Every field, and the cache hit ratio after the cache figures (what `print` shows)."""
        shown: list[str] = []
        for a in attrs.fields(Stats):
            shown.append(f"{a.name}={getattr(self, a.name)!r}")
            if a.name == "cache_miss_tokens":
                shown.append(f"cache_hit_ratio={self.cache_hit_ratio:.3f}")
        return f"Stats({', '.join(shown)})"


def _call_fields(
    finish: object, latency_ms: object, predicted: object
) -> tuple[str | None, float | None, int | None]:
    """The optional call fields, checked before anything is written."""
    if finish is not None:
        if not isinstance(finish, str) or not 0 < len(finish) <= 32:
            raise ValidationError(f"finish_reason must be a short string, got {finish!r:.40}")
        check_text(finish, "finish_reason")
    if latency_ms is not None and (
        isinstance(latency_ms, bool)
        or not isinstance(latency_ms, (int, float))
        or not 0 <= latency_ms <= 1e12
        or not math.isfinite(latency_ms)
    ):
        raise ValidationError(f"latency_ms must be a non-negative number, got {latency_ms!r:.40}")
    if predicted is not None:
        check_int(predicted, "predicted_cache_hit_tokens", 0, MAX_TOKENS)
    return (
        finish,
        None if latency_ms is None else float(latency_ms),
        predicted,  # type: ignore[return-value]
    )


def _usage_source(value: object) -> str:
    if value is None:
        return "reported"
    if value not in USAGE_SOURCES:
        raise ValidationError(f"usage_source must be 'reported' or 'counted', got {value!r:.40}")
    return str(value)


def _check_prompt(prompt: object) -> None:
    if prompt is not None and not isinstance(prompt, Prompt):
        raise ValidationError(
            f"prompt must be a Prompt from prepare(), got {type(prompt).__name__}"
        )


def _add_call(
    conn: Connection,
    ref: ThreadRef,
    model: str,
    message_seq: int | None,
    usage: Usage,
    source: str,
    *,
    response_id: str | None,
    prompt: Prompt | None,
    finish: str | None,
    latency_ms: float | None,
    predicted: int | None,
) -> float | None:
    """Store one call row (and calibrate from reported usage); returns its cost."""
    spec = spec_for(model)
    counted = source == "counted"
    miss = usage.prompt_tokens if counted else usage.cache_miss_tokens
    cost = spec.cost(0 if counted else usage.cache_hit_tokens, miss, usage.completion_tokens)
    calls.add_call(
        conn,
        ref.pk,
        {
            "message_seq": message_seq,
            "response_id": response_id,
            "model": spec.name,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cache_hit_tokens": usage.cache_hit_tokens,
            "cache_miss_tokens": usage.cache_miss_tokens,
            "predicted_prompt_tokens": prompt.prompt_tokens if prompt else None,
            "predicted_cache_hit_tokens": predicted,
            "structure": prompt.structure if prompt else None,
            "cost_usd": cost,
            "latency_ms": latency_ms,
            "finish_reason": finish,
            "window_start": prompt.window_start if prompt else None,
            "tools_digest": prompt.tools_digest if prompt else None,
            "prefix_break": prompt.prefix_break if prompt else None,
            "usage_source": source,
        },
    )
    if prompt is not None and prompt.model == spec.name and not counted:
        delta = Calibration.gap(prompt.prompt_tokens, usage.prompt_tokens)
        calls.calibrate(conn, spec.name, prompt.structure, delta)
    return cost


def record_call(
    ref: ThreadRef,
    response: object,
    *,
    prompt: Prompt | None = None,
    latency_ms: float | None = None,
    predicted_cache_hit_tokens: int | None = None,
) -> Steps[Recorded]:
    """Store a chat completion's assistant message and its usage; returns what was stored.

    `response` is a `ChatCompletion` or its dict; `prompt` supplies the prediction to compare
    with and calibrate from. A dict may say `"usage_source": "counted"` when its usage is
    contextkit's count rather than the provider's report (a cut stream's).
    """
    data = as_mapping(response, "response")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValidationError("response has no choices; nothing to record")
    choice = as_mapping(choices[0], "choice")
    message = Message.parse(choice.get("message"))
    if message.role is not Role.ASSISTANT:
        raise ValidationError(
            f"a response message must be an assistant message, not {message.role}"
        )
    usage = Usage.parse(data["usage"]) if data.get("usage") is not None else None
    source = _usage_source(data.get("usage_source"))
    response_id = data.get("id")
    if response_id is not None and not isinstance(response_id, str):
        raise ValidationError("response id must be a string")
    if response_id is not None:
        response_id = check_id(response_id, "response id")
    finish, latency_ms, predicted_cache_hit_tokens = _call_fields(
        choice.get("finish_reason"), latency_ms, predicted_cache_hit_tokens
    )
    _check_prompt(prompt)
    key = None if prompt is None else f"call:{prompt.call_key}"
    item = messages.pending(message, key, False)

    def txn(conn: Connection) -> Recorded:
        state = threads.locked(conn, ref)
        if key is not None:
            seen = messages.by_key(conn, ref.pk, key)
            if seen is not None:  # this call's reply, recorded before: the same one again
                if message_to_row(seen) != item.row:
                    raise ValidationError(
                        f"a different reply to this prompt is already recorded (seq {seen.seq}) "
                        f"in thread {ref.id!r}; prepare() again for a new call before recording it"
                    )
                cost = calls.cost_of(conn, ref.pk, seen.seq)
                return Recorded(seen, usage, finish, cost, source)
        stored = messages.insert_messages(conn, state, [item])[0]
        cost = None
        if usage is not None:
            cost = _add_call(
                conn,
                ref,
                state.model,
                stored.seq,
                usage,
                source,
                response_id=response_id,
                prompt=prompt,
                finish=finish,
                latency_ms=latency_ms,
                predicted=predicted_cache_hit_tokens,
            )
        return Recorded(stored, usage, finish, cost, source)

    return (yield from steps.write(txn))


def record_usage(
    ref: ThreadRef,
    usage: Usage,
    *,
    prompt: Prompt | None = None,
    finish_reason: str | None = None,
    usage_source: str = "counted",
    response_id: str | None = None,
    latency_ms: float | None = None,
    predicted_cache_hit_tokens: int | None = None,
) -> Steps[float | None]:
    """Store a call that delivered no message (a stream closed before any text arrived).

    The prompt was billed all the same: one `calls` row without a message; returns its cost.
    """
    if not isinstance(usage, Usage):
        raise ValidationError(f"usage must be a Usage, got {type(usage).__name__}")
    source = _usage_source(usage_source)
    if response_id is not None:
        response_id = check_id(response_id, "response id")
    finish, latency_ms, predicted = _call_fields(
        finish_reason, latency_ms, predicted_cache_hit_tokens
    )
    _check_prompt(prompt)

    def txn(conn: Connection) -> float | None:
        state = threads.locked(conn, ref)
        return _add_call(
            conn,
            ref,
            state.model,
            None,
            usage,
            source,
            response_id=response_id,
            prompt=prompt,
            finish=finish,
            latency_ms=latency_ms,
            predicted=predicted,
        )

    return (yield from steps.write(txn))


def record(
    ref: ThreadRef,
    response: object,
    *,
    prompt: Prompt | None = None,
    latency_ms: float | None = None,
    predicted_cache_hit_tokens: int | None = None,
) -> Steps[Message]:
    """`record_call`, returning just the stored assistant message."""
    recorded = yield from record_call(
        ref,
        response,
        prompt=prompt,
        latency_ms=latency_ms,
        predicted_cache_hit_tokens=predicted_cache_hit_tokens,
    )
    return recorded.message


def stats(ref: ThreadRef) -> Steps[Stats]:
    """Messages, tokens, calls, cache hits and cost of a thread, from two aggregate queries."""

    def read(conn: Connection) -> Stats:
        state = threads.locked(conn, ref)
        agg = calls.totals(conn, ref.pk)
        summary_cost = summaries.total_cost(conn, ref.pk)
        return Stats(
            messages=state.last_seq,
            tokens=state.total_tokens,
            window_start=state.window_start,
            calls=agg.calls,
            prompt_tokens=agg.prompt_tokens,
            completion_tokens=agg.completion_tokens,
            reasoning_tokens=agg.reasoning_tokens,
            cache_hit_tokens=agg.cache_hit_tokens,
            cache_miss_tokens=agg.cache_miss_tokens,
            predicted_prompt_tokens=agg.predicted_prompt_tokens,
            predicted_cache_hit_tokens=agg.predicted_cache_hit_tokens,
            cost_usd=agg.cost_usd + summary_cost,
            compactions=state.summary_n,
            summarizer_cost_usd=summary_cost,
            prefix_breaks=calls.prefix_breaks(conn, ref.pk),
            interrupted_calls=agg.interrupted_calls,
            counted_calls=agg.counted_calls,
        )

    return (yield from steps.read(read))


def answered(
    ref: ThreadRef, message: Message, key: str, *, final: bool = False
) -> Steps[tuple[Message, Recorded | None] | None]:
    """The user message stored under idempotency `key` and its recorded reply, if any.

    A retried keyed send that already succeeded gets its reply back instead of a second
    model call. The reply is the next message (`final=False`, a send) or the turn's last
    assistant message when it made no tool calls (`final=True`, a tool loop that ended).
    None: no message has the key yet; a reply of None: the call failed or its stream was cut
    (call again) or the loop did not end. The key on other content, or on a turn another
    turn has followed since its call failed, raises `ValidationError`.
    """
    item = messages.pending(message, key, False)

    def read(conn: Connection) -> tuple[Message, Recorded | None] | None:
        state = threads.locked(conn, ref)
        seen = messages.by_key(conn, ref.pk, key)
        if seen is None:
            return None
        assert seen.seq is not None
        messages.check_same(seen, item)
        reply = messages.turn_reply(conn, ref.pk, seen.seq, final=final)
        call = None if reply is None else calls.for_message(conn, ref.pk, reply.seq or 0)
        if reply is None or call is None or call["finish_reason"] == INTERRUPTED:
            if state.turn_seq != seen.seq:  # its call failed, and another turn began since
                raise ValidationError(
                    f"the message of idempotency_key {key!r} (seq {seen.seq}) got no complete "
                    f"reply and a later turn began (seq {state.turn_seq}); send it again "
                    "with a new key to ask again"
                )
            return seen, None
        usage = Usage(
            prompt_tokens=call["prompt_tokens"],
            completion_tokens=call["completion_tokens"],
            cache_hit_tokens=call["cache_hit_tokens"],
            cache_miss_tokens=call["cache_miss_tokens"],
            reasoning_tokens=call["reasoning_tokens"],
        )
        return seen, Recorded(
            reply, usage, call["finish_reason"], call["cost_usd"], call["usage_source"]
        )

    return (yield from steps.read(read))


def now_ms() -> float:
    """A monotonic clock in milliseconds, for call latency."""
    return time.perf_counter() * 1000.0
