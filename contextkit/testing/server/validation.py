"""Request validation: a chat body is accepted or refused exactly as DeepSeek's API does.

`_prepare` turns a parsed body into a `_Request` (with its tokenized prompt) or raises
`_ApiError`, the HTTP status and error body the real API would answer with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from attrs import frozen

from contextkit.counting import render_prompt
from contextkit.errors import ContextKitError, ValidationError
from contextkit.models import ModelSpec, get_model
from contextkit.tokens.chat import reasoning_effort_level
from contextkit.tokens.encoding import encode

__all__ = ["MODELS", "REASONING_REQUIRED", "RETIRED_MODELS"]

MODELS = ("deepseek-v4-flash", "deepseek-v4-pro")
"""The model ids the server accepts and lists."""

RETIRED_MODELS = ("deepseek-chat", "deepseek-reasoner")
"""Legacy ids the real API no longer accepts (retired 2026-07-24 15:59 UTC)."""

REASONING_REQUIRED = 'The "reasoning_content" in the thinking mode must be passed back to the API.'
"""DeepSeek's 400 message for a tool-call turn replayed without its reasoning."""

_ROLES = ("system", "developer", "user", "assistant", "tool")


class _ApiError(Exception):
    """A request the API refuses: an HTTP status and DeepSeek's JSON error body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": None,
                "code": "invalid_request_error" if self.status in (400, 422) else self.kind,
            }
        }


def _unprocessable(detail: str) -> _ApiError:
    return _ApiError(422, f"Failed to deserialize the JSON body into the target type: {detail}")


@frozen
class _Request:
    """A validated chat request, ready to be answered."""

    model: str
    spec: ModelSpec
    messages: tuple[Mapping[str, Any], ...]
    thinking: bool
    max_tokens: int | None
    stream: bool
    include_usage: bool
    prompt_ids: tuple[int, ...]


def _check_tool_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    """Tool results must answer the assistant message right before them, every call of it."""
    calls: set[str] = set()
    pending: set[str] = set()
    open_group = False
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not open_group or call_id not in calls:
                raise _ApiError(
                    400,
                    f"Messages with role 'tool' must be a response to a preceding message with "
                    f"'tool_calls' (messages[{i}], tool_call_id {call_id!r:.60}).",
                )
            pending.discard(call_id)
            continue
        if pending:
            missing = ", ".join(sorted(pending))
            raise _ApiError(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. (insufficient tool messages following "
                f"tool_calls message; missing: {missing})",
            )
        tool_calls = message.get("tool_calls") if role == "assistant" else None
        open_group = bool(tool_calls)
        if tool_calls:
            if not isinstance(tool_calls, Sequence):
                raise _unprocessable(f"messages[{i}].tool_calls: expected a sequence")
            ids = [c.get("id") if isinstance(c, Mapping) else None for c in tool_calls]
            if not all(isinstance(x, str) and x for x in ids):
                raise _unprocessable(f"messages[{i}].tool_calls: missing field `id`")
            calls = {cast(str, x) for x in ids}
            pending = set(calls)
    if pending:
        raise _ApiError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            f"responding to each 'tool_call_id'. (missing: {', '.join(sorted(pending))})",
        )


def _check_reasoning(messages: Sequence[Mapping[str, Any]]) -> None:
    """Thinking mode: every assistant message of a turn with tool calls has its reasoning."""
    start = 0
    for end in range(len(messages) + 1):
        if end < len(messages) and (messages[end]["role"] != "user" or end == start):
            continue
        turn = [m for m in messages[start:end] if m["role"] == "assistant"]
        if any(m.get("tool_calls") for m in turn) and any(
            m.get("reasoning_content") is None for m in turn
        ):
            raise _ApiError(400, REASONING_REQUIRED)
        start = end


def _bool_field(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value: object = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _unprocessable(f"{name}: invalid type: {type(value).__name__}, expected a boolean")
    return value


def _model(body: Mapping[str, Any]) -> tuple[str, ModelSpec]:
    model = body.get("model")
    if model is None:
        raise _unprocessable("missing field `model`")
    if not isinstance(model, str):
        raise _unprocessable("model: invalid type, expected a string")
    if model in RETIRED_MODELS:
        raise _ApiError(
            400,
            f"Model Not Exist: the model {model!r} does not exist (it was retired on "
            "2026-07-24 15:59 UTC); use 'deepseek-v4-flash' or 'deepseek-v4-pro' and set "
            "thinking with extra_body={'thinking': {'type': 'enabled' | 'disabled'}}.",
        )
    if model not in MODELS:
        raise _ApiError(
            400, f"Model Not Exist: the model {model!r:.80} does not exist; use one of {MODELS}."
        )
    return model, get_model(model)


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise _unprocessable("missing field `messages`")
    if not isinstance(messages, list):
        raise _unprocessable("messages: invalid type, expected a sequence")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _unprocessable(f"messages[{i}]: invalid type, expected an object")
        role = message.get("role")
        if role not in _ROLES:
            raise _unprocessable(
                f"messages[{i}].role: unknown variant {role!r:.40}, expected one of {_ROLES}"
            )
    if not messages:
        raise _ApiError(400, "messages must not be empty.")
    return messages


def _thinking(body: Mapping[str, Any], spec: ModelSpec) -> bool:
    thinking = body.get("thinking")
    if thinking is None:
        return spec.thinking_default
    kind: object = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind not in ("enabled", "disabled"):
        raise _unprocessable(
            f"thinking.type: unknown variant {kind!r:.40}, expected `enabled` or `disabled`"
        )
    return kind == "enabled"


def _max_tokens(body: Mapping[str, Any], spec: ModelSpec) -> int | None:
    value = body.get("max_tokens")
    if value is None:
        value = body.get("max_completion_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _unprocessable("max_tokens: invalid type, expected an integer")
    if not 1 <= value <= spec.max_output_tokens:
        raise _ApiError(
            400,
            f"Invalid max_tokens value, the valid range of max_tokens is "
            f"[1, {spec.max_output_tokens}]",
        )
    return value


def _image_count(messages: Sequence[Mapping[str, Any]]) -> int:
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            count += sum(
                1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url"
            )
    return count


def _prepare(body: object) -> _Request:
    """Validate a chat request as DeepSeek does and tokenize its prompt."""
    if not isinstance(body, Mapping):
        raise _unprocessable("invalid type: expected a JSON object")
    model, spec = _model(body)
    messages = _messages(body)
    thinking = _thinking(body, spec)
    try:
        effort = reasoning_effort_level(body.get("reasoning_effort"))
    except ValidationError as exc:
        raise _ApiError(400, str(exc)) from None
    max_tokens = _max_tokens(body, spec)
    stream = _bool_field(body, "stream", False)
    options = body.get("stream_options")
    include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _unprocessable("tools: invalid type, expected a sequence")
    _check_tool_messages(messages)
    if thinking:
        _check_reasoning(messages)
    limits = spec.image_limits
    images = _image_count(messages)
    if limits is not None and images > limits.max_images:
        raise _ApiError(400, f"Too many images: {images}; at most {limits.max_images} allowed.")
    try:
        text = render_prompt(
            messages, tools=tools or None, thinking=thinking, reasoning_effort=effort, model=spec
        )
    except ContextKitError as exc:
        raise _ApiError(400, str(exc)) from None
    prompt_ids = encode(text)
    requested = len(prompt_ids) + (max_tokens or 0)
    if requested > spec.context_window or len(prompt_ids) >= spec.context_window:
        raise _ApiError(
            400,
            f"This model's maximum context length is {spec.context_window} tokens. However, "
            f"you requested {requested} tokens ({len(prompt_ids)} in the messages, "
            f"{max_tokens or 0} in the completion). Please reduce the length of the messages "
            "or completion.",
        )
    return _Request(
        model=model,
        spec=spec,
        messages=tuple(messages),
        thinking=thinking,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        prompt_ids=tuple(prompt_ids),
    )
