"""`Conversation` and `AsyncConversation`: the model calls, sync and awaited.

The twins only do I/O: `_Base` builds each request and records each response; these call
`client.chat.completions.create` (and the tools, for `run()`) in between.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Literal, overload

from contextkit._sdk import Usage
from contextkit.conversation.base import ImageSource, _Base, _Call
from contextkit.conversation.reply import Reply
from contextkit.conversation.streaming import AsyncReplyStream, ReplyStream
from contextkit.conversation.tools import ToolFunctions, _arun_tool, _run_tool
from contextkit.errors import ValidationError
from contextkit.prompt import Prompt
from contextkit.thread import AsyncThread, BaseThread, Thread
from contextkit.types import Message, ToolCall
from contextkit.usage import Recorded

__all__ = ["AsyncConversation", "Conversation"]


class Conversation(_Base[Thread]):
    """A thread and an `openai.OpenAI` client (or any OpenAI-compatible one).

    `Conversation(client, thread, summarizer=LLMSummarizer(client))`; `send()` for a turn,
    `run()` for a tool loop. Not thread-safe: one per concurrent conversation.

    With `predict_cache=True` each call's cache hit is predicted with a model of the
    provider's prefix cache kept in this object's memory (the rendered prompt is tokenized
    once per call for it): a new `Conversation` starts cold and predicts no hits until its
    first call, whatever the provider still holds.
    """

    @overload
    def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: Literal[False] = False,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> Reply: ...
    @overload
    def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: Literal[True],
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> ReplyStream: ...
    @overload
    def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: bool,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> Reply | ReplyStream: ...
    def send(
        self, text: str | None = None, *, stream: bool = False, **options: Any
    ) -> Reply | ReplyStream:
        """Append `text` (and `images`) as a user message, call the model, record the reply.

        Returns a `Reply`, or with `stream=True` a `ReplyStream`. `text=None` calls the model
        on the thread as it is (e.g. after answering tool calls, or to retry a failed call).
        Other keyword arguments go to `client.chat.completions.create` as they are.
        """
        call = self._begin(text, stream=stream, **options)
        if isinstance(call, Reply):
            return ReplyStream.replay(self, call) if stream else call
        response = self.client.chat.completions.create(**call.request)
        if stream:
            return ReplyStream(self, call, response)
        return self._record(call, response)

    def _begin(self, text: str | None, *, stream: bool, **options: Any) -> _Call | Reply:
        """`send()` up to the model call: the user message appended, the request built."""
        opening = self._opening(text, **options)
        if opening.message is not None and opening.key is not None:
            done = self._after_lookup(opening, self.thread.answered(opening.message, opening.key))
            if done is not None:
                return done
        if opening.message is not None:
            self.thread.check_turn(opening.message, **opening.options)
            self.thread.append(opening.message, idempotency_key=opening.key)
        prompt = self.thread.prepare(**self._prepare_options(opening))
        return self._call(prompt, opening, stream=stream)

    def _record(self, call: _Call, response: object) -> Reply:
        """Store the response (an SDK object or its dict) and return it as a `Reply`."""
        args = self._record_args(call)
        return self._reply(call, self.thread.record_call(response, **args), args["latency_ms"])

    def run(
        self,
        text: str | None,
        *,
        tools: ToolFunctions,
        max_steps: int = 20,
        schemas: Sequence[Mapping[str, Any]] | None = None,
        recall: bool = False,
        **send_kwargs: Any,
    ) -> Reply:
        """Send `text`, execute the model's tool calls, repeat until it answers.

        `text=None` goes on with the thread as it is: tool calls it made that have no result
        yet (a crash mid-loop) run first. Each call and each tool result is recorded as it
        happens. A tool that raises becomes
        an error result the model sees, not a crash. After `max_steps` calls the last reply
        is returned as is (its tool calls answered, so the thread stays valid).

        `recall=True` also offers the model a `recall` tool that searches this thread's whole
        history, the messages summarized away included (`contextkit.recall_tool`); its
        results are recorded as ordinary tool messages.
        """
        tools, schemas = self._with_recall(tools, schemas, recall)
        loop = self._tool_loop(tools, max_steps, schemas)
        lookup = self._resume_lookup(text, send_kwargs)
        seen = None if lookup is None else self.thread.answered(*lookup, final=True)
        text, send_kwargs, done = self._resumed(text, send_kwargs, seen)
        if done is not None:
            return done
        for call in self.thread.pending_tool_calls() if text is None else []:
            self.thread.append(self._answer(call, _run_tool(tools, call)))
        reply: Reply = self.send(text, tools=loop.schemas, **send_kwargs)
        while reply.tool_calls:
            for call in reply.tool_calls:
                self.thread.append(self._answer(call, _run_tool(tools, call)))
            if not loop.again():
                break
            reply = self.send(None, tools=loop.schemas, **send_kwargs)
        return loop.done(reply)


class AsyncConversation(_Base[BaseThread]):
    """`Conversation` on `openai.AsyncOpenAI` and an `AsyncThread`: the same API, awaited.

    Nothing blocks the event loop: database work goes through the async store, the model
    call and async summarizers are awaited, plain (sync) tools and image decoding run in a
    worker thread, and the tools of one step run concurrently (results stored in call
    order). A sync `Thread` is still accepted for one release (`DeprecationWarning`): its
    database work then runs in a worker thread.
    """

    _io: AsyncThread | _OffLoop

    def __attrs_post_init__(self) -> None:
        if isinstance(self.thread, Thread):
            warnings.warn(
                "AsyncConversation on a sync Thread is deprecated: open the store with "
                "contextkit.open_async() and pass an AsyncThread (its database work never "
                "blocks the event loop); until then the Thread's work runs in a worker thread",
                DeprecationWarning,
                stacklevel=3,
            )
            self._io = _OffLoop(self.thread)
        elif isinstance(self.thread, AsyncThread):
            self._io = self.thread
        else:
            raise ValidationError(
                f"AsyncConversation needs an AsyncThread (await astore.thread(...)), got "
                f"{type(self.thread).__name__}"
            )

    @overload
    async def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: Literal[False] = False,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> Reply: ...
    @overload
    async def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: Literal[True],
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> AsyncReplyStream: ...
    @overload
    async def send(
        self,
        text: str | None = None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        stream: bool,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> Reply | AsyncReplyStream: ...
    async def send(
        self, text: str | None = None, *, stream: bool = False, **options: Any
    ) -> Reply | AsyncReplyStream:
        """See `Conversation.send`; with `stream=True` returns an `AsyncReplyStream`."""
        call = await self._begin(text, stream=stream, **options)
        if isinstance(call, Reply):
            return AsyncReplyStream.replay(self, call) if stream else call
        response = await self.client.chat.completions.create(**call.request)
        if stream:
            return AsyncReplyStream(self, call, response)
        return await self._record(call, response)

    async def _begin(self, text: str | None, *, stream: bool, **options: Any) -> _Call | Reply:
        """`Conversation._begin`, awaited (images decoded off the loop)."""
        if options.get("images"):
            opening = await asyncio.to_thread(partial(self._opening, text, **options))
        else:
            opening = self._opening(text, **options)
        io = self._io
        if opening.message is not None and opening.key is not None:
            seen = await io.answered(opening.message, opening.key)
            done = self._after_lookup(opening, seen)
            if done is not None:
                return done
        if opening.message is not None:
            await io.check_turn(opening.message, **opening.options)
            await io.append(opening.message, idempotency_key=opening.key)
        prompt = await io.prepare(**self._prepare_options(opening))
        return self._call(prompt, opening, stream=stream)

    async def _record(self, call: _Call, response: object) -> Reply:
        """`Conversation._record`, awaited."""
        args = self._record_args(call)
        recorded = await self._io.record_call(response, **args)
        return self._reply(call, recorded, args["latency_ms"])

    async def run(
        self,
        text: str | None,
        *,
        tools: ToolFunctions,
        max_steps: int = 20,
        schemas: Sequence[Mapping[str, Any]] | None = None,
        recall: bool = False,
        **send_kwargs: Any,
    ) -> Reply:
        """See `Conversation.run`; tools may be plain or `async` functions."""
        tools, schemas = self._with_recall(tools, schemas, recall)
        loop = self._tool_loop(tools, max_steps, schemas)
        io = self._io
        lookup = self._resume_lookup(text, send_kwargs)
        seen = None if lookup is None else await io.answered(*lookup, final=True)
        text, send_kwargs, done = self._resumed(text, send_kwargs, seen)
        if done is not None:
            return done
        if text is None:
            await self._answer_all(tools, await io.pending_tool_calls())
        reply: Reply = await self.send(text, tools=loop.schemas, **send_kwargs)
        while reply.tool_calls:
            await self._answer_all(tools, reply.tool_calls)
            if not loop.again():
                break
            reply = await self.send(None, tools=loop.schemas, **send_kwargs)
        return loop.done(reply)

    async def _answer_all(self, tools: ToolFunctions, calls: Sequence[ToolCall]) -> None:
        """Run the step's tools concurrently; store each result in call order as soon as it
        and the ones before it are done (a crash keeps every result stored before it)."""
        tasks = [asyncio.ensure_future(_arun_tool(tools, call)) for call in calls]
        try:
            for call, task in zip(calls, tasks, strict=True):
                await self._io.append(self._answer(call, await task))
        finally:
            for task in tasks:  # cancelled or failed mid-step: stop the tools still running
                task.cancel()


class _OffLoop:
    """A sync `Thread` seen as an `AsyncThread` (the deprecated form): each call runs in a
    worker thread, so the event loop never waits on its database."""

    def __init__(self, thread: Thread) -> None:
        self._thread = thread

    async def answered(
        self, message: object, idempotency_key: str, *, final: bool = False
    ) -> tuple[Message, Recorded | None] | None:
        return await asyncio.to_thread(
            partial(self._thread.answered, message, idempotency_key, final=final)
        )

    async def check_turn(self, message: object, **options: Any) -> Message:
        return await asyncio.to_thread(partial(self._thread.check_turn, message, **options))

    async def append(self, message: object, *, idempotency_key: str | None = None) -> Message:
        return await asyncio.to_thread(
            partial(self._thread.append, message, idempotency_key=idempotency_key)
        )

    async def extend(self, messages: Sequence[object]) -> list[Message]:
        return await asyncio.to_thread(self._thread.extend, messages)

    async def prepare(self, **options: Any) -> Prompt:
        return await asyncio.to_thread(partial(self._thread.prepare, **options))

    async def record_call(self, response: object, **options: Any) -> Recorded:
        return await asyncio.to_thread(partial(self._thread.record_call, response, **options))

    async def record_usage(self, usage: Usage, **options: Any) -> float | None:
        return await asyncio.to_thread(partial(self._thread.record_usage, usage, **options))

    async def pending_tool_calls(self) -> list[ToolCall]:
        return await asyncio.to_thread(self._thread.pending_tool_calls)
