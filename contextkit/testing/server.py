"""A local DeepSeek-compatible chat API, for tests and the demo.

A real HTTP server on 127.0.0.1 (stdlib `ThreadingHTTPServer` in a background thread) that the
openai SDK talks to unchanged: `OpenAI(base_url=srv.base_url, api_key="test")`.

    with serve() as srv:
        srv.script(Reply("Paris."))
        client.chat.completions.create(model="deepseek-v4-flash", messages=[...])

It answers `GET /models` and `POST /chat/completions` (also under `/v1`), streaming or not,
and behaves like DeepSeek's API wherever client code depends on it:

* usage is exact for contextkit's template: `prompt_tokens` is the token count of
  `render_prompt(...)` (= `count_messages`), the prompt-cache split comes from a
  `PrefixCacheModel` per model fed every served prompt and completion, and completion tokens
  are the reasoning + content + tool-call text;
* thinking is on unless `"thinking": {"type": "disabled"}`; replies then carry
  `reasoning_content`;
* HTTP 400 (DeepSeek's error body) for a prompt + `max_tokens` over the window, retired or
  unknown model ids, tool messages without their call (or calls without their results), bad
  images, and, in thinking mode, a tool-call turn replayed without its `reasoning_content`;
  422 for a body that is JSON but not a chat request;
* replies are scripted (`script`) or a deterministic echo; `max_tokens` truncates with
  `finish_reason="length"`; faults (`fail`) return 429/5xx with `Retry-After` or drop the
  connection, before or in the middle of the response.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, cast

from attrs import Attribute, define, field, frozen

from contextkit.cache import PrefixCacheModel
from contextkit.errors import ContextKitError, ValidationError
from contextkit.models import ModelSpec, get_model
from contextkit.tokens.encoding import decode, encode
from contextkit.tokens.template import (
    DeepSeekV4Template,
    generated_text,
    reasoning_effort_level,
    render_prompt,
)

__all__ = [
    "MODELS",
    "REASONING_REQUIRED",
    "RETIRED_MODELS",
    "DeepSeekServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "main",
    "serve",
]

MODELS = ("deepseek-v4-flash", "deepseek-v4-pro")
"""The model ids the server accepts and lists."""

RETIRED_MODELS = ("deepseek-chat", "deepseek-reasoner")
"""Legacy ids the real API no longer accepts (retired 2026-07-24 15:59 UTC)."""

REASONING_REQUIRED = 'The "reasoning_content" in the thinking mode must be passed back to the API.'
"""DeepSeek's 400 message for a tool-call turn replayed without its reasoning."""

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body accepted (a full 1M-token prompt is a few MB of JSON)."""

_ROLES = ("system", "developer", "user", "assistant", "tool")
_STATUS_ERRORS = {
    400: ("Invalid Format", "invalid_request_error"),
    401: ("Authentication Fails", "authentication_error"),
    402: ("Insufficient Balance", "invalid_request_error"),
    422: ("Invalid Parameters", "invalid_request_error"),
    429: ("Rate Limit Reached", "rate_limit_error"),
    500: ("Server Error", "server_error"),
    503: ("Server Overloaded", "server_error"),
}
_TEMPLATE = DeepSeekV4Template()
_PIECE = re.compile(r"\S*\s*")


def _str(_: object, attribute: Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{attribute.name} must be a string, got {value!r:.40}")


def _opt_str(_: object, attribute: Attribute[str | None], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{attribute.name} must be a string or None, got {value!r:.40}")


def _arguments(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"tool call arguments must be JSON-serializable: {exc}") from None


@frozen
class ToolCall:
    """One scripted function call; `arguments` is the JSON text the model emits.

    `id=None` lets the server assign the next `call_<n>`.
    """

    name: str = field(validator=_str)
    arguments: str = field(default="{}", converter=_arguments)
    id: str | None = field(default=None, validator=_opt_str)


def _tool_call(value: object) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, Mapping):
        function = value.get("function")
        source = function if isinstance(function, Mapping) else value
        name = source.get("name")
        if not isinstance(name, str):
            raise ValidationError(f"a tool call needs a string 'name', got {value!r:.80}")
        call_id = value.get("id")
        return ToolCall(name, source.get("arguments", "{}"), call_id)
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return ToolCall(value[0], value[1])
    raise ValidationError(
        f"a tool call is a ToolCall, a (name, arguments) pair or a dict, got {value!r:.80}"
    )


def _tool_calls(value: Iterable[object]) -> tuple[ToolCall, ...]:
    return tuple(_tool_call(v) for v in value)


@frozen
class Reply:
    """A scripted model answer, consumed by one successful chat completion.

    In thinking mode `reasoning=None` gets the default reasoning text (use "" for none); out
    of thinking mode reasoning is never sent. `finish_reason` overrides the natural one
    ("stop", or "tool_calls" when there are calls); truncation by `max_tokens` still wins.
    """

    content: str = field(default="", validator=_str)
    reasoning: str | None = field(default=None, validator=_opt_str)
    tool_calls: tuple[ToolCall, ...] = field(default=(), converter=_tool_calls)
    finish_reason: str | None = field(default=None, validator=_opt_str)


FaultKind = Literal["status", "drop", "drop_mid_stream"]


@frozen
class Fault:
    """An injected failure for the next chat requests, see `DeepSeekServer.fail`."""

    kind: FaultKind
    status: int = 429
    retry_after: float | None = 0.0
    message: str | None = None


@define
class _QueuedFault:
    fault: Fault
    left: int


@frozen
class RecordedRequest:
    """One chat request as the server saw it, and what it answered.

    `body` is the parsed JSON (None if it was not JSON); `status` is None when the
    connection was dropped before a status line; `usage` is the usage of a completion.
    """

    path: str
    body: Any
    status: int | None
    usage: dict[str, Any] | None = None
    stream: bool = False
    fault: FaultKind | None = None


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


@frozen
class _Completion:
    """What the model "generated" for one request, with its usage."""

    reasoning: str | None
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    usage: dict[str, Any]


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [
            p.get("text", "") if p.get("type") == "text" else "[image]"
            for p in content
            if isinstance(p, Mapping)
        ]
        return "\n".join(str(p) for p in parts)
    return ""


def _last_user_text(request: _Request) -> tuple[str, str]:
    last = next(
        (_text_of(m.get("content")) for m in reversed(request.messages) if m["role"] == "user"),
        "",
    )
    return last, hashlib.sha256(last.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _default_reasoning(request: _Request) -> str:
    last, digest = _last_user_text(request)
    return f"The user sent {len(last)} characters (digest {digest}). I will echo them."


def _default_reply(request: _Request) -> Reply:
    """A deterministic answer: a digest and the start of the last user message."""
    last, digest = _last_user_text(request)
    words = " ".join(last.split())
    snippet = words if len(words) <= 60 else words[:60] + "…"
    return Reply(content=f"Echo {digest}: {snippet}", reasoning=_default_reasoning(request))


def _dsml(calls: Sequence[ToolCall]) -> str:
    """The tool-call text the model writes after its content (DeepSeek's DSML block)."""
    return generated_text(None, "", _wire_calls(calls), finished=False)


def _wire_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


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


def _pieces(text: str) -> list[str]:
    """Streaming deltas: one word with its trailing whitespace each, joining back to `text`."""
    return [p for p in _PIECE.findall(text) if p]


class DeepSeekServer:
    """A running (after `start`) local DeepSeek API; all methods are thread-safe.

    One prefix cache per model, shared by every client of this server, as the provider's
    cache is per account. Use `serve()` or `with DeepSeekServer() as srv:`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None):
        self._address = (host, port)
        self.api_key = api_key
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._faults: deque[_QueuedFault] = deque()
        self._log: list[RecordedRequest] = []
        self._caches: dict[str, PrefixCacheModel] = {}
        self._next_call = 0
        self._next_id = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._running().server_address[0])

    @property
    def port(self) -> int:
        return int(self._running().server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as the openai SDK's `base_url`, e.g. "http://127.0.0.1:PORT"."""
        return f"http://{self.host}:{self.port}"

    def _running(self) -> _HTTPServer:
        if self._httpd is None:
            raise RuntimeError("the server is not running: call start() or use `with serve()`")
        return self._httpd

    def start(self) -> DeepSeekServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"deepseek-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idle keep-alives included)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> DeepSeekServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, *replies: Reply | str) -> None:
        """Queue replies for the next successful completions, in order (a str is content)."""
        queued = [r if isinstance(r, Reply) else Reply(content=r) for r in replies]
        with self._lock:
            self._replies.extend(queued)

    @property
    def pending_replies(self) -> int:
        """Scripted replies not yet consumed."""
        with self._lock:
            return len(self._replies)

    def fail(
        self,
        status: int = 429,
        *,
        times: int = 1,
        retry_after: float | None = 0.0,
        drop: bool = False,
        drop_mid_stream: bool = False,
        message: str | None = None,
    ) -> None:
        """Make the next `times` chat requests fail (queued after earlier `fail` calls).

        By default answer `status` with DeepSeek's error body and, unless `retry_after` is
        None, `Retry-After` (whole seconds) and `retry-after-ms` (at least 1, so the openai SDK
        waits that long instead of its own backoff). `drop=True` closes the connection without
        a response; `drop_mid_stream=True` processes the request and closes the connection
        halfway through the body (SSE chunks for a stream).
        """
        if drop and drop_mid_stream:
            raise ValidationError("choose one of drop and drop_mid_stream")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValidationError(f"times must be a positive integer, got {times!r:.40}")
        if not drop and not drop_mid_stream and not 400 <= status <= 599:
            raise ValidationError(f"status must be an HTTP error status, got {status!r:.40}")
        if retry_after is not None and (not math.isfinite(retry_after) or retry_after < 0):
            raise ValidationError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        kind: FaultKind = "drop" if drop else "drop_mid_stream" if drop_mid_stream else "status"
        with self._lock:
            self._faults.append(_QueuedFault(Fault(kind, status, retry_after, message), times))

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the chat requests received so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    def reset_cache(self) -> None:
        """Empty the prefix cache of every model, as if the provider evicted it."""
        with self._lock:
            self._caches.clear()

    def reset(self) -> None:
        """Back to a fresh server: no cache, script, faults or log (ids keep counting)."""
        with self._lock:
            self._caches.clear()
            self._replies.clear()
            self._faults.clear()
            self._log.clear()

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            entry = self._faults[0]
            entry.left -= 1
            if entry.left <= 0:
                self._faults.popleft()
            return entry.fault

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _new_id(self) -> str:
        with self._lock:
            self._next_id += 1
            return f"chatcmpl-{self._next_id:08d}"

    def _complete(self, request: _Request) -> _Completion:
        """Generate the reply (scripted or default), cut it to budget, and bill it."""
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            reply = _default_reply(request)
        reasoning: str | None = None
        if request.thinking:
            reasoning = reply.reasoning
            if reasoning is None:
                reasoning = _default_reasoning(request)
        spec = request.spec
        budget = min(
            request.max_tokens or spec.max_output_tokens,
            spec.context_window - len(request.prompt_ids),
        )
        r_ids = encode(reasoning) if reasoning is not None else []
        c_ids = encode(reply.content)
        calls = reply.tool_calls
        t_ids = encode(_dsml(calls)) if calls else []
        content = reply.content
        truncated = False
        reasoning_ended = len(r_ids) <= budget
        if not reasoning_ended:
            r_ids, c_ids, t_ids, calls, truncated = r_ids[:budget], [], [], (), True
            reasoning, content = decode(r_ids), ""
        elif len(r_ids) + len(c_ids) > budget:
            c_ids, t_ids, calls, truncated = c_ids[: budget - len(r_ids)], [], (), True
            content = decode(c_ids)
        elif len(r_ids) + len(c_ids) + len(t_ids) > budget:
            t_ids, calls, truncated = [], (), True
        with self._lock:
            named = []
            for call in calls:
                if call.id is None:
                    self._next_call += 1
                    call = ToolCall(call.name, call.arguments, f"call_{self._next_call}")
                named.append(call)
            calls = tuple(named)
        if truncated:
            finish = "length"
        else:
            finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        generated = generated_text(
            reasoning,
            content,
            _wire_calls(calls),
            reasoning_ended=reasoning_ended,
            finished=not truncated,
        )
        with self._lock:
            cache = self._caches.setdefault(request.model, PrefixCacheModel())
            hit = cache.request(request.prompt_ids, completion=encode(generated))
        completion_tokens = len(r_ids) + len(c_ids) + len(t_ids)
        usage = {
            "prompt_tokens": hit.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": hit.prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": hit.hit_tokens},
            "prompt_cache_hit_tokens": hit.hit_tokens,
            "prompt_cache_miss_tokens": hit.miss_tokens,
            "completion_tokens_details": {"reasoning_tokens": len(r_ids)},
        }
        return _Completion(reasoning, content, calls, finish, usage)


def _completion_json(cid: str, request: _Request, completion: _Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.reasoning is not None:
        message["reasoning_content"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = _wire_calls(completion.tool_calls)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": completion.usage,
        "system_fingerprint": "fp_contextkit_local",
    }


def _chunks(cid: str, request: _Request, completion: _Completion) -> list[dict[str, Any]]:
    """The SSE events of a streamed completion, as DeepSeek sends them (without [DONE])."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": "fp_contextkit_local",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    thinking = completion.reasoning is not None
    first: dict[str, Any] = {"role": "assistant", "content": None if thinking else ""}
    if thinking:
        first["reasoning_content"] = ""
    events = [chunk(first)]
    for piece in _pieces(completion.reasoning or ""):
        events.append(chunk({"content": None, "reasoning_content": piece}))
    for piece in _pieces(completion.content):
        delta: dict[str, Any] = {"content": piece}
        if thinking:
            delta["reasoning_content"] = None
        events.append(chunk(delta))
    for index, call in enumerate(completion.tool_calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [opening]}))
        half = len(call.arguments) // 2
        for part in (call.arguments[:half], call.arguments[half:]):
            if part:
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                )
    events.append(chunk({"content": ""}, completion.finish_reason))
    if request.include_usage:
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = completion.usage
        events.append(usage_chunk)
    return events


def _models_json() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "deepseek"} for m in MODELS],
    }


def _route(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    return path[3:] if path.startswith("/v1/") else path


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its app and can close open keep-alive connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: DeepSeekServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's `getfqdn` lookup, which can stall on a sandboxed host."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP plumbing; the API's behaviour lives in the module functions and DeepSeekServer."""

    protocol_version = "HTTP/1.1"
    server_version = "contextkit-deepseek/0.1"
    timeout = 60

    @property
    def app(self) -> DeepSeekServer:
        return cast(_HTTPServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `DeepSeekServer.requests` instead of an access log."""

    def do_GET(self) -> None:
        path = _route(self.path)
        if not self._authorized():
            return
        if path == "/models":
            self._send_json(200, _models_json())
        elif path.startswith("/models/") and path[len("/models/") :] in MODELS:
            self._send_json(200, {"id": path[8:], "object": "model", "owned_by": "deepseek"})
        else:
            self._send_error(_ApiError(404, f"Not Found: {path!r:.80}", "not_found_error"))

    def do_POST(self) -> None:
        path = _route(self.path)
        raw = self._read_body()
        if raw is None or not self._authorized():
            return
        if path != "/chat/completions":
            self._send_error(_ApiError(404, f"Not Found: {path!r:.80}", "not_found_error"))
            return
        app = self.app
        body: Any = None
        parse_error: str | None = None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            parse_error = str(exc)
        stream = isinstance(body, Mapping) and body.get("stream") is True
        fault = app._take_fault()
        if fault is not None and fault.kind != "drop_mid_stream":
            if fault.kind == "drop":
                app._record(RecordedRequest(path, body, None, None, stream, "drop"))
                self.close_connection = True
                return
            app._record(RecordedRequest(path, body, fault.status, None, stream, "status"))
            self._send_fault(fault)
            return
        try:
            if parse_error is not None:
                raise _ApiError(400, f"Failed to parse the request body as JSON: {parse_error}")
            request = _prepare(body)
        except _ApiError as err:
            app._record(RecordedRequest(path, body, err.status, None, stream))
            self._send_error(err)
            return
        completion = app._complete(request)
        mid: FaultKind | None = "drop_mid_stream" if fault is not None else None
        app._record(RecordedRequest(path, body, 200, completion.usage, request.stream, mid))
        cid = app._new_id()
        if request.stream:
            self._stream(_chunks(cid, request, completion), drop=mid is not None)
        else:
            self._send_json(200, _completion_json(cid, request, completion), drop=mid is not None)

    def _authorized(self) -> bool:
        key = self.app.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_error(
            _ApiError(401, "Authentication Fails, Your api key is invalid", "authentication_error")
        )
        return False

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY_BYTES:
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        else:
            try:
                size = int(length or 0)
            except ValueError:
                size = -1
            if 0 <= size <= MAX_BODY_BYTES:
                return self.rfile.read(size)
        self.close_connection = True
        self._send_error(_ApiError(413, "Request body too large or of unknown length."))
        return None

    def _send_json(self, status: int, payload: Mapping[str, Any], drop: bool = False) -> None:
        self._send_bytes(status, json.dumps(payload, ensure_ascii=False).encode(), drop=drop)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        headers: Mapping[str, str] | None = None,
        drop: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if drop:
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)

    def _send_error(self, err: _ApiError) -> None:
        self._send_json(err.status, err.body())

    def _send_fault(self, fault: Fault) -> None:
        default, kind = _STATUS_ERRORS.get(fault.status, ("Error", "server_error"))
        err = _ApiError(fault.status, fault.message or default, kind)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))
            headers["retry-after-ms"] = str(max(1, round(fault.retry_after * 1000)))
        self._send_bytes(fault.status, json.dumps(err.body()).encode(), headers)

    def _stream(self, events: Sequence[Mapping[str, Any]], drop: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cut = max(1, len(events) // 2) if drop else len(events)
        for event in events[:cut]:
            self._chunk(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
        if drop:
            self.close_connection = True
            return
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))


@contextmanager
def serve(
    host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None
) -> Iterator[DeepSeekServer]:
    """A started `DeepSeekServer` (port 0: a free one), stopped when the block ends."""
    server = DeepSeekServer(host, port, api_key=api_key)
    with server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m contextkit.testing.server [--host H] [--port N]`: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m contextkit.testing.server",
        description="A local DeepSeek-compatible chat API for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    encode("warm up")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with serve(args.host, args.port, api_key=args.api_key) as server:
        print(server.base_url, flush=True)
        while not stop.wait(0.2):  # a timed wait: the handler runs between the waits
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
