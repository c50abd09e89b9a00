"""Streamed replies: `Delta`s as the chunks arrive, and what arrived recorded once at the end.

A stream ends when it completes or when it is cut short: `close()` / `aclose()`, leaving a
`with` / `async with` block, breaking out of the loop (the loop's iterator is finalized: at
once for `for` in CPython, on the event loop's next turns for `async for`; use `async with`
to be deterministic), or an error from the SDK stream such as a dropped connection (raised
again once recorded). Ending closes the HTTP response, which frees the connection and tells
the provider to stop generating, and records what arrived, exactly once (invariant 8):

* complete (a `finish_reason` arrived): the reply as today, with the provider's usage;
* cut short: the content and reasoning that arrived, as the assistant message, with
  `finish_reason="interrupted"` (`Reply.interrupted`, `Stats.interrupted_calls`). Tool calls
  are left out of it: their arguments may be incomplete, and a stored call would need a
  result before the next call, so the thread stays valid for the next `send()`;
* nothing arrived (no reasoning or content text): no message, so the user message stays last
  and `send(None)` retries; the call is still stored, since the provider billed the prompt.

Usage is the provider's when its usage chunk arrived; otherwise contextkit counts it exactly
(`Reply.usage_counted`, stored as `usage_source='counted'`, `Stats.counted_calls`): prompt
tokens are the prompt's exact count (`Prompt.prompt_tokens`), completion tokens the tokens of
the reasoning, the content and the tool-call text (DeepSeek V4's DSML) that arrived, each
counted with the model's tokenizer, as the provider bills them. The cache split is unknown:
stored as 0 hit / 0 miss and priced as all misses, so the cost is an upper bound.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from attrs import define, evolve, field

from contextkit._sdk import Usage, as_mapping
from contextkit.conversation.reply import Delta, Reply
from contextkit.models import spec_for
from contextkit.tokens.deepseek_v4 import generated_text
from contextkit.usage import INTERRUPTED

if TYPE_CHECKING:
    from typing_extensions import Self

    from contextkit.conversation.base import _Call
    from contextkit.conversation.client import AsyncConversation, Conversation
    from contextkit.prompt import Prompt

__all__ = ["INTERRUPTED", "AsyncReplyStream", "ReplyStream"]


_Chunks = TypeVar("_Chunks", Iterable[object], AsyncIterable[object])


@define
class _StreamState:
    """Accumulates SDK chunks; decides what to record when the stream ends (pure)."""

    rid: str | None = None
    reasoning: list[str] = field(factory=list)
    content: list[str] = field(factory=list)
    calls: dict[int, dict[str, Any]] = field(factory=dict)
    finish: str | None = None
    usage: dict[str, Any] | None = None
    thought: bool = False
    """A `reasoning_content` field arrived (maybe empty): thinking was on for this reply."""

    def feed(self, chunk: object) -> list[Delta]:
        """Take in one whole chunk (it arrived, whether or not its deltas are read)."""
        data = as_mapping(chunk, "chunk")
        self.rid = self.rid or data.get("id")
        if data.get("usage"):
            self.usage = dict(as_mapping(data["usage"], "usage"))
        deltas: list[Delta] = []
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("reasoning_content"), str):
                self.thought = True
            if delta.get("reasoning_content"):
                self.reasoning.append(delta["reasoning_content"])
                deltas.append(Delta("reasoning", delta["reasoning_content"]))
            if delta.get("content"):
                self.content.append(delta["content"])
                deltas.append(Delta("content", delta["content"]))
            for tc in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(
                    tc.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = tc.get("id") or slot["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
                deltas.append(Delta("tool_call", fn.get("arguments") or fn.get("name") or ""))
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return deltas

    def counted_usage(self, prompt: Prompt, count: Callable[[str], int]) -> dict[str, Any]:
        """Usage counted from what arrived: the prompt's exact count, the text's tokens."""
        calls = [self.calls[i] for i in sorted(self.calls)]
        tool_text = generated_text(None, "", calls, finished=False) if calls else ""
        reasoning = _count(count, "".join(self.reasoning))
        completion = reasoning + _count(count, "".join(self.content)) + _count(count, tool_text)
        return {
            "prompt_tokens": prompt.prompt_tokens,
            "completion_tokens": completion,
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": 0,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    def response(self, prompt: Prompt, count: Callable[[str], int]) -> dict[str, Any]:
        """The response dict to record: the reply so far, its usage and where that came from.

        `choices` is empty when the stream was cut before any text arrived (no message).
        """
        complete = self.finish is not None
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning or self.thought:  # "" when it thought nothing, as a whole reply has
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls and complete:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        choices = [{"index": 0, "message": message, "finish_reason": self.finish or INTERRUPTED}]
        if not complete and not (self.content or self.reasoning):
            choices = []
        out: dict[str, Any] = {"id": self.rid, "choices": choices, "usage": self.usage}
        if self.usage is None:
            out["usage"] = self.counted_usage(prompt, count)
            out["usage_source"] = "counted"
        return out


def _count(count: Callable[[str], int], text: str) -> int:
    return count(text) if text else 0


_Conv = TypeVar("_Conv", "Conversation", "AsyncConversation")


class _Stream(Generic[_Chunks, _Conv]):
    """What both streams hold: the call, its chunks, the state so far, and `reply` once done.

    `reply` is set when the stream ends (complete or cut short) unless nothing arrived.
    """

    def __init__(self, base: _Conv, call: _Call | None, chunks: _Chunks) -> None:
        self._base: _Conv = base
        self._call = call
        self._chunks: _Chunks = chunks
        self._state = _StreamState()
        self._ended = False
        self.reply: Reply | None = None

    @classmethod
    def replay(cls, base: _Conv, reply: Reply) -> Self:
        """A stream of a reply stored before (a retried keyed send): its deltas, no call."""
        stream = cls(base, None, cast(_Chunks, ()))
        stream.reply = reply
        return stream

    def _stored(self) -> Iterator[Delta]:
        assert self.reply is not None
        if self.reply.reasoning_content:
            yield Delta("reasoning", self.reply.reasoning_content)
        if self.reply.content:
            yield Delta("content", self.reply.content)

    def _outcome(self) -> tuple[_Call, dict[str, Any]] | None:
        """What to record now that the stream ended: the call and its response (None: a
        replayed reply, nothing to record)."""
        call = self._call
        if call is None:
            return None
        count = spec_for(call.prompt.model).tokenizer.count
        return call, self._state.response(call.prompt, count)

    def _billed(self, call: _Call, response: dict[str, Any]) -> tuple[Usage, dict[str, Any]]:
        """A call that delivered no message: its usage and `record_usage` options."""
        return Usage.parse(response["usage"]), {
            "prompt": call.prompt,
            "finish_reason": INTERRUPTED,
            "usage_source": response.get("usage_source", "reported"),
            "response_id": self._state.rid,
            "latency_ms": (time.perf_counter() - call.started) * 1000.0,
            "predicted_cache_hit_tokens": call.predicted_hit,
        }

    def _is_ended(self) -> bool:
        """Whether `close()` ran (a call, so a check made before a `yield` is not trusted)."""
        return self._ended

    def _content(self) -> str:
        return "" if self.reply is None else self.reply.content


class ReplyStream(_Stream[Iterable[object], "Conversation"]):
    """Iterate for `Delta`s; the reply is recorded when the stream ends (`.reply`).

    `with conv.send(..., stream=True) as stream:` closes it on exit; `close()` ends it early.
    Either way what arrived is recorded once (see the module docstring).
    """

    def __iter__(self) -> Iterator[Delta]:
        if self._call is None:
            for delta in self._stored():
                yield delta
            return
        if self._ended:
            return
        try:
            for chunk in self._chunks:
                for delta in self._state.feed(chunk):
                    yield delta
                    if self._is_ended():  # closed while the reader held this delta
                        return
        finally:
            self.close()

    def close(self) -> None:
        """End the stream: close the HTTP response and record what arrived (once)."""
        if self._ended:
            return
        self._ended = True
        try:
            close = getattr(self._chunks, "close", None)
            if callable(close):
                close()
        finally:
            self._store()

    def _store(self) -> None:
        """Record what arrived: the reply (as `reply`), or only the billed call."""
        outcome = self._outcome()
        if outcome is None:
            return
        call, response = outcome
        if response["choices"]:
            reply = self._base._record(call, response)
            self.reply = evolve(reply, usage_counted=response.get("usage_source") == "counted")
        else:
            usage, options = self._billed(call, response)
            self._base.thread.record_usage(usage, **options)

    def text(self) -> str:
        """Consume the stream; return the reply's content (what arrived, if it was cut)."""
        for _ in self:
            pass
        return self._content()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncReplyStream(_Stream[AsyncIterable[object], "AsyncConversation"]):
    """`ReplyStream` for `AsyncConversation`: `async for delta in stream`, `async with`,
    `await stream.aclose()`."""

    async def __aiter__(self) -> AsyncIterator[Delta]:
        if self._call is None:
            for delta in self._stored():
                yield delta
            return
        if self._ended:
            return
        try:
            async for chunk in self._chunks:
                for delta in self._state.feed(chunk):
                    yield delta
                    if self._is_ended():
                        return
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """End the stream: close the HTTP response and record what arrived (once)."""
        if self._ended:
            return
        self._ended = True
        try:
            close = getattr(self._chunks, "aclose", None) or getattr(self._chunks, "close", None)
            if callable(close):
                result = close()
                if inspect.isawaitable(result):
                    await result
        finally:
            await self._store()

    async def _store(self) -> None:
        """`ReplyStream._store`, awaited."""
        outcome = self._outcome()
        if outcome is None:
            return
        call, response = outcome
        if response["choices"]:
            reply = await self._base._record(call, response)
            self.reply = evolve(reply, usage_counted=response.get("usage_source") == "counted")
        else:
            usage, options = self._billed(call, response)
            await self._base._io.record_usage(usage, **options)

    async def text(self) -> str:
        """Consume the stream; return the reply's content (what arrived, if it was cut)."""
        async for _ in self:
            pass
        return self._content()

    async def __aenter__(self) -> AsyncReplyStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
