"""Per-message bookkeeping fixed when a message is written: replay form, tokens, weights.

A message's replay form (does the prompt carry its `reasoning_content`?) is decided when it
is written and then never changes, so every later prompt serializes it the same way and the
provider's prefix cache keeps hitting. Its token count in that form is computed once and
stored; `cum_before` (the summed window weight of the unpinned messages before it) lets
`build()` find a cut point with one indexed query instead of reading the history.

Pure: the database layer stores what these functions decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import define

from contextkit.counting import message_shape
from contextkit.counting import message_tokens as _message_tokens
from contextkit.models import ModelSpec
from contextkit.tokens.chat import ReasoningReplay, kept_reasoning
from contextkit.types import Message, Role

__all__ = ["PAD", "Entry", "TurnState", "account", "measure", "needs_flip", "reaccount"]

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


def measure(message: Message, spec: ModelSpec, kept: bool) -> tuple[int, str | None]:
    """Token count and lead of a message in its replay form, in the model's default mode."""
    form = message.to_openai(reasoning=kept)
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


def reaccount(
    messages: Sequence[Message], spec: ModelSpec, state: TurnState
) -> list[tuple[int, Entry]]:
    """Bookkeeping of stored `messages` (seq order, from a turn start) recomputed after `state`.

    The replay form of each message is decided with the whole run in view (a later tool call
    makes its turn's earlier reasoning replayed). Advances `state` past the run.
    """
    flow = [m for m in messages if not m.pinned]
    kept_flow = kept_reasoning(
        [m.to_openai() for m in flow], thinking=True, policy=spec.reasoning_replay
    )
    kept: Mapping[int | None, bool] = dict(zip((m.seq for m in flow), kept_flow, strict=True))
    out = []
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
        out.append((message.seq, entry))
    return out
