"""What a conversation hands back: a recorded `Reply`, and the `Delta`s of a streamed one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from attrs import frozen

from contextkit._sdk import Usage
from contextkit.types import Message, ToolCall

if TYPE_CHECKING:
    from contextkit.prompt import Prompt

__all__ = ["Delta", "Reply"]


@frozen(kw_only=True)
class Reply:
    """One model call's outcome, as recorded: the stored message, its usage and cost.

    `steps` counts the model calls `run()` made to reach it (1 for `send()`). `replayed`:
    the reply was stored by an earlier, successful send with the same idempotency key and
    is returned as stored, with no model call (its `prompt` is then None). A stream cut
    short gives an `interrupted` reply (what arrived) with `usage_counted` usage.
    """

    message: Message
    finish_reason: str | None
    usage: Usage | None
    cost_usd: float | None
    prompt: Prompt | None
    predicted_cache_hit_tokens: int | None
    latency_ms: float
    steps: int = 1
    replayed: bool = False
    usage_counted: bool = False
    """True when `usage` is contextkit's count of what arrived, not the provider's report
    (a stream cut before its usage chunk): the cache split is unknown (0, 0)."""

    @property
    def content(self) -> str:
        """The reply's text ("" when it only calls tools)."""
        return self.message.text

    @property
    def reasoning_content(self) -> str | None:
        """The model's reasoning, or None when thinking was off."""
        return self.message.reasoning_content

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tools the model asked for; empty when it answered."""
        return self.message.tool_calls

    @property
    def truncated(self) -> bool:
        """True when the reply hit `max_tokens` (or the window) and is cut short."""
        return self.finish_reason == "length"

    @property
    def interrupted(self) -> bool:
        """True when the stream was cut short (closed or dropped): this is what arrived."""
        return self.finish_reason == "interrupted"

    def __str__(self) -> str:
        return self.content


@frozen
class Delta:
    """A piece of a streamed reply: `kind` is "reasoning", "content" or "tool_call"."""

    kind: Literal["reasoning", "content", "tool_call"]
    text: str
