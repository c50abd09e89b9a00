"""Per-message bookkeeping fixed when a message is written: replay form, tokens, weights.

A message's replay form (does the prompt carry its `reasoning_content`?) is decided when it
is written and then never changes, so every later prompt serializes it the same way and the
provider's prefix cache keeps hitting. Its token count in that form is computed once and
stored; `cum_before` (the summed window weight of the unpinned messages before it) lets
`build()` find a cut point with one indexed query instead of reading the history.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from attrs import define
from sqlalchemy import Connection, bindparam, select, update

from contextkit.errors import UnknownModelError
from contextkit.models import ModelSpec, get_model
from contextkit.store.blobs import fetch
from contextkit.store.codec import MESSAGE_COLUMNS, message_from_row
from contextkit.store.schema import MESSAGES, MessageRow, ThreadRow, ToolCallRow
from contextkit.tokens.template import ReasoningReplay, kept_reasoning, message_shape
from contextkit.tokens.template import message_tokens as _message_tokens
from contextkit.types import Message, Role

__all__ = ["PAD", "Entry", "TurnState", "account", "recount", "recount_all", "spec_for"]

PAD = 4
"""Template tokens one message can add around itself at most (role openers, separators).

Window weights are `token_count + PAD`, an upper bound that lets the cut point be found
without rendering; the exact count is taken on the few messages actually sent.
"""


@define
class TurnState:
    """The running state a new message is accounted against (mirrors the thread row)."""

    cum: int = 0
    turn_seq: int = 0
    turn_tool_calls: bool = False
    pending: int = 0
    total: int = 0


@define
class Entry:
    """The bookkeeping columns of one message row."""

    token_count: int
    reasoning_kept: bool
    lead: str | None
    cum_before: int
    boundary: bool

    def columns(self) -> dict[str, Any]:
        return {
            "token_count": self.token_count,
            "reasoning_kept": self.reasoning_kept,
            "lead": self.lead,
            "cum_before": self.cum_before,
            "boundary": self.boundary,
        }


def spec_for(model: str) -> ModelSpec:
    """The spec of a stored thread's model (retired ids resolve without a second warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return get_model(model)


def replay_form(message: Message, kept: bool) -> dict[str, Any]:
    """The message as prompts carry it."""
    return message.to_openai(reasoning=kept)


def measure(message: Message, spec: ModelSpec, kept: bool) -> tuple[int, str | None]:
    """Token count and lead of a message in its replay form, in the model's default mode."""
    form = replay_form(message, kept)
    thinking = spec.thinking_default
    tokens = _message_tokens(form, spec, thinking=thinking)
    lead = message_shape(form, spec, thinking=thinking).lead
    return tokens, lead or None


def account(message: Message, spec: ModelSpec, state: TurnState, seq: int) -> Entry:
    """Bookkeeping for a message appended after `state`; advances `state` past it."""
    role = message.role
    if not message.pinned:
        if role is Role.USER:
            state.turn_seq, state.turn_tool_calls = seq, False
        if message.tool_calls:
            state.turn_tool_calls = True
    kept = _keeps(message, spec, state.turn_tool_calls)
    tokens, lead = measure(message, spec, kept)
    boundary = not message.pinned and role is not Role.TOOL and state.pending == 0
    entry = Entry(tokens, kept, lead, state.cum, boundary)
    if not message.pinned:
        state.cum += tokens + PAD
    if role is Role.TOOL:
        state.pending -= 1
    state.pending += len(message.tool_calls)
    state.total += tokens
    return entry


def _keeps(message: Message, spec: ModelSpec, turn_tool_calls: bool) -> bool:
    if message.role is not Role.ASSISTANT or message.reasoning_content is None or message.pinned:
        return False
    policy = spec.reasoning_replay
    if policy is ReasoningReplay.ALWAYS:
        return True
    return policy is ReasoningReplay.TOOL_TURNS and turn_tool_calls


def needs_flip(message: Message, before: TurnState) -> bool:
    """Whether appending `message` turns the current turn into a tool-call turn."""
    return bool(message.tool_calls) and not message.pinned and not before.turn_tool_calls


def recount(conn: Connection, thread_pk: int, spec: ModelSpec, *, from_seq: int = 1) -> TurnState:
    """Recompute the bookkeeping of messages `from_seq`.. (a turn start, or 1); returns the state.

    Used when a turn becomes a tool-call turn after some of its assistant messages were
    written (their reasoning must now be replayed), when a thread changes model, and by the
    migration that introduced these columns.
    """
    cols = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
    rows = fetch(
        conn,
        select(*cols, MessageRow.cum_before)
        .where(MessageRow.thread_pk == thread_pk, MessageRow.seq >= from_seq)
        .order_by(MessageRow.seq),
    )
    state = TurnState()
    if from_seq > 1:
        first = conn.execute(
            select(MessageRow.cum_before).where(
                MessageRow.thread_pk == thread_pk, MessageRow.seq == from_seq
            )
        ).scalar_one()
        open_calls = conn.execute(
            select(ToolCallRow.call_id).where(
                ToolCallRow.thread_pk == thread_pk,
                ToolCallRow.call_seq < from_seq,
                (ToolCallRow.answer_seq.is_(None)) | (ToolCallRow.answer_seq >= from_seq),
            )
        ).all()
        before_total = conn.execute(
            select(ThreadRow.total_tokens).where(ThreadRow.pk == thread_pk)
        ).scalar_one() - sum(r["token_count"] or 0 for r in rows)
        state = TurnState(cum=first, pending=len(open_calls), total=before_total)
    messages = [message_from_row(r) for r in rows]
    flow = [m for m in messages if not m.pinned]
    kept_flow = kept_reasoning(
        [m.to_openai() for m in flow], thinking=True, policy=spec.reasoning_replay
    )
    kept = dict(zip((m.seq for m in flow), kept_flow, strict=True))
    updates = []
    for message in messages:
        assert message.seq is not None
        entry = account(message, spec, state, message.seq)
        if kept.get(message.seq, False) != entry.reasoning_kept:
            entry.reasoning_kept = not entry.reasoning_kept
            tokens, lead = measure(message, spec, entry.reasoning_kept)
            if not message.pinned:
                state.cum += tokens - entry.token_count
            state.total += tokens - entry.token_count
            entry.token_count, entry.lead = tokens, lead
        updates.append({"b_seq": message.seq, **entry.columns()})
    _write_entries(conn, thread_pk, updates)
    conn.execute(
        update(ThreadRow)
        .where(ThreadRow.pk == thread_pk)
        .values(
            cum_weight=state.cum,
            turn_seq=state.turn_seq if messages else 0,
            turn_tool_calls=state.turn_tool_calls,
            pending_calls=state.pending,
            total_tokens=state.total,
        )
    )
    return state


def _write_entries(conn: Connection, thread_pk: int, updates: Sequence[dict[str, Any]]) -> None:
    if not updates:
        return
    stmt = (
        update(MESSAGES)
        .where(MESSAGES.c.thread_pk == thread_pk)
        .where(MESSAGES.c.seq == bindparam("b_seq"))
    )
    conn.execute(stmt, list(updates))


def recount_all(conn: Connection) -> None:
    """Fill the bookkeeping of every stored thread (threads of unknown models count as V4)."""
    for pk, model in conn.execute(select(ThreadRow.pk, ThreadRow.model)).all():
        try:
            spec = spec_for(model)
        except UnknownModelError:
            spec = get_model("deepseek-v4-flash")
        recount(conn, pk, spec)
