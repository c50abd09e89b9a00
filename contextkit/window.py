"""build(): the messages one model call gets, within the budget, with a cache-stable prefix.

Layout: system prompt, pinned messages, the live window (messages from the thread's stored
cut point on), then `extra` (volatile context, never stored). The cut point only moves when
the prompt would not fit, and then in one large step down to a low-water mark, so between
two moves each prompt starts with the byte-identical previous one and the provider's prefix
cache keeps hitting. Each message is sent in the replay form fixed when it was written
(`reasoning_content` only on turns that made tool calls). Cost is O(live window): stored
per-message counts and cumulative weights find the cut with one indexed query.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from attrs import field, frozen
from sqlalchemy import ColumnClause, Connection, RowMapping, literal_column, select, update

from contextkit._validators import check_fraction
from contextkit.compaction import (
    CompactionPolicy,
    Summarizer,
    Summary,
    compact,
    latest_summary,
)
from contextkit.errors import (
    CompactionWarning,
    ContextOverflowError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from contextkit.models import ModelSpec
from contextkit.store import blobs, ledger
from contextkit.store import engine as db
from contextkit.store.codec import MESSAGE_COLUMNS, message_from_row
from contextkit.store.schema import CalibrationRow, MessageRow, ThreadRow, ToolCallRow
from contextkit.tokens.template import (
    MessageShape,
    Tools,
    message_shape,
    message_tokens,
    prompt_structure,
    reasoning_effort_level,
    sequence_overhead,
    tools_tokens,
)
from contextkit.types import Message, Role

if TYPE_CHECKING:
    from contextkit.store.thread import Thread

__all__ = ["LOW_WATER", "Prompt", "prepare"]

LOW_WATER = 0.6
"""When the window must shrink, the live part drops to this share of the budget."""

_PINNED: ColumnClause[bool] = literal_column("messages.pinned")
_BOUNDARY: ColumnClause[bool] = literal_column("messages.boundary")
"""Bare column predicates, written exactly as the partial indexes' WHERE so both databases
use those indexes (SQLAlchemy would render `pinned = 1` on SQLite, which does not match)."""

_COLUMNS = [
    *(getattr(MessageRow, c) for c in MESSAGE_COLUMNS),
    MessageRow.reasoning_kept,
    MessageRow.lead,
]


@frozen
class Prompt:
    """One call's prompt: the messages to send and what contextkit knows about them.

    `prompt_tokens` is the exact count for the model's chat template; `calibrated_tokens`
    adds the last gap the provider reported for prompts of the same `structure`.
    """

    messages: tuple[dict[str, Any], ...]
    model: str
    api_model: str
    max_tokens: int
    budget: int
    prompt_tokens: int
    calibrated_tokens: int
    structure: str
    thinking: bool
    reasoning_effort: str | None
    window_start: int
    moved: bool
    seqs: tuple[int | None, ...]
    """The stored seq of each message (None for system prompt, summary and extra)."""
    last_seq: int
    sections: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    """How many of `messages` are system prompt, pinned, summary, live window, extra."""
    tools: Tools | None = field(default=None, eq=False)

    def to_list(self) -> list[dict[str, Any]]:
        """Fresh dicts for `client.chat.completions.create(messages=...)`."""
        return [_copy(m) for m in self.messages]

    def to_anthropic(self) -> dict[str, Any]:
        """The same window as Anthropic Messages API input (see `contextkit.anthropic`)."""
        from contextkit.anthropic import to_anthropic

        return to_anthropic(self)

    def request(self) -> dict[str, Any]:
        """Keyword arguments for `client.chat.completions.create`."""
        kwargs: dict[str, Any] = {
            "model": self.api_model,
            "messages": self.to_list(),
            "max_tokens": self.max_tokens,
        }
        if self.tools:
            kwargs["tools"] = list(self.tools)
        if self.reasoning_effort is not None:
            kwargs["reasoning_effort"] = self.reasoning_effort
        kwargs["extra_body"] = {"thinking": {"type": "enabled" if self.thinking else "disabled"}}
        return kwargs


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@frozen
class _Snapshot:
    thread: RowMapping
    pinned: tuple[tuple[Message, bool, str | None], ...]
    live: tuple[tuple[Message, bool, str | None], ...]
    window_start: int
    moved: bool
    correction: int
    summary: Summary | None
    pressure: int
    structure: str = ""
    compactable: bool = True


def prepare(
    thread: Thread,
    *,
    max_tokens: int,
    extra: object = None,
    tools: Tools | None = None,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
    low_water: float = LOW_WATER,
    compaction: CompactionPolicy | None = None,
    summarizer: Summarizer | None = None,
) -> Prompt:
    """Assemble the prompt for the next call (see the module docstring for the rules).

    Compacts first when the prompt would pass the policy's high-water mark (the store's
    policy and summarizer unless given; `CompactionPolicy(enabled=False)` turns it off). If
    the summarizer fails, the thread stays as it was and the cut point keeps the prompt
    within budget, with a `CompactionWarning`.

    Raises `ContextOverflowError` when even the newest turn cannot fit beside the fixed part
    and `max_tokens`, and `ValidationError` when a tool call still waits for its result.
    """
    from contextkit.store.ledger import spec_for

    low_water = check_fraction(low_water, "low_water")
    if compaction is not None and not isinstance(compaction, CompactionPolicy):
        raise ValidationError(
            f"compaction must be a CompactionPolicy, got {type(compaction).__name__}"
        )
    if summarizer is not None and not isinstance(summarizer, Summarizer):
        raise ValidationError(
            "summarizer must have a summarize(messages, ...) method, got "
            f"{type(summarizer).__name__}"
        )
    spec = spec_for(thread.model)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValidationError(f"max_tokens must be a positive int, got {max_tokens!r:.40}")
    if max_tokens > spec.max_output_tokens:
        raise ValidationError(
            f"max_tokens {max_tokens:,} exceeds {spec.name}'s output limit "
            f"({spec.max_output_tokens:,})"
        )
    thinking = spec.thinking_default if thinking is None else bool(thinking)
    effort = reasoning_effort_level(reasoning_effort)
    extras = _extra_messages(extra)
    extra_forms = [m.to_openai(reasoning=False) for m in extras]
    extra_tokens = [message_tokens(f, spec, thinking=thinking) for f in extra_forms]
    for form in extra_forms:
        if isinstance(form.get("content"), list):
            blobs.extract(form["content"], spec.image_limits)  # corrupt images: ImageError
    extra_shapes = [message_shape(f, spec, thinking=thinking) for f in extra_forms]
    tool_tokens = tools_tokens(tools, spec)
    base = sequence_overhead(
        [], spec, tools_tokens=tool_tokens, thinking=thinking, reasoning_effort=reasoning_effort
    )
    fixed_extra = sum(extra_tokens) + ledger.PAD * len(extras) + base + 2
    policy = compaction if compaction is not None else thread.store.compaction
    attempted = not policy.enabled
    compacted = False
    for _ in range(5):
        snap = db.read(
            thread.store.engine,
            partial(
                _snapshot,
                thread=thread,
                spec=spec,
                max_tokens=max_tokens,
                fixed_extra=fixed_extra,
                low_water=low_water,
                thinking=thinking,
                effort=effort,
                tools=bool(tools),
                extra_roles=tuple(m.role.value for m in extras),
                allow_cut=attempted,
                compact_at=None if attempted else policy.high_water,
            ),
        )
        budget = snap.thread["max_context_tokens"] - max_tokens
        if not attempted:
            attempted = True
            if snap.pressure > policy.high_water * budget:
                if snap.compactable:
                    compacted = _compact(thread, summarizer, policy, max_tokens)
                continue
        forms, counts, shapes, seqs = _layout(snap, spec, thinking)
        forms += extra_forms
        counts += extra_tokens
        shapes += extra_shapes
        total = sum(counts) + sequence_overhead(
            shapes,
            spec,
            tools_tokens=tool_tokens,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
        )
        calibrated = total + max(snap.correction, 0)
        if calibrated <= budget:
            if snap.moved:
                _store_cut(thread, snap.window_start)
            return Prompt(
                messages=tuple(forms),
                model=spec.name,
                api_model=spec.api_model,
                max_tokens=max_tokens,
                budget=budget,
                prompt_tokens=total,
                calibrated_tokens=calibrated,
                structure=snap.structure,
                thinking=thinking,
                reasoning_effort=effort,
                window_start=snap.window_start,
                moved=snap.moved or compacted,
                seqs=tuple(seqs),
                last_seq=snap.thread["last_seq"],
                sections=(
                    1 if snap.thread["system"] else 0,
                    len(snap.pinned),
                    1 if snap.summary is not None else 0,
                    len(snap.live),
                    len(extras),
                ),
                tools=tools,
            )
        if not snap.live or len(snap.live) == 1:
            raise _overflow(calibrated, budget, max_tokens)
        fixed_extra += calibrated - budget
    raise _overflow(calibrated, budget, max_tokens)


def _overflow(needed: int, budget: int, max_tokens: int) -> ContextOverflowError:
    return ContextOverflowError(
        f"the prompt needs {needed:,} tokens but only {budget:,} fit beside max_tokens="
        f"{max_tokens:,}; raise max_context_tokens, lower max_tokens, or shorten the newest "
        "message (or the system prompt, pinned messages, extra)",
        needed=needed,
        budget=budget,
    )


def _extra_messages(extra: object) -> list[Message]:
    if extra is None:
        return []
    if isinstance(extra, str):
        return [Message(role=Role.SYSTEM, content=extra)]
    if isinstance(extra, (Mapping, Message)):
        extra = [extra]
    if not isinstance(extra, Sequence):
        raise ValidationError(
            f"extra must be a string, a message or a list of messages, got {type(extra).__name__}"
        )
    out = [Message.parse(m) for m in extra]
    for m in out:
        if m.role is Role.TOOL or m.tool_calls:
            raise ValidationError("extra cannot hold tool calls or tool results")
    return out


@lru_cache(maxsize=256)
def _system_tokens(spec: ModelSpec, system: str, thinking: bool) -> tuple[int, MessageShape]:
    form = {"role": "system", "content": system}
    return message_tokens(form, spec, thinking=thinking), message_shape(
        form, spec, thinking=thinking
    )


def _snapshot(
    conn: Connection,
    *,
    thread: Thread,
    spec: ModelSpec,
    max_tokens: int,
    fixed_extra: int,
    low_water: float,
    thinking: bool,
    effort: str | None,
    tools: bool,
    extra_roles: tuple[str, ...] = (),
    allow_cut: bool = True,
    compact_at: float | None = None,
) -> _Snapshot:
    row = thread._locked_row(conn)
    pk = row["pk"]
    if row["pending_calls"]:
        _unanswered(conn, pk)
    if max_tokens >= row["max_context_tokens"]:
        raise ContextOverflowError(
            f"max_tokens={max_tokens:,} leaves no room for a prompt in this thread's "
            f"max_context_tokens={row['max_context_tokens']:,}",
            needed=max_tokens,
            budget=row["max_context_tokens"],
        )
    budget = row["max_context_tokens"] - max_tokens
    pinned = _rows(
        conn, select(*_COLUMNS).where(MessageRow.thread_pk == pk, _PINNED).order_by(MessageRow.seq)
    )
    fixed = fixed_extra + sum((m.token_count or 0) + ledger.PAD for m, _, _ in pinned)
    if row["system"]:
        fixed += _system_tokens(spec, row["system"], thinking)[0] + ledger.PAD
    summary = latest_summary(conn, pk, row["summary_n"])
    if summary is not None:
        fixed += summary.token_count + ledger.PAD
    start = row["window_start"]
    moved = False
    pressure = fixed + _live_weight(conn, row, start)
    if compact_at is not None and pressure > compact_at * budget:
        # The caller compacts and looks again: do not read a window about to be replaced
        # (after a bulk import it would be the whole history). When even the newest turn
        # beside the fixed part overflows, no summary can help: the caller must not write one.
        floor = fixed - (summary.token_count + ledger.PAD if summary is not None else 0)
        hopeless = floor + _smallest_tail(conn, row, start) > budget
        return _Snapshot(
            row, tuple(pinned), (), start, False, 0, summary, pressure, compactable=not hopeless
        )
    if allow_cut and pressure > budget:
        target = max(int(budget * low_water) - fixed, 0)
        new = cut_point(conn, row, start, row["cum_weight"] - target)
        if new is not None and new != start:
            start, moved = new, True
    live = _rows(
        conn,
        select(*_COLUMNS)
        .where(MessageRow.thread_pk == pk, MessageRow.seq >= start, MessageRow.pinned.is_(False))
        .order_by(MessageRow.seq),
    )
    roles = (["system"] if row["system"] else []) + [m.role.value for m, _, _ in pinned]
    roles += ["system"] if summary is not None else []
    roles += [m.role.value for m, _, _ in live]
    roles += extra_roles
    structure = prompt_structure(
        [MessageShape(role) for role in roles],
        tools=tools,
        thinking=thinking,
        reasoning_effort=effort,
    )
    correction = conn.execute(
        select(CalibrationRow.delta).where(
            CalibrationRow.model == spec.name, CalibrationRow.structure == structure
        )
    ).scalar_one_or_none()
    return _Snapshot(
        row, tuple(pinned), tuple(live), start, moved, correction or 0, summary, pressure, structure
    )


def _rows(conn: Connection, stmt: Any) -> list[tuple[Message, bool, str | None]]:
    return [
        (message_from_row(r), bool(r["reasoning_kept"]), r["lead"]) for r in blobs.fetch(conn, stmt)
    ]


def _live_weight(conn: Connection, row: RowMapping, start: int) -> int:
    if start > row["last_seq"]:
        return 0
    before = conn.execute(
        select(MessageRow.cum_before).where(
            MessageRow.thread_pk == row["pk"], MessageRow.seq == start
        )
    ).scalar_one()
    return int(row["cum_weight"] - before)


def _smallest_tail(conn: Connection, row: RowMapping, start: int) -> int:
    """Weight of the shortest live tail a cut can leave: from the last boundary on."""
    last = _last_boundary(conn, row, start)
    return _live_weight(conn, row, start if last is None else last)


def cut_point(
    conn: Connection, row: RowMapping, start: int, threshold: int, *, user_only: bool = False
) -> int | None:
    """The first boundary at or after `start` whose tail weighs at most the target.

    Prefers a user message (a whole turn); falls back to any boundary (an agent loop's step
    between tool-call groups), then to the last boundary (the smallest possible tail).
    Boundaries are unpinned, and unpinned messages have strictly increasing `cum_before`, so
    ordering by it alone walks the partial index `ix_messages_cut`.
    """
    base = select(MessageRow.seq).where(
        MessageRow.thread_pk == row["pk"],
        _BOUNDARY,
        MessageRow.cum_before >= threshold,
        MessageRow.seq >= start,
    )
    user = base.where(MessageRow.role == Role.USER.value)
    for stmt in (user,) if user_only else (user, base):
        seq = conn.execute(stmt.order_by(MessageRow.cum_before).limit(1)).scalar()
        if seq is not None:
            return int(seq)
    return None if user_only else _last_boundary(conn, row, start)


def _last_boundary(conn: Connection, row: RowMapping, start: int) -> int | None:
    """The last boundary at or after `start` (the smallest tail a cut can leave), or None."""
    last = conn.execute(
        select(MessageRow.seq)
        .where(MessageRow.thread_pk == row["pk"], _BOUNDARY)
        .order_by(MessageRow.cum_before.desc())
        .limit(1)
    ).scalar()
    return None if last is None or last < start else int(last)


def _unanswered(conn: Connection, pk: int) -> None:
    ids = conn.execute(
        select(ToolCallRow.call_id)
        .where(ToolCallRow.thread_pk == pk, ToolCallRow.answer_seq.is_(None))
        .order_by(ToolCallRow.call_seq)
        .limit(20)
    ).scalars()
    raise ValidationError(
        f"tool call(s) {', '.join(repr(i) for i in ids)} have no tool result yet; append a "
        "{'role': 'tool', 'tool_call_id': ..., 'content': ...} message for each before "
        "building the next prompt"
    )


def _layout(
    snap: _Snapshot, spec: ModelSpec, thinking: bool
) -> tuple[list[dict[str, Any]], list[int], list[MessageShape], list[int | None]]:
    forms: list[dict[str, Any]] = []
    counts: list[int] = []
    shapes: list[MessageShape] = []
    seqs: list[int | None] = []
    system = snap.thread["system"]
    if system:
        tokens, shape = _system_tokens(spec, system, thinking)
        forms.append({"role": "system", "content": system})
        counts.append(tokens)
        shapes.append(shape)
        seqs.append(None)
    exact_mode = thinking == spec.thinking_default
    head = _head_without_calls(snap.live)
    for i, (message, kept, lead) in enumerate((*snap.pinned, *snap.live)):
        if i == len(snap.pinned) and snap.summary is not None:
            form = snap.summary.to_message()
            forms.append(form)
            counts.append(snap.summary.token_count)
            shapes.append(message_shape(form, spec, thinking=thinking))
            seqs.append(None)
        form = message.to_openai(reasoning=kept and thinking)
        forms.append(form)
        ignored = kept and i - len(snap.pinned) < head
        if (exact_mode and not ignored) or not kept:
            counts.append(message.token_count or 0)
            shapes.append(MessageShape(message.role.value, lead or ""))
        else:
            shown = form if not ignored else message.to_openai(reasoning=False)
            counts.append(message_tokens(shown, spec, thinking=thinking))
            shapes.append(message_shape(shown, spec, thinking=thinking))
        seqs.append(message.seq)
    if snap.summary is not None and not snap.live:
        form = snap.summary.to_message()
        forms.append(form)
        counts.append(snap.summary.token_count)
        shapes.append(message_shape(form, spec, thinking=thinking))
        seqs.append(None)
    return forms, counts, shapes, seqs


def _head_without_calls(live: Sequence[tuple[Message, bool, str | None]]) -> int:
    """Length of the live head before its first user message, if that head makes no call.

    A cut between tool-call groups can leave the tail of a tool-call turn at the head of the
    window without its calls. Its messages keep their replay form (the bytes stay stable),
    but the provider, seeing no call in that turn, ignores their reasoning: so do the counts.
    """
    for i, (message, _, _) in enumerate(live):
        if message.role is Role.USER:
            head = i
            break
    else:
        head = len(live)
    return 0 if any(m.tool_calls for m, _, _ in live[:head]) else head


def _compact(
    thread: Thread, summarizer: Summarizer | None, policy: CompactionPolicy, max_tokens: int
) -> bool:
    """Compact now; on a summarizer failure warn and leave the thread as it was."""
    try:
        summary = compact(
            thread,
            summarizer=summarizer or thread.store.summarizer,
            policy=policy,
            max_tokens=max_tokens,
        )
    except (PermissionDenied, NotFound):
        raise
    except Exception as exc:
        warnings.warn(
            f"compaction of thread {thread.id!r} failed ({type(exc).__name__}: {exc}); the "
            "thread is unchanged and this prompt drops its oldest turns instead",
            CompactionWarning,
            stacklevel=4,
        )
        return False
    return summary is not None


def _store_cut(thread: Thread, start: int) -> None:
    """Persist a moved cut point; it only ever moves forward."""

    def txn(conn: Connection) -> None:
        conn.execute(
            update(ThreadRow)
            .where(ThreadRow.pk == thread._pk, ThreadRow.window_start < start)
            .values(window_start=start)
        )

    db.write(thread.store.engine, txn)
