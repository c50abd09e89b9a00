"""Exact token accounting: text, messages in a model's chat template, images.

`count_tokens` and `count_messages` predict what the provider bills; `render_prompt` is the
prompt text those counts are exact for. For a store, `message_tokens` (once per message) plus
`sequence_overhead` (per prompt, no tokenization) give the same number as `count_messages`.

This package is pure (encoding, the image formula, one module per chat template) and never
imports the model registry. The functions that take a model id or `ModelSpec` live in
`contextkit.counting`; they are offered here too, imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contextkit.tokens._compat import from_counting as _from_counting
from contextkit.tokens.calibration import Calibration, prompt_structure
from contextkit.tokens.chat import (
    ChatTemplate,
    MessageShape,
    ReasoningReplay,
    Tokenizer,
    kept_reasoning,
)
from contextkit.tokens.deepseek_v4 import DeepSeekV4Template
from contextkit.tokens.image_tokens import ImageLimits, image_part_tokens, image_tokens
from contextkit.tokens.openai_chat import OpenAIChatTemplate

if TYPE_CHECKING:
    from contextkit.counting import (
        count_messages,
        count_tokens,
        message_shape,
        message_tokens,
        render_prompt,
        sequence_overhead,
        tools_tokens,
    )

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


def __getattr__(name: str) -> object:
    return _from_counting(globals(), name)
