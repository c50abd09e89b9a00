"""The OpenAI chat estimate: a `ChatTemplate` that counts by formula, not by rendering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from contextkit.tokens.chat import (
    MessageDict,
    MessageShape,
    Tokenizer,
    Tools,
    _as_message,
    _content,
    _functions,
    _image_cost,
    _text,
    _to_json,
)
from contextkit.tokens.image_tokens import ImageLimits

__all__ = ["OpenAIChatTemplate"]


def _never(part: Mapping[str, Any]) -> str:
    raise AssertionError("image parts are counted by the image formula, never as text")


@frozen
class OpenAIChatTemplate:
    """The well-known estimate for OpenAI chat models, as an example of a pluggable template.

    Each message costs `tokens_per_message` plus its role and text (+ `tokens_per_name` and
    the name when named; tool calls count their name and arguments), and the reply is primed
    with `reply_priming` tokens. OpenAI does not publish how `tools` are billed; they count as
    their JSON text. There is no exact prompt text, so `render` is not available.
    """

    name: str = "openai-chat"
    tokens_per_message: int = 3
    tokens_per_name: int = 1
    reply_priming: int = 3

    def render(
        self,
        messages: Sequence[MessageDict],
        *,
        tools: Tools | None,
        thinking: bool,
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> str:
        raise NotImplementedError(f"the {self.name} template counts by formula; it has no text")

    def count(
        self,
        messages: Sequence[MessageDict],
        tokenizer: Tokenizer,
        *,
        tools: Tools | None,
        thinking: bool,
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> int:
        total = sum(
            self.message_tokens(
                m, tokenizer, thinking=thinking, keep_reasoning=False, image_limits=image_limits
            )
            for m in messages
        )
        return total + self.reply_priming + (self.tools_tokens(tools, tokenizer) if tools else 0)

    def message_tokens(
        self,
        message: MessageDict,
        tokenizer: Tokenizer,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None,
    ) -> int:
        message = _as_message(message)
        total = self.tokens_per_message + tokenizer.count(message["role"])
        content = message.get("content")
        if content is None or isinstance(content, str):
            total += tokenizer.count(content or "")
        else:
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "image_url":
                    total += _image_cost(part, image_limits)
                else:  # a text part (or a bad one, which `_content` reports)
                    total += tokenizer.count(_content([part], _never))
        name = message.get("name")
        if name is not None:
            total += tokenizer.count(_text(name, "name")) + self.tokens_per_name
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments")
            text = arguments if isinstance(arguments, str) else _to_json(arguments)
            total += tokenizer.count(_text(function.get("name"), "tool name"))
            total += tokenizer.count(text)
        if message.get("tool_call_id"):
            total += tokenizer.count(_text(message["tool_call_id"], "tool_call_id"))
        return total

    def message_shape(
        self, message: MessageDict, *, thinking: bool, keep_reasoning: bool
    ) -> MessageShape:
        return MessageShape(_as_message(message)["role"])

    def tools_tokens(self, tools: Tools, tokenizer: Tokenizer) -> int:
        if not tools:
            return 0
        _functions(tools)
        return tokenizer.count(_to_json(list(tools)))

    def sequence_overhead(
        self,
        shapes: Sequence[MessageShape],
        tokenizer: Tokenizer,
        *,
        tools_tokens: int,
        thinking: bool,
        reasoning_effort: str | None,
    ) -> int:
        return self.reply_priming + tools_tokens
