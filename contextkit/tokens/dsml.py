"""DeepSeek V4's wire format: its special tokens, tool calls in DSML, a reply's text.

Shared by the template (how a request renders) and the local test server and cache model
(what a reply adds to the prompt the provider caches).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from contextkit.errors import ValidationError
from contextkit.tokens.chat import _text, _to_json

__all__ = [
    "ASSISTANT",
    "BOS",
    "DSML",
    "END_THINK",
    "EOS",
    "IMAGE",
    "REASONING_EFFORT_MAX",
    "THINK",
    "TOOL_RESULT_CLOSE",
    "TOOL_RESULT_JOIN",
    "TOOL_RESULT_OPEN",
    "USER",
    "generated_text",
]

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"
DSML = "｜DSML｜"
IMAGE = "<｜image｜>"
TOOL_RESULT_OPEN = "<tool_result>"
TOOL_RESULT_CLOSE = "</tool_result>"
TOOL_RESULT_JOIN = "\n\n"

REASONING_EFFORT_MAX = (
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate "
    "step, considered alternative, and rejected hypothesis to ensure absolutely no assumption "
    "is left unchecked.\n\n"
)
"""The prompt prefix DeepSeek V4 adds in thinking mode when `reasoning_effort="max"`."""


def _dsml_arguments(arguments: object) -> str:
    parsed: object = arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
    if not isinstance(parsed, Mapping):
        parsed = {"arguments": arguments if isinstance(arguments, str) else _to_json(arguments)}
    lines = []
    for key, value in parsed.items():
        is_str = isinstance(value, str)
        rendered = value if is_str else _to_json(value)
        flag = "true" if is_str else "false"
        opening = f'<{DSML}parameter name="{key}" string="{flag}">'
        lines.append(f"{opening}{rendered}</{DSML}parameter>")
    return "\n".join(lines)


def _dsml_tool_calls(tool_calls: object) -> str:
    if not tool_calls:
        return ""
    if not isinstance(tool_calls, Sequence):
        raise ValidationError(f"tool_calls must be a list, got {type(tool_calls).__name__}")
    invokes = []
    for i, call in enumerate(tool_calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise ValidationError(f"tool_calls[{i}] has no 'function' object")
        name = _text(function.get("name"), f"tool_calls[{i}].function.name")
        arguments = _dsml_arguments(function.get("arguments"))
        invokes.append(f'<{DSML}invoke name="{name}">\n{arguments}\n</{DSML}invoke>')
    joined = "\n".join(invokes)
    return f"\n\n<{DSML}tool_calls>\n{joined}\n</{DSML}tool_calls>"


def generated_text(
    reasoning: str | None,
    content: str,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    *,
    reasoning_ended: bool = True,
    finished: bool = True,
) -> str:
    """The text a DeepSeek V4 model generates for a reply, as its template would replay it.

    Reasoning (closed by `</think>` once it ended), the content, the DSML tool-call block and,
    for a finished reply, EOS: what the provider's cache persists at the end of the output.
    """
    out = ""
    if reasoning is not None:
        out = reasoning + (END_THINK if reasoning_ended else "")
    out += content + _dsml_tool_calls(list(tool_calls) or None)
    return out + (EOS if finished else "")
