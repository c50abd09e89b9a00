"""`Conversation` / `AsyncConversation`: one call to the model on a persisted thread.

`send()` appends the user message, builds the prompt (compacting when due), calls
`client.chat.completions.create`, and records the reply with its usage and cost. `run()`
loops over tool calls until the model answers. Retries are the openai SDK's own
(`max_retries`, backoff, `Retry-After`); the user message is appended once, before the call,
so a retried or failed call never duplicates it, and the thread stays valid for the next one.
A stream records nothing unless it completes.
"""

from __future__ import annotations

import inspect
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from attrs import define, field, frozen

from contextkit.cache import PrefixCacheModel
from contextkit.errors import ValidationError
from contextkit.store.ledger import spec_for
from contextkit.tokens.encoding import encode
from contextkit.tokens.template import generated_text, render_prompt
from contextkit.types import Message
from contextkit.usage import Usage

if TYPE_CHECKING:
    from contextkit.compaction import CompactionPolicy, Summarizer
    from contextkit.store.thread import Thread
    from contextkit.window import Prompt

__all__ = [
    "AsyncConversation",
    "Conversation",
    "Delta",
    "LengthWarning",
    "Reply",
    "ReplyStream",
    "tool_schema",
]


class LengthWarning(UserWarning):
    """A reply stopped at `max_tokens` (finish_reason "length"): it is cut short."""


@frozen(kw_only=True)
class Reply:
    """One model call's outcome, as recorded."""

    message: Message
    finish_reason: str | None
    usage: Usage | None
    cost_usd: float | None
    prompt: Prompt
    predicted_cache_hit_tokens: int | None
    latency_ms: float
    steps: int = 1

    @property
    def content(self) -> str:
        return self.message.text

    @property
    def reasoning_content(self) -> str | None:
        return self.message.reasoning_content

    @property
    def tool_calls(self) -> tuple[Any, ...]:
        return self.message.tool_calls

    @property
    def truncated(self) -> bool:
        """True when the reply hit `max_tokens` (or the window) and is cut short."""
        return self.finish_reason == "length"

    def __str__(self) -> str:
        return self.content


@frozen
class Delta:
    """A piece of a streamed reply: `kind` is "reasoning", "content" or "tool_call"."""

    kind: Literal["reasoning", "content", "tool_call"]
    text: str


def tool_schema(fn: Callable[..., Any], name: str | None = None) -> dict[str, Any]:
    """An OpenAI tool schema from a Python function's signature, hints and docstring."""
    if not callable(fn):
        raise ValidationError(f"tool_schema takes a function, got {type(fn).__name__}")
    kinds: dict[Any, str] = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        list: "array",
        dict: "object",
    }
    hints = get_type_hints(fn)
    properties: dict[str, Any] = {}
    required = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(pname, str)
        origin = getattr(hint, "__origin__", hint)
        properties[pname] = {"type": kinds.get(origin, "string")}
        if param.default is param.empty:
            required.append(pname)
    doc = inspect.getdoc(fn) or ""
    return {
        "type": "function",
        "function": {
            "name": name or fn.__name__,
            "description": doc.split("\n\n")[0],
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _schemas(tools: Mapping[str, Callable[..., Any]]) -> list[dict[str, Any]]:
    return [tool_schema(fn, name) for name, fn in tools.items()]


def _tool_target(
    tools: Mapping[str, Callable[..., Any]], call: Any
) -> tuple[Callable[..., Any], dict[str, Any]] | str:
    """The function and its kwargs for a tool call, or an error text for the model."""
    fn = tools.get(call.function.name)
    if fn is None:
        return f"Error: unknown tool {call.function.name!r}; available: {sorted(tools)}"
    try:
        args = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"Error: arguments are not valid JSON ({exc.msg})"
    if not isinstance(args, dict):
        return "Error: arguments must be a JSON object"
    return fn, args


def _run_tool(tools: Mapping[str, Callable[..., Any]], call: Any) -> str:
    """The tool result text: its return value, or the error the model should see."""
    target = _tool_target(tools, call)
    if isinstance(target, str):
        return target
    fn, args = target
    try:
        return _as_text(fn(**args))
    except Exception as exc:  # the model should see what went wrong
        return _error_text(exc)


async def _arun_tool(tools: Mapping[str, Callable[..., Any]], call: Any) -> str:
    """`_run_tool` for plain or `async` tools."""
    target = _tool_target(tools, call)
    if isinstance(target, str):
        return target
    fn, args = target
    try:
        result = fn(**args)
        if inspect.isawaitable(result):
            result = await result
        return _as_text(result)
    except Exception as exc:
        return _error_text(exc)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _error_text(exc: BaseException) -> str:
    return f"Error: {type(exc).__name__}: {exc}"


@define
class _Call:
    """What one call needs between building and recording (shared by sync and async)."""

    prompt: Prompt
    request: dict[str, Any]
    prompt_ids: list[int] | None
    predicted_hit: int | None
    started: float


@define
class _Base:
    """The parts of a conversation that do not touch the network."""

    client: Any
    thread: Thread
    summarizer: Summarizer | None = None
    compaction: CompactionPolicy | None = None
    max_tokens: int = 4_096
    predict_cache: bool = True
    _cache: PrefixCacheModel = field(factory=PrefixCacheModel, init=False)

    def _user(
        self, text: str | None, images: Sequence[Any] | None, idempotency_key: str | None
    ) -> None:
        if text is None and not images:
            return
        if images:
            from contextkit.images import check_image_count, prepare_image

            spec = spec_for(self.thread.model)
            if spec.image_limits is None:
                raise ValidationError(f"model {spec.name} takes no images")
            check_image_count(len(images), spec.image_limits)
            parts: list[dict[str, Any]] = [{"type": "text", "text": text or ""}]
            parts += [prepare_image(i, limits=spec.image_limits).to_part() for i in images]
            content: Any = parts
        else:
            content = text
        self.thread.append({"role": "user", "content": content}, idempotency_key=idempotency_key)

    def _answer(self, call: Any, content: str) -> None:
        self.thread.append({"role": "tool", "tool_call_id": call.id, "content": content})

    def _prepare(
        self,
        *,
        max_tokens: int | None,
        thinking: bool | None,
        reasoning_effort: str | None,
        tools: Sequence[Mapping[str, Any]] | None,
        extra: object,
        stream: bool,
        create_kwargs: Mapping[str, Any],
    ) -> _Call:
        prompt = self.thread.prepare(
            max_tokens=max_tokens or self.max_tokens,
            extra=extra,
            tools=tools,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            compaction=self.compaction,
            summarizer=self.summarizer,
        )
        request = prompt.request()
        request.update(create_kwargs)
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        prompt_ids = predicted = None
        if self.predict_cache:
            text = render_prompt(
                list(prompt.messages),
                tools=tools,
                thinking=prompt.thinking,
                reasoning_effort=prompt.reasoning_effort,
                model=prompt.model,
            )
            prompt_ids = encode(text)
            predicted = self._cache.lookup(prompt_ids).hit_tokens
        return _Call(prompt, request, prompt_ids, predicted, time.perf_counter())

    def _record(self, call: _Call, response: Mapping[str, Any]) -> Reply:
        latency = (time.perf_counter() - call.started) * 1000.0
        from contextkit.usage import record_call

        recorded = record_call(
            self.thread,
            response,
            prompt=call.prompt,
            latency_ms=latency,
            predicted_cache_hit_tokens=call.predicted_hit,
        )
        message, finish = recorded.message, recorded.finish_reason
        if call.prompt_ids is not None:
            calls = [c.to_openai() for c in message.tool_calls]
            finished = finish != "length"
            ended = message.reasoning_content is None or bool(message.text or calls) or finished
            self._cache.request(
                call.prompt_ids,
                completion=encode(
                    generated_text(
                        message.reasoning_content,
                        message.text,
                        calls,
                        reasoning_ended=ended,
                        finished=finished,
                    )
                ),
            )
        if finish == "length":
            warnings.warn(
                f"the reply in thread {self.thread.id!r} was cut at max_tokens "
                f"({call.prompt.max_tokens:,}); raise max_tokens for a complete answer",
                LengthWarning,
                stacklevel=4,
            )
        return Reply(
            message=message,
            finish_reason=finish,
            usage=recorded.usage,
            cost_usd=recorded.cost_usd,
            prompt=call.prompt,
            predicted_cache_hit_tokens=call.predicted_hit,
            latency_ms=latency,
        )


def _dump(response: Any) -> dict[str, Any]:
    if isinstance(response, Mapping):
        return dict(response)
    data: dict[str, Any] = response.model_dump()
    return data


@define
class _StreamState:
    """Accumulates SDK chunks into the final response dict."""

    rid: str | None = None
    reasoning: list[str] = field(factory=list)
    content: list[str] = field(factory=list)
    calls: dict[int, dict[str, Any]] = field(factory=dict)
    finish: str | None = None
    usage: dict[str, Any] | None = None

    def feed(self, chunk: Any) -> Iterator[Delta]:
        data = _dump(chunk)
        self.rid = self.rid or data.get("id")
        if data.get("usage"):
            self.usage = data["usage"]
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                self.reasoning.append(delta["reasoning_content"])
                yield Delta("reasoning", delta["reasoning_content"])
            if delta.get("content"):
                self.content.append(delta["content"])
                yield Delta("content", delta["content"])
            for tc in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(
                    tc.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
                yield Delta("tool_call", fn.get("arguments") or fn.get("name") or "")
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def response(self) -> dict[str, Any]:
        if self.finish is None:
            raise ValidationError("the stream ended without a finish_reason; nothing recorded")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        return {
            "id": self.rid,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
            "usage": self.usage,
        }


class ReplyStream:
    """Iterate for `Delta`s; when the stream completes, the reply is recorded (`.reply`)."""

    def __init__(self, base: _Base, call: _Call, chunks: Iterable[Any]) -> None:
        self._base, self._call, self._chunks = base, call, chunks
        self._state = _StreamState()
        self.reply: Reply | None = None

    def __iter__(self) -> Iterator[Delta]:
        for chunk in self._chunks:
            yield from self._state.feed(chunk)
        self.reply = self._base._record(self._call, self._state.response())

    def text(self) -> str:
        """Consume the stream; return the reply's content."""
        for _ in self:
            pass
        assert self.reply is not None
        return self.reply.content


class AsyncReplyStream:
    """`ReplyStream` for `AsyncConversation`: `async for delta in stream`."""

    def __init__(self, base: _Base, call: _Call, chunks: Any) -> None:
        self._base, self._call, self._chunks = base, call, chunks
        self._state = _StreamState()
        self.reply: Reply | None = None

    async def __aiter__(self) -> AsyncIterator[Delta]:
        async for chunk in self._chunks:
            for delta in self._state.feed(chunk):
                yield delta
        self.reply = self._base._record(self._call, self._state.response())

    async def text(self) -> str:
        async for _ in self:
            pass
        assert self.reply is not None
        return self.reply.content


class Conversation(_Base):
    """A thread and an `openai.OpenAI` client (or any OpenAI-compatible one).

    `Conversation(client, thread, summarizer=LLMSummarizer(client))`; `send()` for a turn,
    `run()` for a tool loop. Not thread-safe: one per concurrent conversation.

    With `predict_cache=True` each call's cache hit is predicted with a model of the
    provider's prefix cache kept in this object's memory (the rendered prompt is tokenized
    once per call for it): a new `Conversation` starts cold and predicts no hits until its
    first call, whatever the provider still holds.
    """

    def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[Any] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = False,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> Any:
        """Append `text` (and `images`) as a user message, call the model, record the reply.

        Returns a `Reply`, or with `stream=True` a `ReplyStream`. `text=None` calls the model
        on the thread as it is (e.g. after answering tool calls, or to retry a failed call).
        """
        self._user(text, images, idempotency_key)
        call = self._prepare(
            max_tokens=max_tokens,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            tools=tools,
            extra=extra,
            stream=stream,
            create_kwargs=create_kwargs,
        )
        response = self.client.chat.completions.create(**call.request)
        if stream:
            return ReplyStream(self, call, response)
        return self._record(call, _dump(response))

    def run(
        self,
        text: str | None,
        *,
        tools: Mapping[str, Callable[..., Any]],
        max_steps: int = 20,
        schemas: Sequence[Mapping[str, Any]] | None = None,
        **send_kwargs: Any,
    ) -> Reply:
        """Send `text`, execute the model's tool calls, repeat until it answers.

        Each call and each tool result is recorded as it happens. A tool that raises becomes
        an error result the model sees, not a crash. After `max_steps` calls the last reply
        is returned as is (its tool calls answered, so the thread stays valid).
        """
        tool_list = list(schemas) if schemas is not None else _schemas(tools)
        reply: Reply = self.send(text, tools=tool_list, **send_kwargs)
        steps = 1
        while reply.tool_calls:
            for call in reply.tool_calls:
                self._answer(call, _run_tool(tools, call))
            if steps >= max_steps:
                break
            reply = self.send(None, tools=tool_list, **send_kwargs)
            steps += 1
        return _with_steps(reply, steps)


class AsyncConversation(_Base):
    """`Conversation` on `openai.AsyncOpenAI`: the same API, awaited.

    Database work runs inline (it is short); the model call is awaited.
    """

    async def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[Any] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: bool = False,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> Any:
        """See `Conversation.send`; with `stream=True` returns an `AsyncReplyStream`."""
        self._user(text, images, idempotency_key)
        call = self._prepare(
            max_tokens=max_tokens,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            tools=tools,
            extra=extra,
            stream=stream,
            create_kwargs=create_kwargs,
        )
        response = await self.client.chat.completions.create(**call.request)
        if stream:
            return AsyncReplyStream(self, call, response)
        return self._record(call, _dump(response))

    async def run(
        self,
        text: str | None,
        *,
        tools: Mapping[str, Callable[..., Any]],
        max_steps: int = 20,
        schemas: Sequence[Mapping[str, Any]] | None = None,
        **send_kwargs: Any,
    ) -> Reply:
        """See `Conversation.run`; tools may be plain or `async` functions."""
        tool_list = list(schemas) if schemas is not None else _schemas(tools)
        reply: Reply = await self.send(text, tools=tool_list, **send_kwargs)
        steps = 1
        while reply.tool_calls:
            for call in reply.tool_calls:
                self._answer(call, await _arun_tool(tools, call))
            if steps >= max_steps:
                break
            reply = await self.send(None, tools=tool_list, **send_kwargs)
            steps += 1
        return _with_steps(reply, steps)


def _with_steps(reply: Reply, steps: int) -> Reply:
    import attrs

    return attrs.evolve(reply, steps=steps)
