"""Streamed replies: `Delta`s as the chunks arrive, and the reply recorded once complete.

A stream records nothing unless it completes: one abandoned or broken off leaves the thread
as it was before the call (the user message stays, so the call can be retried).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from attrs import define, field

from contextkit._sdk import as_mapping
from contextkit.conversation.reply import Delta, Reply
from contextkit.errors import ValidationError

if TYPE_CHECKING:
    from typing_extensions import Self

    from contextkit.conversation.base import _Base, _Call

__all__ = ["AsyncReplyStream", "ReplyStream"]

_Chunks = TypeVar("_Chunks", Iterable[object], AsyncIterable[object])


@define
class _StreamState:
    """Accumulates SDK chunks into the final response dict."""

    rid: str | None = None
    reasoning: list[str] = field(factory=list)
    content: list[str] = field(factory=list)
    calls: dict[int, dict[str, Any]] = field(factory=dict)
    finish: str | None = None
    usage: dict[str, Any] | None = None

    def feed(self, chunk: object) -> Iterator[Delta]:
        data = as_mapping(chunk, "chunk")
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


class _Stream(Generic[_Chunks]):
    """What both streams hold: the call, its chunks, the state so far, and `reply` once done."""

    def __init__(self, base: _Base, call: _Call | None, chunks: _Chunks) -> None:
        self._base, self._call = base, call
        self._chunks: _Chunks = chunks
        self._state = _StreamState()
        self.reply: Reply | None = None

    @classmethod
    def replay(cls, base: _Base, reply: Reply) -> Self:
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

    def _finish(self) -> None:
        if self._call is not None:
            self.reply = self._base._record(self._call, self._state.response())

    def _content(self) -> str:
        assert self.reply is not None
        return self.reply.content


class ReplyStream(_Stream[Iterable[object]]):
    """Iterate for `Delta`s; when the stream completes, the reply is recorded (`.reply`).

    `.reply` stays None for a stream abandoned or broken off: nothing is recorded then.
    """

    def __iter__(self) -> Iterator[Delta]:
        if self._call is None:
            yield from self._stored()
            return
        for chunk in self._chunks:
            yield from self._state.feed(chunk)
        self._finish()

    def text(self) -> str:
        """Consume the stream; return the reply's content."""
        for _ in self:
            pass
        return self._content()


class AsyncReplyStream(_Stream[AsyncIterable[object]]):
    """`ReplyStream` for `AsyncConversation`: `async for delta in stream`."""

    async def __aiter__(self) -> AsyncIterator[Delta]:
        if self._call is None:
            for delta in self._stored():
                yield delta
            return
        async for chunk in self._chunks:
            for delta in self._state.feed(chunk):
                yield delta
        self._finish()

    async def text(self) -> str:
        """Consume the stream; return the reply's content."""
        async for _ in self:
            pass
        return self._content()
