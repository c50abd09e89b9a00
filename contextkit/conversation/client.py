"""`Conversation` and `AsyncConversation`: the model calls, sync and awaited.

The twins only do I/O: `_Base` builds each request and records each response; these call
`client.chat.completions.create` (and the tools, for `run()`) in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from contextkit.conversation.base import ImageSource, _Base
from contextkit.conversation.reply import Reply
from contextkit.conversation.streaming import AsyncReplyStream, ReplyStream
from contextkit.conversation.tools import ToolFunctions, _arun_tool, _run_tool

__all__ = ["AsyncConversation", "Conversation"]


class Conversation(_Base):
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
        text, send_kwargs, done = self._resume(text, send_kwargs)
        if done is not None:
            return done
        for call in self._outstanding(text):
            self._answer(call, _run_tool(tools, call))
        reply: Reply = self.send(text, tools=loop.schemas, **send_kwargs)
        while reply.tool_calls:
            for call in reply.tool_calls:
                self._answer(call, _run_tool(tools, call))
            if not loop.again():
                break
            reply = self.send(None, tools=loop.schemas, **send_kwargs)
        return loop.done(reply)


class AsyncConversation(_Base):
    """`Conversation` on `openai.AsyncOpenAI`: the same API, awaited.

    Database work runs inline (it is short); the model call is awaited.
    """

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
        call = self._begin(text, stream=stream, **options)
        if isinstance(call, Reply):
            return AsyncReplyStream.replay(self, call) if stream else call
        response = await self.client.chat.completions.create(**call.request)
        if stream:
            return AsyncReplyStream(self, call, response)
        return self._record(call, response)

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
        text, send_kwargs, done = self._resume(text, send_kwargs)
        if done is not None:
            return done
        for call in self._outstanding(text):
            self._answer(call, await _arun_tool(tools, call))
        reply: Reply = await self.send(text, tools=loop.schemas, **send_kwargs)
        while reply.tool_calls:
            for call in reply.tool_calls:
                self._answer(call, await _arun_tool(tools, call))
            if not loop.again():
                break
            reply = await self.send(None, tools=loop.schemas, **send_kwargs)
        return loop.done(reply)
