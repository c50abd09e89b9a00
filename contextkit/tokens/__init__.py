"""Exact token accounting: text, messages in a model's chat template, images.

`count_tokens` and `count_messages` predict what the provider bills; `render_prompt` is the
prompt text those counts are exact for. For a store, `message_tokens` (once per message) plus
`sequence_overhead` (per prompt, no tokenization) give the same number as `count_messages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contextkit.tokens.images import ImageLimits, image_part_tokens, image_tokens
from contextkit.tokens.template import (
    Calibration,
    ChatTemplate,
    DeepSeekV4Template,
    MessageShape,
    OpenAIChatTemplate,
    ReasoningReplay,
    Tokenizer,
    count_messages,
    kept_reasoning,
    message_shape,
    message_tokens,
    prompt_structure,
    render_prompt,
    sequence_overhead,
    tools_tokens,
)

if TYPE_CHECKING:
    from contextkit.models import ModelSpec

__all__ = [
    "Calibration",
    "ChatTemplate",
    "DeepSeekV4Template",
    "ImageLimits",
    "MessageShape",
    "OpenAIChatTemplate",
    "ReasoningReplay",
    "Tokenizer",
    "count_messages",
    "count_tokens",
    "image_part_tokens",
    "image_tokens",
    "kept_reasoning",
    "message_shape",
    "message_tokens",
    "prompt_structure",
    "render_prompt",
    "sequence_overhead",
    "tools_tokens",
]


def count_tokens(text: str, model: str | ModelSpec = "deepseek-v4-flash") -> int:
    """Tokens of plain text in the model's tokenizer (no chat template around it)."""
    from contextkit.errors import ValidationError
    from contextkit.models import ModelSpec, get_model

    if not isinstance(text, str):
        raise ValidationError(f"count_tokens takes a string, got {type(text).__name__}")
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    return spec.tokenizer.count(text)
