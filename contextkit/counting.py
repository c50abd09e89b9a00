"""Token counts for a model by name or `ModelSpec`: the registry-aware layer over `tokens`.

`contextkit.tokens` is pure (encoding, image formula, chat templates) and never imports the
registry; every function that resolves a model id lives here, above `contextkit.models`.
Contract: the numbers are exactly what the model's template and tokenizer give, e.g.
`count_messages(...) == len(encode(render_prompt(...)))` for DeepSeek V4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from contextkit.errors import ValidationError
from contextkit.models import ModelSpec, get_model
from contextkit.tokens.calibration import prompt_structure
from contextkit.tokens.chat import (
    MessageDict,
    MessageShape,
    ReasoningReplay,
    Tools,
    _as_message,
    kept_reasoning,
    reasoning_effort_level,
)
from contextkit.tokens.deepseek_v4 import generated_text

__all__ = [
    "ModelRef",
    "count_messages",
    "count_tokens",
    "generated_text",
    "kept_reasoning",
    "message_shape",
    "message_tokens",
    "prompt_structure",
    "render_prompt",
    "sequence_overhead",
    "tools_tokens",
]

ModelRef: TypeAlias = str | ModelSpec
"""A model id (or alias) for `get_model`, or the spec itself."""


def _spec(model: ModelRef) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else get_model(model)


def count_tokens(text: str, model: ModelRef = "deepseek-v4-flash") -> int:
    """Tokens of plain text in the model's tokenizer (no chat template around it)."""
    if not isinstance(text, str):
        raise ValidationError(f"count_tokens takes a string, got {type(text).__name__}")
    return _spec(model).tokenizer.count(text)


def render_prompt(
    messages: Sequence[MessageDict],
    *,
    tools: Tools | None = None,
    thinking: bool = True,
    reasoning_effort: str | None = None,
    model: ModelRef = "deepseek-v4-flash",
) -> str:
    """The exact prompt text the provider tokenizes, special-token strings included.

    `count_messages(...)` equals the number of tokens of this string. For DeepSeek V4 it is
    byte for byte what DeepSeek's own encoder renders (the model's template generation).
    Images appear as `<｜image｜>` once per image token.
    """
    spec = _spec(model)
    return spec.template.render(
        [_as_message(m) for m in messages],
        tools=tools,
        thinking=thinking,
        reasoning_effort=reasoning_effort_level(reasoning_effort),
        image_limits=spec.image_limits,
    )


def message_tokens(
    message: MessageDict, model: ModelRef = "deepseek-v4-flash", *, thinking: bool | None = None
) -> int:
    """Tokens of one message in its replay form, rendered on its own.

    Computed once when the message is written and stored: its size for window weights and
    stats. A prompt's exact count is `count_messages` (a message renders differently beside
    some neighbours: merged user blocks, glued system text, dropped reasoning).
    """
    spec = _spec(model)
    thinking = spec.thinking_default if thinking is None else thinking
    msg = _as_message(message)
    return spec.template.message_tokens(
        msg,
        spec.tokenizer,
        thinking=thinking,
        keep_reasoning=_keeps(msg, spec, thinking),
        image_limits=spec.image_limits,
    )


def message_shape(
    message: MessageDict, model: ModelRef = "deepseek-v4-flash", *, thinking: bool | None = None
) -> MessageShape:
    """What `sequence_overhead` needs of one message; store it beside `message_tokens`."""
    spec = _spec(model)
    thinking = spec.thinking_default if thinking is None else thinking
    msg = _as_message(message)
    return spec.template.message_shape(
        msg, thinking=thinking, keep_reasoning=_keeps(msg, spec, thinking)
    )


def _keeps(message: MessageDict, spec: ModelSpec, thinking: bool) -> bool:
    return (
        thinking
        and spec.reasoning_replay is not ReasoningReplay.NEVER
        and message.get("reasoning_content") is not None
    )


def tools_tokens(tools: Tools | None, model: ModelRef = "deepseek-v4-flash") -> int:
    """Tokens the `tools` request parameter adds to the prompt (0 for none)."""
    spec = _spec(model)
    return spec.template.tools_tokens(tools, spec.tokenizer) if tools else 0


def sequence_overhead(
    shapes: Sequence[MessageShape],
    model: ModelRef = "deepseek-v4-flash",
    *,
    tools_tokens: int = 0,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
) -> int:
    """An estimate of what the template adds around the messages (BOS, effort preamble,
    tools block, generation prompt), for window weights; budgets use `count_messages`."""
    spec = _spec(model)
    return spec.template.sequence_overhead(
        shapes,
        spec.tokenizer,
        tools_tokens=tools_tokens,
        thinking=spec.thinking_default if thinking is None else thinking,
        reasoning_effort=reasoning_effort_level(reasoning_effort),
    )


def count_messages(
    messages: Sequence[MessageDict],
    model: ModelRef = "deepseek-v4-flash",
    *,
    tools: Tools | None = None,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
) -> int:
    """The `usage.prompt_tokens` a request with these messages will report.

    Exactly what the model's chat template renders from the request, tokenized: reasoning
    counts where the provider renders it (for DeepSeek V4: on every assistant message when
    `tools` are declared, else only after the last user message). `thinking=None` means the
    model's default.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ValidationError(f"messages must be a list, got {type(messages).__name__}")
    spec = _spec(model)
    return spec.template.count(
        [_as_message(m) for m in messages],
        spec.tokenizer,
        tools=tools,
        thinking=spec.thinking_default if thinking is None else thinking,
        reasoning_effort=reasoning_effort_level(reasoning_effort),
        image_limits=spec.image_limits,
    )
