"""`_Base`: every decision a conversation makes, shared by the sync and async twins.

Building the user message (images checked against the model's limits), preparing the prompt
(compacting when due), predicting the cache hit, recording the reply with its usage and cost,
warning of a cut reply, and `run()`'s step count. `Conversation` and `AsyncConversation` only
call the model (the httpx way: one base, two thin I/O twins).
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from attrs import define, evolve, field

from contextkit.cache import PrefixCacheModel
from contextkit.conversation.reply import Reply
from contextkit.conversation.tools import ToolFunctions, _schemas
from contextkit.counting import render_prompt
from contextkit.errors import LengthWarning, ValidationError
from contextkit.images import check_image_count, prepare_image
from contextkit.models import spec_for
from contextkit.recall import recall_tool
from contextkit.tokens.deepseek_v4 import generated_text
from contextkit.tokens.encoding import encode
from contextkit.types import Message, ToolCall

if TYPE_CHECKING:
    import os

    from PIL import Image

    from contextkit.policy import CompactionPolicy
    from contextkit.prompt import Prompt
    from contextkit.summarizers import Summarizer
    from contextkit.thread import BaseThread
    from contextkit.usage import Recorded

__all__ = ["ImageSource"]

ImageSource: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image"
"""An image to send: a path, its bytes, a PIL image, a `data:` URL or an http(s) URL."""


@define
class _Call:
    """What one call needs between building and recording (shared by sync and async)."""

    prompt: Prompt
    request: dict[str, Any]
    prompt_ids: list[int] | None
    predicted_hit: int | None
    started: float


@define
class _Opening:
    """A send's checked arguments: its user message (None: none to store), key, the
    `prepare()` options and the extra `create` arguments."""

    message: dict[str, Any] | None
    key: str | None
    options: dict[str, Any]
    create_kwargs: dict[str, Any]


@define
class _ToolLoop:
    """`run()`'s bookkeeping: the schemas every step sends, and when to stop calling."""

    schemas: Sequence[Mapping[str, Any]]
    max_steps: int
    steps: int = 1

    def again(self) -> bool:
        """Whether to call the model once more, its tool calls answered."""
        if self.steps >= self.max_steps:
            return False
        self.steps += 1
        return True

    def done(self, reply: Reply) -> Reply:
        """The last reply, with the number of calls it took."""
        return evolve(reply, steps=self.steps)


_T = TypeVar("_T", bound="BaseThread")


@define
class _Base(Generic[_T]):
    """The parts of a conversation that do not touch the network."""

    client: Any
    thread: _T
    summarizer: Summarizer | None = None
    compaction: CompactionPolicy | None = None
    max_tokens: int = 4_096
    predict_cache: bool = True
    _cache: PrefixCacheModel = field(factory=PrefixCacheModel, init=False)

    def __attrs_post_init__(self) -> None:
        """Checks of the twins (the thread each takes)."""

    def _resume_lookup(
        self, text: str | None, options: dict[str, Any]
    ) -> tuple[dict[str, Any], str] | None:
        """What `run()` must look up before it starts: the user message and key of a retried
        run (None: nothing to look up, the run starts afresh)."""
        key = options.get("idempotency_key")
        message = self._user(text, options.get("images"))
        if key is None or message is None:
            return None
        return message, key

    @staticmethod
    def _resumed(
        text: str | None,
        options: dict[str, Any],
        seen: tuple[Message, Recorded | None] | None,
    ) -> tuple[str | None, dict[str, Any], Reply | None]:
        """How `run()` starts when retried with the idempotency key of an earlier run: the
        reply that ended that run (returned as is), or its turn goes on (`text` None)."""
        if seen is None:
            return text, options, None
        if seen[1] is not None:
            return text, options, _replayed(seen[1])
        rest = {k: v for k, v in options.items() if k not in ("idempotency_key", "images")}
        return None, rest, None

    def _opening(
        self,
        text: str | None,
        *,
        images: Sequence[ImageSource] | None = None,
        max_tokens: int | None = None,
        thinking: bool | None = None,
        reasoning_effort: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        extra: object = None,
        idempotency_key: str | None = None,
        **create_kwargs: Any,
    ) -> _Opening:
        """`send()`'s arguments checked, its user message built: everything that can fail
        before the call, done before the user message is written (a failed send leaves
        nothing behind)."""
        options: dict[str, Any] = {
            "max_tokens": max_tokens or self.max_tokens,
            "extra": extra,
            "tools": tools,
            "thinking": thinking,
            "reasoning_effort": reasoning_effort,
        }
        _check_create_kwargs(self.client, create_kwargs)
        return _Opening(self._user(text, images), idempotency_key, options, create_kwargs)

    @staticmethod
    def _after_lookup(
        opening: _Opening, seen: tuple[Message, Recorded | None] | None
    ) -> Reply | None:
        """A keyed send that already got its reply returns it; one whose call failed calls
        again without storing its message twice."""
        if seen is not None and seen[1] is not None:
            return _replayed(seen[1])
        if seen is not None:  # stored before, its call failed: call again
            opening.message = None
        return None

    def _prepare_options(self, opening: _Opening) -> dict[str, Any]:
        """The options of the call's `thread.prepare()`."""
        return {**opening.options, "compaction": self.compaction, "summarizer": self.summarizer}

    def _user(
        self, text: str | None, images: Sequence[ImageSource] | None
    ) -> dict[str, Any] | None:
        """The user message a send opens its turn with (images checked), or None."""
        if text is None and not images:
            return None
        content: str | list[dict[str, Any]] | None = text
        if images:
            spec = spec_for(self.thread.model)
            if spec.image_limits is None:
                raise ValidationError(f"model {spec.name} takes no images")
            check_image_count(len(images), spec.image_limits)
            parts: list[dict[str, Any]] = [{"type": "text", "text": text or ""}]
            parts += [prepare_image(i, limits=spec.image_limits).to_part() for i in images]
            content = parts
        return {"role": "user", "content": content}

    def _call(self, prompt: Prompt, opening: _Opening, *, stream: bool) -> _Call:
        """The request for `prompt`, its cache prediction, and the clock started."""
        request = prompt.request()
        request.update(opening.create_kwargs)
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        prompt_ids = predicted = None
        if self.predict_cache:
            text = render_prompt(
                list(prompt.messages),
                tools=opening.options["tools"],
                thinking=prompt.thinking,
                reasoning_effort=prompt.reasoning_effort,
                model=prompt.model,
            )
            prompt_ids = encode(text)
            predicted = self._cache.lookup(prompt_ids).hit_tokens
        return _Call(prompt, request, prompt_ids, predicted, time.perf_counter())

    @staticmethod
    def _record_args(call: _Call) -> dict[str, Any]:
        """What `thread.record_call(response, **...)` gets for `call` (its latency now)."""
        return {
            "prompt": call.prompt,
            "latency_ms": (time.perf_counter() - call.started) * 1000.0,
            "predicted_cache_hit_tokens": call.predicted_hit,
        }

    def _reply(self, call: _Call, recorded: Recorded, latency: float) -> Reply:
        """The recorded response as a `Reply` (and the cache model told of it)."""
        message, finish = recorded.message, recorded.finish_reason
        if call.prompt_ids is not None:
            self._remember(call.prompt_ids, message, finish)
        if finish == "length":  # stacklevel counts from here: keep this in `_reply`
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

    def _remember(self, prompt_ids: list[int], message: Message, finish: str | None) -> None:
        """Tell the cache model about the call: its prompt, and the reply the provider keeps."""
        calls = [c.to_openai() for c in message.tool_calls]
        finished = finish != "length"
        ended = message.reasoning_content is None or bool(message.text or calls) or finished
        completion = generated_text(
            message.reasoning_content,
            message.text,
            calls,
            reasoning_ended=ended,
            finished=finished,
        )
        self._cache.request(prompt_ids, completion=encode(completion))

    @staticmethod
    def _answer(call: ToolCall, content: str) -> dict[str, Any]:
        """The tool message that answers `call`."""
        return {"role": "tool", "tool_call_id": call.id, "content": content}

    def _tool_loop(
        self,
        tools: ToolFunctions,
        max_steps: int,
        schemas: Sequence[Mapping[str, Any]] | None,
    ) -> _ToolLoop:
        tool_list = list(schemas) if schemas is not None else _schemas(tools)
        return _ToolLoop(tool_list, max_steps)

    def _with_recall(
        self, tools: ToolFunctions, schemas: Sequence[Mapping[str, Any]] | None, recall: object
    ) -> tuple[ToolFunctions, Sequence[Mapping[str, Any]] | None]:
        """`run()`'s tools and schemas, with the `recall` tool added when `recall` is True:
        the model may search the thread's whole history (see `contextkit.recall`)."""
        if not isinstance(recall, bool):
            raise ValidationError(f"recall must be True or False, got {recall!r:.40}")
        if not recall:
            return tools, schemas
        tool = recall_tool(self.thread)
        if tool.name in tools:
            raise ValidationError(
                f"recall=True adds a tool named {tool.name!r}, and tools already has one; "
                "rename yours or leave recall off"
            )
        listed = list(schemas) if schemas is not None else _schemas(tools)
        return {**tools, tool.name: tool}, [*listed, tool.schema]


def _replayed(recorded: Recorded) -> Reply:
    """A reply an earlier send stored, handed back as it is: no call, no prompt."""
    return Reply(
        message=recorded.message,
        finish_reason=recorded.finish_reason,
        usage=recorded.usage,
        cost_usd=recorded.cost_usd,
        prompt=None,
        predicted_cache_hit_tokens=None,
        latency_ms=0.0,
        replayed=True,
    )


_BUILT = frozenset({"model", "messages", "max_tokens", "tools", "reasoning_effort", "stream"})
"""Request fields the prompt sets: passed again, they would replace what was counted."""


def _check_create_kwargs(client: Any, create_kwargs: Mapping[str, Any]) -> None:
    """Refuse, before anything is written, extra arguments `create` would refuse after it:
    the prompt's own fields, and names the client's `create` does not take (a typo)."""
    built = sorted(_BUILT & set(create_kwargs))
    if built:
        raise ValidationError(
            f"{', '.join(built)} are set by the conversation from the thread and its options; "
            "pass them as send()'s own options (max_tokens=, tools=, reasoning_effort=)"
        )
    try:
        params = inspect.signature(client.chat.completions.create).parameters
    except (AttributeError, TypeError, ValueError):
        return  # not introspectable: the client checks for itself
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(create_kwargs) - set(params))
    if unknown:
        raise ValidationError(
            f"chat.completions.create takes no argument {', '.join(map(repr, unknown))}; "
            "check the spelling (extra_body= carries provider-specific fields)"
        )
