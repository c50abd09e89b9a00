"""`Prompt`: one call's messages and what contextkit knows about them (counts, window facts).

A frozen value `build()` returns the messages of; `record()` compares its prediction with
what the provider reports. Fresh dicts on every read, so a caller cannot edit it.
"""

from __future__ import annotations

import uuid
from typing import Any

from attrs import field, frozen

from contextkit.formats.anthropic import to_anthropic
from contextkit.tokens.chat import Tools

__all__ = ["Prompt"]


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
    tools_digest: str | None = None
    """sha256 of the declared tools' canonical JSON (of `[]` when none are declared)."""
    call_key: str = field(factory=lambda: uuid.uuid4().hex, eq=False)
    """contextkit's own key for the one model call this prompt is for: recording its reply
    twice stores it once; a new `prepare()` is a new call (provider ids are not unique)."""
    prefix_break: str | None = None
    """Why this prompt does not start with the previous call's: `tools` (the tool set
    changed: DeepSeek renders tools into the system prompt, so every turn renders anew),
    `mode` (thinking or effort changed), `window` (compaction or a moved cut point); None
    when it extends it (or there was no previous call)."""

    def to_list(self) -> list[dict[str, Any]]:
        """Fresh dicts for `client.chat.completions.create(messages=...)`."""
        return [_copy(m) for m in self.messages]

    def to_anthropic(self) -> dict[str, Any]:
        """The same window as Anthropic Messages API input (see `contextkit.formats`)."""
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
