"""What every chat template shares: the protocols, message shapes and message checks.

A `ChatTemplate` turns OpenAI-format messages into billed prompt tokens with a `Tokenizer`;
this module holds the pieces that do not depend on any one model family (the DeepSeek V4
template is `contextkit.tokens.deepseek_v4`, the OpenAI estimate `contextkit.tokens.openai_chat`).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from attrs import field, frozen

from contextkit.errors import ValidationError
from contextkit.tokens.image_tokens import ImageLimits, image_part_tokens

__all__ = [
    "ChatTemplate",
    "MessageDict",
    "MessageShape",
    "ReasoningReplay",
    "Tokenizer",
    "Tools",
    "kept_reasoning",
    "reasoning_effort_level",
]

MessageDict: TypeAlias = Mapping[str, Any]
"""One message in OpenAI format (`contextkit.types.Message.to_openai()` gives one)."""
Tools: TypeAlias = Sequence[Mapping[str, Any]]

ROLES = ("system", "developer", "user", "assistant", "tool")


class ReasoningReplay(str, enum.Enum):
    """Which assistant messages carry `reasoning_content` back into later prompts."""

    TOOL_TURNS = "tool_turns"
    """Only messages of turns that made tool calls (DeepSeek V4 thinking mode)."""
    NEVER = "never"
    """Nowhere (the retired deepseek-reasoner rejected any replayed reasoning)."""
    ALWAYS = "always"
    """Every assistant message that has it."""


@runtime_checkable
class Tokenizer(Protocol):
    """Counts the tokens of a text; a template's special-token strings must count as one."""

    def count(self, text: str) -> int: ...


@frozen
class MessageShape:
    """What `sequence_overhead` needs to know of one message: its role and how it starts.

    `lead` is empty unless the rendered message starts with whitespace; then it holds that
    whitespace and a few characters after it (a plain string, no tokenization needed).
    """

    role: str = field()
    lead: str = ""

    @role.validator
    def _check_role(self, _: object, value: object) -> None:
        if value not in ROLES:
            raise ValidationError(f"role must be one of {ROLES}, got {value!r:.40}")


class ChatTemplate(Protocol):
    """How a model family turns messages into billed prompt tokens."""

    @property
    def name(self) -> str: ...

    def render(
        self,
        messages: Sequence[MessageDict],
        *,
        tools: Tools | None,
        thinking: bool,
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> str:
        """The exact prompt text the provider renders from this request."""
        ...

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
        """The request's prompt tokens: what budgets, cost and calibration rest on."""
        ...

    def message_tokens(
        self,
        message: MessageDict,
        tokenizer: Tokenizer,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None,
    ) -> int: ...

    def message_shape(
        self, message: MessageDict, *, thinking: bool, keep_reasoning: bool
    ) -> MessageShape: ...

    def tools_tokens(self, tools: Tools, tokenizer: Tokenizer) -> int: ...

    def sequence_overhead(
        self,
        shapes: Sequence[MessageShape],
        tokenizer: Tokenizer,
        *,
        tools_tokens: int,
        thinking: bool,
        reasoning_effort: str | None,
    ) -> int: ...


def _as_message(message: object) -> MessageDict:
    if isinstance(message, Mapping):
        role = message.get("role")
        if role not in ROLES:
            raise ValidationError(f"message role must be one of {ROLES}, got {role!r:.40}")
        return message
    to_openai = getattr(message, "to_openai", None)
    if callable(to_openai):
        return _as_message(to_openai())
    raise ValidationError(
        f"a message must be an OpenAI-format dict or a contextkit Message, "
        f"got {type(message).__name__}"
    )


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _image_cost(part: Mapping[str, Any], image_limits: ImageLimits | None) -> int:
    """Prompt tokens of an image part; `image_limits=None` is a model without images."""
    if image_limits is None:
        raise ValidationError("this model does not accept images")
    return image_part_tokens(part, image_limits)


def _content(content: object, image: Callable[[Mapping[str, Any]], str]) -> str:
    """Message content as text: parts joined by a blank line, an image part as `image(part)`."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, Sequence):
        raise ValidationError(
            f"content must be a string or a list of parts, got {type(content).__name__}"
        )
    pieces = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            pieces.append(_text(part.get("text"), f"content[{i}].text"))
        elif kind == "image_url":
            pieces.append(image(part))
        else:
            raise ValidationError(f"content[{i}] has unsupported type {kind!r:.40}")
    return "\n\n".join(pieces)


def _to_json(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("not valid Unicode: a string holds a lone surrogate") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"not JSON-serializable: {exc}") from None
    return text


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _functions(tools: Tools) -> list[Mapping[str, Any]]:
    """The function schemas of `tools`, checked as the API checks them (a 400 costs a call)."""
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise ValidationError(f"tools must be a list of tool schemas, got {type(tools).__name__}")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type") != "function":
            raise ValidationError(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise ValidationError(
                f"tools[{i}].function.name must be 1-64 letters, digits, '_' or '-', "
                f"got {name!r:.40}"
            )
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationError(f"tools[{i}].function.description must be a string")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ValidationError(f"tools[{i}].function.parameters must be a JSON Schema object")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ValidationError(f"tools[{i}].function.strict must be a bool")
        out.append(function)
    return out


_EFFORTS = {
    "minimal": "low",
    "low": "low",
    "medium": "high",
    "high": "high",
    "xhigh": "high",
    "max": "max",
    "ultra": "max",
}


def reasoning_effort_level(effort: str | None) -> str | None:
    """The effort the provider applies to a requested one (`ultra` -> max, `medium` -> high)."""
    if effort is None:
        return None
    try:
        return _EFFORTS[effort]
    except (KeyError, TypeError):
        raise ValidationError(
            f"reasoning_effort must be one of {sorted(_EFFORTS)}, got {effort!r:.40}"
        ) from None


def kept_reasoning(
    messages: Sequence[MessageDict], *, thinking: bool, policy: ReasoningReplay
) -> list[bool]:
    """For each message, whether the provider shows its `reasoning_content` in the prompt.

    TOOL_TURNS keeps it on the assistant messages of a turn (a user message up to the next)
    in which some assistant message made tool calls; nothing is kept outside thinking mode.
    """
    msgs = [_as_message(m) for m in messages]
    has = [m["role"] == "assistant" and m.get("reasoning_content") is not None for m in msgs]
    if not thinking or policy is ReasoningReplay.NEVER:
        return [False] * len(msgs)
    if policy is ReasoningReplay.ALWAYS:
        return has
    kept = [False] * len(msgs)
    start = 0
    for end in range(len(msgs) + 1):
        if end < len(msgs) and (msgs[end]["role"] != "user" or end == start):
            continue
        turn = range(start, end)
        if any(msgs[j]["role"] == "assistant" and msgs[j].get("tool_calls") for j in turn):
            for j in turn:
                kept[j] = has[j]
        start = end
    return kept
