"""Value types: what a message is, validated once at the boundary.

`Message.parse` turns an OpenAI-format dict or an openai SDK message object into a frozen,
validated `Message`; everything downstream (store, window, templates) can then trust it.
`Message.to_openai` gives back a dict with a fixed key order, so serialization is
deterministic (invariant 3).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeAlias

from attrs import field, frozen

from contextkit._sdk import as_mapping
from contextkit.errors import ValidationError

__all__ = [
    "ContentPart",
    "FunctionCall",
    "ImagePart",
    "Message",
    "Role",
    "TextPart",
    "ThreadInfo",
    "ToolCall",
]


class Role(str, enum.Enum):
    """Roles an OpenAI-compatible chat API accepts in `messages`."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"

    def __str__(self) -> str:
        return self.value


Detail: TypeAlias = Literal["auto", "low", "high"]
_DETAILS = ("auto", "low", "high")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ID = 255


def check_text(value: str, what: str) -> str:
    """Reject strings that no database stores faithfully: NUL bytes and lone surrogates."""
    if "\x00" in value:
        raise ValidationError(f"{what} contains a NUL character (\\x00); remove it before storing")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{what} contains a lone surrogate and is not valid Unicode; "
            "decode your input with errors='replace' first"
        ) from None
    return value


def check_id(value: object, what: str) -> str:
    """A non-empty identifier of at most 255 characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r:.80}")
    if len(value) > _MAX_ID:
        raise ValidationError(f"{what} is {len(value)} characters long; the limit is {_MAX_ID}")
    return check_text(value, what)


def _text_validator(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{attribute.name} must be a string, got {type(value).__name__}")
    check_text(value, attribute.name)


def _role(value: object) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(
            f"role must be one of {[r.value for r in Role]}, got {value!r:.80}"
        ) from None


@frozen
class TextPart:
    """A `{"type": "text"}` content part."""

    text: str = field(validator=_text_validator)

    def to_openai(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@frozen
class ImagePart:
    """An `{"type": "image_url"}` content part: an https URL or a `data:image/...` URL."""

    url: str = field(validator=_text_validator)
    detail: Detail | None = field(default=None)

    @detail.validator
    def _check_detail(self, _: object, value: object) -> None:
        if value is not None and value not in _DETAILS:
            raise ValidationError(f"image_url.detail must be one of {_DETAILS}, got {value!r:.40}")

    @url.validator
    def _check_url(self, _: object, value: str) -> None:
        if not (value.startswith(("https://", "http://")) or value.startswith("data:image/")):
            raise ValidationError(
                f"image_url.url must be an http(s) URL or a data:image/... URL, got {value[:40]!r}"
            )

    def to_openai(self) -> dict[str, Any]:
        image: dict[str, Any] = {"url": self.url}
        if self.detail is not None:
            image["detail"] = self.detail
        return {"type": "image_url", "image_url": image}


ContentPart: TypeAlias = TextPart | ImagePart


@frozen
class FunctionCall:
    """The function half of a tool call; `arguments` is the model's JSON text, kept verbatim."""

    name: str = field()
    arguments: str = field(validator=_text_validator)

    @name.validator
    def _check_name(self, _: object, value: object) -> None:
        if not isinstance(value, str) or not _NAME_RE.match(value):
            raise ValidationError(
                f"tool call function name {str(value)[:80]!r} is invalid: "
                "use 1-64 of A-Z a-z 0-9 _ -"
            )


@frozen
class ToolCall:
    """One entry of an assistant message's `tool_calls`."""

    id: str = field()
    function: FunctionCall = field()
    type: Literal["function"] = "function"

    @id.validator
    def _check_id(self, _: object, value: object) -> None:
        check_id(value, "tool call id")

    @function.validator
    def _check_function(self, _: object, value: object) -> None:
        if not isinstance(value, FunctionCall):
            raise ValidationError(f"tool call function must be a FunctionCall, got {value!r:.80}")

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.function.name, "arguments": self.function.arguments},
        }


def _opt_text(_: object, attribute: Any, value: str | None) -> None:
    if value is not None:
        if not isinstance(value, str):
            raise ValidationError(
                f"{attribute.name} must be a string or None, got {type(value).__name__}"
            )
        check_text(value, attribute.name)


@frozen(kw_only=True)
class Message:
    """A chat message, validated; stored fields (`seq`, …) are set once it is persisted."""

    role: Role = field(converter=_role)
    content: str | tuple[ContentPart, ...] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning_content: str | None = field(default=None, validator=_opt_text)
    seq: int | None = None
    pinned: bool = False
    token_count: int | None = None
    created_at: datetime | None = None

    def __attrs_post_init__(self) -> None:
        _check_message(self)

    @classmethod
    def parse(cls, message: object) -> Message:
        """Build a `Message` from an OpenAI-format dict, an SDK message object or a `Message`."""
        if isinstance(message, Message):
            return message
        return cls(**_fields_from_openai(_as_mapping(message)))

    def to_openai(self, *, reasoning: bool = True) -> dict[str, Any]:
        """The dict to send to a chat API, keys in a fixed order; `reasoning=False` strips it."""
        out: dict[str, Any] = {"role": self.role.value}
        if isinstance(self.content, tuple):
            out["content"] = [part.to_openai() for part in self.content]
        else:
            out["content"] = self.content
        if self.name is not None:
            out["name"] = self.name
        if reasoning and self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out

    @property
    def text(self) -> str:
        """The message's text: the string content, or its text parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))


def _check_message(m: Message) -> None:
    role = m.role
    if m.name is not None and (not isinstance(m.name, str) or not _NAME_RE.match(m.name)):
        raise ValidationError(f"name {m.name!r:.80} is invalid: use 1-64 of A-Z a-z 0-9 _ -")
    if m.name is not None and role is Role.TOOL:
        raise ValidationError("a tool message has no name; identify it by tool_call_id")
    if m.tool_calls and role is not Role.ASSISTANT:
        raise ValidationError(
            f"only assistant messages carry tool_calls, not {role.value} messages"
        )
    if m.reasoning_content is not None and role is not Role.ASSISTANT:
        raise ValidationError(f"only assistant messages carry reasoning_content, not {role.value}")
    if role is Role.TOOL:
        check_id(m.tool_call_id, "tool message tool_call_id")
    elif m.tool_call_id is not None:
        raise ValidationError(f"tool_call_id belongs on tool messages, not {role.value} messages")
    ids = [c.id for c in m.tool_calls]
    if len(set(ids)) != len(ids):
        raise ValidationError(
            f"tool_calls repeat an id: {sorted(i for i in ids if ids.count(i) > 1)}"
        )
    content = m.content
    if content is None:
        if role is Role.ASSISTANT and not m.tool_calls:
            raise ValidationError("an assistant message needs content or tool_calls")
        if role is not Role.ASSISTANT:
            raise ValidationError(
                f"a {role.value} message needs content (a string or a list of parts)"
            )
    elif isinstance(content, str):
        check_text(content, "content")
    elif isinstance(content, tuple):
        if not content:
            raise ValidationError("content is an empty list; give at least one part or a string")
        for part in content:
            if isinstance(part, ImagePart) and role is not Role.USER:
                raise ValidationError(
                    f"image parts are only allowed in user messages, not {role.value}"
                )
            if not isinstance(part, (TextPart, ImagePart)):
                raise ValidationError(f"unsupported content part {part!r:.80}")
    else:
        raise ValidationError(
            f"content must be a string, a list of parts or None, got {type(content).__name__}"
        )
    if m.seq is not None and (not isinstance(m.seq, int) or m.seq < 1):
        raise ValidationError(f"seq must be a positive integer, got {m.seq!r}")


_OUTPUT_ONLY = ("refusal", "annotations", "audio", "function_call")
_KNOWN_KEYS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", *_OUTPUT_ONLY}
)


def _as_mapping(message: object) -> Mapping[str, Any]:
    try:
        return as_mapping(message, "message")
    except ValidationError:
        raise ValidationError(
            f"a message must be an OpenAI-format dict or an openai SDK message object, "
            f"got {type(message).__name__}"
        ) from None


def _fields_from_openai(data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(str(k) for k in data if k not in _KNOWN_KEYS)
    if unknown:
        raise ValidationError(
            f"unknown message field(s) {unknown}; "
            f"expected some of {sorted(_KNOWN_KEYS - set(_OUTPUT_ONLY))}"
        )
    role = _role(data.get("role"))
    if data.get("function_call") is not None:
        raise ValidationError("the legacy function_call field is not supported; use tool_calls")
    if data.get("audio") is not None:
        raise ValidationError("audio messages are not supported")
    content = _parse_content(data.get("content"))
    refusal = data.get("refusal")
    if content is None and isinstance(refusal, str):
        content = refusal
    fields: dict[str, Any] = {"role": role, "content": content}
    for key in ("name", "tool_call_id", "reasoning_content"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{key} must be a string, got {type(value).__name__}")
        fields[key] = value
    fields["tool_calls"] = _parse_tool_calls(data.get("tool_calls"))
    return fields


def _parse_content(content: object) -> str | tuple[ContentPart, ...] | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, (bytes, bytearray)):
        raise ValidationError("content must be text, not bytes; decode it first")
    if not isinstance(content, Sequence):
        raise ValidationError(
            f"content must be a string or a list of parts, got {type(content).__name__}"
        )
    return tuple(_parse_part(p, i) for i, p in enumerate(content))


def _parse_part(part: object, index: int) -> ContentPart:
    part = _as_mapping(part) if not isinstance(part, Mapping) else part
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise ValidationError(f"content[{index}] is a text part without a string 'text'")
        return TextPart(text)
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):
            image = {"url": image}
        if not isinstance(image, Mapping) or not isinstance(image.get("url"), str):
            raise ValidationError(f"content[{index}] is an image_url part without image_url.url")
        detail = image.get("detail")
        if detail is not None and detail not in _DETAILS:
            raise ValidationError(
                f"content[{index}].image_url.detail must be one of {_DETAILS}, got {detail!r}"
            )
        return ImagePart(image["url"], detail)
    raise ValidationError(
        f"content[{index}] has unsupported type {kind!r:.40}; use 'text' or 'image_url'"
    )


def _parse_tool_calls(calls: object) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if isinstance(calls, (str, bytes, Mapping)) or not isinstance(calls, Sequence):
        raise ValidationError(f"tool_calls must be a list, got {type(calls).__name__}")
    out = []
    for i, raw in enumerate(calls):
        call = _as_mapping(raw)
        kind = call.get("type", "function")
        if kind != "function":
            raise ValidationError(f"tool_calls[{i}].type must be 'function', got {kind!r:.40}")
        fn = call.get("function")
        if fn is not None and not isinstance(fn, Mapping):
            fn = _as_mapping(fn)
        if not isinstance(fn, Mapping):
            raise ValidationError(f"tool_calls[{i}] has no 'function' object")
        name, arguments = fn.get("name"), fn.get("arguments")
        if not isinstance(name, str):
            raise ValidationError(f"tool_calls[{i}].function.name must be a string")
        if not isinstance(arguments, str):
            raise ValidationError(
                f"tool_calls[{i}].function.arguments must be a JSON string "
                f"(use json.dumps), got {type(arguments).__name__}"
            )
        call_id: Any = call.get("id")  # validated by ToolCall
        out.append(ToolCall(id=call_id, function=FunctionCall(name, arguments)))
    return tuple(out)


@frozen(kw_only=True)
class ThreadInfo:
    """A snapshot of a thread's settings and size, as stored."""

    id: str
    owner: str
    model: str
    system: str | None
    max_context_tokens: int
    metadata: Mapping[str, Any]
    message_count: int
    total_tokens: int
    created_at: datetime
    updated_at: datetime

    def settings(self) -> dict[str, Any]:
        """The thread's identity and settings as plain JSON values (for export and display)."""
        return {
            "id": self.id,
            "owner": self.owner,
            "model": self.model,
            "system": self.system,
            "max_context_tokens": self.max_context_tokens,
            "metadata": dict(self.metadata),
        }


def canonical_json(value: object) -> str:
    """JSON with fixed separators and no ASCII escaping: the same value, the same bytes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
