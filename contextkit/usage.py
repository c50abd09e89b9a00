"""Recording model calls: the assistant message, its usage, cost, and the calibration loop.

`record()` stores the reply and one `calls` row in a single transaction, keyed by the
response id, so recording the same response twice (a retry) adds nothing. The gap between
reported and predicted prompt tokens is kept per model and prompt structure, and the next
`build()` budgets with it (self-calibrating counts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import Connection, func, insert, select, update

from contextkit._validators import check_int
from contextkit.errors import ValidationError
from contextkit.store import engine as db
from contextkit.store.ledger import spec_for
from contextkit.store.schema import CalibrationRow, CallRow, SummaryRow, ThreadRow, utcnow
from contextkit.types import Message, Role, check_text

if TYPE_CHECKING:
    from contextkit.store.thread import Thread
    from contextkit.window import Prompt

__all__ = ["Recorded", "Stats", "Usage", "record", "record_call", "stats"]


@frozen(kw_only=True)
class Usage:
    """Token usage one response reports (DeepSeek and OpenAI field names both understood)."""

    prompt_tokens: int
    completion_tokens: int
    cache_hit_tokens: int = 0
    cache_miss_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def parse(cls, usage: object) -> Usage:
        data = _mapping(usage, "usage")
        prompt = _int(data, "prompt_tokens")
        completion = _int(data, "completion_tokens")
        hit = data.get("prompt_cache_hit_tokens")
        if hit is None:
            details = data.get("prompt_tokens_details") or {}
            hit = _mapping(details, "prompt_tokens_details").get("cached_tokens") or 0
        hit = check_int(hit, "usage cache hit tokens", 0, _MAX_TOKENS)
        miss = data.get("prompt_cache_miss_tokens")
        if miss is None:
            miss = prompt - hit
        miss = check_int(miss, "usage cache miss tokens", 0, _MAX_TOKENS)
        details = _mapping(data.get("completion_tokens_details") or {}, "details")
        reasoning = check_int(
            details.get("reasoning_tokens") or 0, "usage reasoning tokens", 0, _MAX_TOKENS
        )
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cache_hit_tokens=hit,
            cache_miss_tokens=miss,
            reasoning_tokens=reasoning,
        )


@frozen
class Recorded:
    """What `record_call` stored: the message, and the call's usage, finish reason, cost."""

    message: Message
    usage: Usage | None
    finish_reason: str | None
    cost_usd: float | None


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

    @property
    def cache_hit_ratio(self) -> float:
        """Share of prompt tokens served from the provider's cache (0.0 with no calls)."""
        total = self.cache_hit_tokens + self.cache_miss_tokens
        return self.cache_hit_tokens / total if total else 0.0


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        data = dump()
        if isinstance(data, Mapping):
            return data
    raise ValidationError(f"{what} must be a mapping or an SDK object, got {type(value).__name__}")


def _int(data: Mapping[str, Any], key: str) -> int:
    return check_int(data.get(key), f"usage.{key}", 0, _MAX_TOKENS)


_MAX_TOKENS = 2**53
"""Far above any real count, and safely inside every database's 64-bit integers."""


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
        check_int(predicted, "predicted_cache_hit_tokens", 0, _MAX_TOKENS)
    return (
        finish,
        None if latency_ms is None else float(latency_ms),
        predicted,  # type: ignore[return-value]
    )


def record_call(
    thread: Thread,
    response: object,
    *,
    prompt: Prompt | None = None,
    latency_ms: float | None = None,
    predicted_cache_hit_tokens: int | None = None,
) -> Recorded:
    """`record`, also returning the parsed usage, finish reason and cost it stored."""
    data = _mapping(response, "response")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValidationError("response has no choices; nothing to record")
    choice = _mapping(choices[0], "choice")
    message = Message.parse(choice.get("message"))
    if message.role is not Role.ASSISTANT:
        raise ValidationError(
            f"a response message must be an assistant message, not {message.role}"
        )
    usage = Usage.parse(data["usage"]) if data.get("usage") is not None else None
    response_id = data.get("id")
    if response_id is not None and not isinstance(response_id, str):
        raise ValidationError("response id must be a string")
    finish, latency_ms, predicted_cache_hit_tokens = _call_fields(
        choice.get("finish_reason"), latency_ms, predicted_cache_hit_tokens
    )
    from contextkit.store.thread import pending
    from contextkit.window import Prompt

    if prompt is not None and not isinstance(prompt, Prompt):
        raise ValidationError(
            f"prompt must be a Prompt from prepare(), got {type(prompt).__name__}"
        )
    prompt = prompt if prompt is not None else thread._last_prompt
    item = pending(message, response_id, False)

    def txn(conn: Connection) -> Recorded:
        if response_id is not None:
            seen = conn.execute(
                select(CallRow.message_seq, CallRow.cost_usd).where(
                    CallRow.thread_pk == thread._pk, CallRow.response_id == response_id
                )
            ).first()
            if seen is not None:
                return Recorded(thread._insert(conn, [item])[0], usage, finish, seen.cost_usd)
        stored = thread._insert(conn, [item])[0]
        cost = None
        if usage is not None:
            cost = _insert_call(
                conn,
                thread,
                stored,
                usage,
                response_id,
                prompt,
                latency_ms,
                finish,
                predicted_cache_hit_tokens,
            )
        return Recorded(stored, usage, finish, cost)

    return db.write(thread.store.engine, txn)


def record(
    thread: Thread,
    response: object,
    *,
    prompt: Prompt | None = None,
    latency_ms: float | None = None,
    predicted_cache_hit_tokens: int | None = None,
) -> Message:
    """Store a chat completion's assistant message and its usage; returns the message.

    `response` is a `ChatCompletion` or its dict. `prompt` (default: the thread handle's last
    `prepare()`) supplies the prediction to compare with and calibrate from.
    """
    return record_call(
        thread,
        response,
        prompt=prompt,
        latency_ms=latency_ms,
        predicted_cache_hit_tokens=predicted_cache_hit_tokens,
    ).message


def _insert_call(
    conn: Connection,
    thread: Thread,
    stored: Message,
    usage: Usage,
    response_id: str | None,
    prompt: Prompt | None,
    latency_ms: float | None,
    finish: object,
    predicted_hits: int | None,
) -> float | None:
    """Insert the call row (and update calibration); returns the call's cost."""
    row = conn.execute(
        select(ThreadRow.call_count, ThreadRow.model).where(ThreadRow.pk == thread._pk)
    ).one()
    spec = spec_for(row.model)
    n = row.call_count + 1
    cost = spec.cost(usage.cache_hit_tokens, usage.cache_miss_tokens, usage.completion_tokens)
    conn.execute(
        insert(CallRow).values(
            thread_pk=thread._pk,
            n=n,
            message_seq=stored.seq,
            response_id=response_id,
            model=spec.name,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cache_hit_tokens=usage.cache_hit_tokens,
            cache_miss_tokens=usage.cache_miss_tokens,
            predicted_prompt_tokens=prompt.prompt_tokens if prompt else None,
            predicted_cache_hit_tokens=predicted_hits,
            structure=prompt.structure if prompt else None,
            cost_usd=cost,
            latency_ms=latency_ms,
            finish_reason=finish if isinstance(finish, str) else None,
            window_start=prompt.window_start if prompt else None,
            created_at=utcnow(),
        )
    )
    conn.execute(update(ThreadRow).where(ThreadRow.pk == thread._pk).values(call_count=n))
    if prompt is not None and prompt.model == spec.name:
        _calibrate(conn, spec.name, prompt.structure, usage.prompt_tokens - prompt.prompt_tokens)
    return cost


def _calibrate(conn: Connection, model: str, structure: str, delta: int) -> None:
    key = (CalibrationRow.model == model, CalibrationRow.structure == structure)
    updated = conn.execute(
        update(CalibrationRow)
        .where(*key)
        .values(delta=delta, observations=CalibrationRow.observations + 1, updated_at=utcnow())
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(CalibrationRow).values(
                model=model, structure=structure, delta=delta, observations=1, updated_at=utcnow()
            )
        )


def stats(thread: Thread) -> Stats:
    """Messages, tokens, calls, cache hits and cost of a thread, from two aggregate queries."""

    def read(conn: Connection) -> Stats:
        info = thread._locked_row(conn)
        agg: Any = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(CallRow.prompt_tokens), 0),
                func.coalesce(func.sum(CallRow.completion_tokens), 0),
                func.coalesce(func.sum(CallRow.reasoning_tokens), 0),
                func.coalesce(func.sum(CallRow.cache_hit_tokens), 0),
                func.coalesce(func.sum(CallRow.cache_miss_tokens), 0),
                func.coalesce(func.sum(CallRow.predicted_prompt_tokens), 0),
                func.coalesce(func.sum(CallRow.predicted_cache_hit_tokens), 0),
                func.coalesce(func.sum(CallRow.cost_usd), 0.0),
            ).where(CallRow.thread_pk == thread._pk)
        ).one()
        summary_cost: Any = conn.execute(
            select(func.coalesce(func.sum(SummaryRow.cost_usd), 0.0)).where(
                SummaryRow.thread_pk == thread._pk
            )
        ).scalar_one()
        return Stats(
            messages=info["last_seq"],
            tokens=info["total_tokens"],
            window_start=info["window_start"],
            calls=agg[0],
            prompt_tokens=int(agg[1]),
            completion_tokens=int(agg[2]),
            reasoning_tokens=int(agg[3]),
            cache_hit_tokens=int(agg[4]),
            cache_miss_tokens=int(agg[5]),
            predicted_prompt_tokens=int(agg[6]),
            predicted_cache_hit_tokens=int(agg[7]),
            cost_usd=float(agg[8]) + float(summary_cost),
            compactions=info["summary_n"],
            summarizer_cost_usd=float(summary_cost),
        )

    return db.read(thread.store.engine, read)


def now_ms() -> float:
    """A monotonic clock in milliseconds, for call latency."""
    return time.perf_counter() * 1000.0
