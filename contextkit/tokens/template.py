"""Kept for one release; import from `contextkit.tokens` / `contextkit.counting`.

This module was split: the shared template protocols and helpers are in
`contextkit.tokens.chat`, the templates in `contextkit.tokens.deepseek_v4` and
`contextkit.tokens.openai_chat`, `Calibration` in `contextkit.tokens.calibration`, and the
functions that resolve a model in `contextkit.counting` (imported here on first use, so
importing this module does not import the model registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contextkit.tokens import chat as _chat
from contextkit.tokens import dsml as _dsml
from contextkit.tokens._compat import from_counting as _from_counting
from contextkit.tokens.calibration import Calibration, prompt_structure
from contextkit.tokens.chat import (
    ChatTemplate,
    MessageShape,
    ReasoningReplay,
    Tokenizer,
    Tools,
    kept_reasoning,
    reasoning_effort_level,
)
from contextkit.tokens.deepseek_v4 import (
    ASSISTANT,
    BOS,
    END_THINK,
    EOS,
    IMAGE,
    REASONING_EFFORT_MAX,
    THINK,
    USER,
    DeepSeekV4Template,
    generated_text,
)
from contextkit.tokens.openai_chat import OpenAIChatTemplate

if TYPE_CHECKING:
    from contextkit.counting import (
        count_messages,
        message_shape,
        message_tokens,
        render_prompt,
        sequence_overhead,
        tools_tokens,
    )

__all__ = [
    "ASSISTANT",
    "BOS",
    "END_THINK",
    "EOS",
    "IMAGE",
    "REASONING_EFFORT_MAX",
    "THINK",
    "USER",
    "Calibration",
    "ChatTemplate",
    "DeepSeekV4Template",
    "MessageShape",
    "OpenAIChatTemplate",
    "ReasoningReplay",
    "Tokenizer",
    "Tools",
    "count_messages",
    "generated_text",
    "kept_reasoning",
    "message_shape",
    "message_tokens",
    "prompt_structure",
    "reasoning_effort_level",
    "render_prompt",
    "sequence_overhead",
    "tools_tokens",
]


def __getattr__(name: str) -> object:
    if name in _MOVED:
        return getattr(_dsml, name)
    if name == "ROLES":
        return _chat.ROLES
    if name == "Message":  # the old alias of one OpenAI-format message
        return _chat.MessageDict
    return _from_counting(globals(), name)


_MOVED = frozenset({"DSML", "TOOL_RESULT_OPEN", "TOOL_RESULT_CLOSE", "TOOL_RESULT_JOIN"})
"""Public names of the old module that were not in its `__all__`."""
