"""Exact token accounting, pure: the DeepSeek V4 tokenizer, chat templates, image tokens.

`render_prompt` is the prompt text the provider tokenizes and `count_messages` its count
(both in `contextkit.counting`, which resolves model ids; re-exported here for one release).
`message_tokens` and `sequence_overhead` are per-message sizes and an overhead estimate for
window weights, not parts of an exact sum.
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
