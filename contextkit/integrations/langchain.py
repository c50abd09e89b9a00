"""LangChain chat message history backed by a contextkit thread.

`ContextKitChatMessageHistory` is a `langchain_core.chat_history.BaseChatMessageHistory`,
so a LangChain app (e.g. one using `RunnableWithMessageHistory`) keeps its code and gets
contextkit's store: SQLite or PostgreSQL, owner-scoped, append-only, validated messages::

    import contextkit
    from contextkit.integrations.langchain import ContextKitChatMessageHistory

    store = contextkit.open("sqlite:///chat.db")
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: ContextKitChatMessageHistory.from_store(store, session_id),
        input_messages_key="question",
        history_messages_key="history",
    )

On the async store the history is async-backed: its awaited methods (`aget_messages`,
`aadd_messages`, `aclear`, `awindow_messages`) never block the event loop, and its sync
ones raise `contextkit.AsyncOnlyError`. `from_store(async_store, ...)` does no I/O, so it is
what a (sync) `get_session_history` returns; the thread opens on the first awaited call::

    store = await contextkit.open_async("sqlite:///chat.db")
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: ContextKitChatMessageHistory.from_store(store, session_id),
        input_messages_key="question",
        history_messages_key="history",
    )
    await chain.ainvoke({"question": "Hi"}, {"configurable": {"session_id": "s1"}})

`messages` is the whole stored history, as LangChain expects. `window_messages(max_tokens=…)`
is what a plain history cannot give: the thread's budgeted, cache-stable prompt (system
prompt, pinned messages, summary, live window) as LangChain messages, ready for the model.

Messages are mapped to and from the OpenAI chat format (`to_openai_message`,
`from_openai_message`): Human/AI/System/Tool messages become user/assistant/system/tool;
AI `tool_calls` become OpenAI `tool_calls` with JSON-string arguments (the provider's
original string is kept when `additional_kwargs["tool_calls"]` carries it), and
`invalid_tool_calls` keep their raw arguments; `additional_kwargs["reasoning_content"]`
is the assistant's `reasoning_content`; a `SystemMessage` with
`additional_kwargs["__openai_role__"] == "developer"` is a developer message. Content is a
string or a list of text and image parts (OpenAI `image_url` blocks, or LangChain/Anthropic
`image` blocks with a URL or base64 data, stored as `image_url`).

Not stored, so not returned: message ids, `response_metadata`, `usage_metadata`, other
`additional_kwargs`, a `ToolMessage`'s `name`, `status` and `artifact`, and an invalid tool
call's `error`. Content read back is in OpenAI shape (text parts as `{"type": "text",
"text": …}`, images as `image_url` parts).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        InvalidToolCall,
        SystemMessage,
        ToolCall,
        ToolMessage,
    )
    from langchain_core.messages.tool import invalid_tool_call as _invalid_tool_call
    from langchain_core.messages.tool import tool_call as _tool_call
    from langchain_core.runnables.config import run_in_executor
except ImportError as exc:  # pragma: no cover - exercised only without langchain-core
    raise ImportError(
        "contextkit.integrations.langchain needs langchain-core; install it with: "
        f'pip install "contextkit[langchain]" ({exc})'
    ) from exc

from contextkit.errors import AsyncOnlyError, NotFound, ValidationError
from contextkit.settings import check_owner
from contextkit.settings import thread_settings as check_thread_settings
from contextkit.store import AsyncStore
from contextkit.thread import AsyncThread, Thread
from contextkit.types import Message, Role, check_id

if TYPE_CHECKING:
    from contextkit.prompt import Prompt
    from contextkit.store.store import Store

__all__ = ["ContextKitChatMessageHistory", "from_openai_message", "to_openai_message"]

_DEVELOPER_KEY = "__openai_role__"
"""Where LangChain (e.g. `convert_to_openai_messages`) marks a developer-role SystemMessage."""

_TOOL_CALL_BLOCKS = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "invalid_tool_call", "function_call"}
)
"""AI content blocks that repeat what `AIMessage.tool_calls` already holds."""

_REASONING_BLOCKS = {"reasoning": "reasoning", "thinking": "thinking"}
"""AI content block type -> the key of its text (LangChain v1 / Anthropic)."""


class ContextKitChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history stored in a contextkit thread.

    Backed by a `Thread` (sync store) or an `AsyncThread` (async store). Reads and writes go
    to the database every time (no cache), so several histories, or other code, can share a
    thread. `add_messages` is one transaction: all are stored, or none (an invalid message
    raises `contextkit.ValidationError` and writes nothing).

    On a `Thread`, the async variants are LangChain's defaults: the sync methods, run in an
    executor. On an `AsyncThread`, `aget_messages`, `aadd_messages`, `aclear` and
    `awindow_messages` await the async store and never block the event loop; the sync
    methods (`messages`, `add_messages`, `clear`, `window_messages`, and what LangChain
    builds on them, such as `str(history)`) raise `contextkit.AsyncOnlyError`, since they
    would block the loop on database I/O.

    `clear()` cannot remove messages from the thread (contextkit history is append-only):
    it deletes the thread, with its messages, summaries and usage records, and recreates it
    empty with the same id, owner and settings. Other handles on the old thread (the
    `Thread` this history was built from, other histories on it) are stale afterwards: use
    `history.thread`, or a fresh `store.thread(id, owner=...)`.
    """

    def __init__(self, thread: Thread | AsyncThread) -> None:
        if not isinstance(thread, (Thread, AsyncThread)):
            raise TypeError(
                "ContextKitChatMessageHistory needs a contextkit Thread (store.thread(...)) "
                f"or AsyncThread (await async_store.thread(...)), got {type(thread).__name__}"
            )
        super().__init__()
        self._thread: Thread | AsyncThread | None = thread
        self._opener: _Opener | None = None
        self.last_prompt: Prompt | None = None
        """The `contextkit.Prompt` of the last `window_messages()` call (its token count,
        window facts, `request()`); pass it to `thread.record(..., prompt=...)`."""

    @classmethod
    def from_store(
        cls,
        store: Store | AsyncStore,
        thread_id: str,
        *,
        model: str | None = None,
        owner: str = "",
        **thread_settings: Any,
    ) -> ContextKitChatMessageHistory:
        """The history of thread `thread_id` in `store`, created if it does not exist.

        Same rules as `Store.thread()`: `thread_settings` are `system`,
        `max_context_tokens` and `metadata`; for an existing thread, settings given here must
        equal the stored ones (change them with `history.thread.update(...)`). A new thread
        gets `model`, default "deepseek-v4-flash"; an existing one keeps its model.

        With an `AsyncStore` this does no I/O, so it can be the (sync) `get_session_history`
        of a `RunnableWithMessageHistory`: the arguments are checked now, and the thread is
        opened (created if needed) by the history's first awaited call. Settings that differ
        from the stored thread's are then reported by that call. `afrom_store` opens it now.
        """
        if isinstance(store, AsyncStore):
            return cls._lazy(_Opener.checked(store, thread_id, model, owner, thread_settings))
        try:
            store.get_thread(thread_id, owner=owner)
        except NotFound:
            model = model or _DEFAULT_MODEL
        return cls(store.thread(thread_id, model=model, owner=owner, **thread_settings))

    @classmethod
    async def afrom_store(
        cls,
        store: AsyncStore,
        thread_id: str,
        *,
        model: str | None = None,
        owner: str = "",
        **thread_settings: Any,
    ) -> ContextKitChatMessageHistory:
        """`from_store` for an `AsyncStore`, awaited: the thread is opened (created if it does
        not exist) now, so a settings mismatch raises here."""
        if not isinstance(store, AsyncStore):
            raise TypeError(
                "afrom_store needs a contextkit AsyncStore (await contextkit.open_async(...)), "
                f"got {type(store).__name__}; for a Store use from_store"
            )
        opener = _Opener.checked(store, thread_id, model, owner, thread_settings)
        return cls(await opener.open())

    @classmethod
    def _lazy(cls, opener: _Opener) -> ContextKitChatMessageHistory:
        history = cls.__new__(cls)
        BaseChatMessageHistory.__init__(history)
        history._thread = None
        history._opener = opener
        history.last_prompt = None
        return history

    def __repr__(self) -> str:
        if self._thread is None:
            assert self._opener is not None
            return (
                f"<ContextKitChatMessageHistory {self._opener.thread_id!r} "
                f"owner={self._opener.owner!r} (AsyncStore, not opened yet)>"
            )
        return f"<ContextKitChatMessageHistory {self._thread!r}>"

    @property
    def is_async(self) -> bool:
        """True when the history is backed by the async store (an `AsyncThread`)."""
        return self._opener is not None or isinstance(self._thread, AsyncThread)

    @property
    def thread(self) -> Thread | AsyncThread:
        """The contextkit thread behind this history (a new handle after `clear()`).

        A history from `from_store(async_store, ...)` has no thread until its first awaited
        call: then this raises `AsyncOnlyError` (use `await history.athread()`).
        """
        if self._thread is None:
            raise AsyncOnlyError(
                "this history's thread is opened by its first awaited call; use "
                "`await history.athread()` (or build the history with afrom_store)"
            )
        return self._thread

    async def athread(self) -> Thread | AsyncThread:
        """The contextkit thread behind this history, opened (created if needed) first when
        the history came from `from_store(async_store, ...)` and nothing opened it yet."""
        if self._thread is None:
            assert self._opener is not None
            thread = await self._opener.open()
            if self._thread is None:  # a concurrent first call may have opened it already
                self._thread = thread
        return self._thread

    def _sync(self, method: str, instead: str) -> Thread:
        if isinstance(self._thread, Thread):
            return self._thread
        raise AsyncOnlyError(
            f"ContextKitChatMessageHistory.{method} is not available on a history backed by "
            f"the async store (it would block the event loop): use `{instead}`"
        )

    async def _async(self) -> AsyncThread | None:
        """The `AsyncThread` of an async-backed history (opened now if needed), else None."""
        if not self.is_async:
            return None
        thread = await self.athread()
        assert isinstance(thread, AsyncThread)
        return thread

    @property
    def messages(self) -> list[BaseMessage]:
        """Every stored message of the thread, oldest first, as LangChain messages.

        The thread's `system` setting is not a stored message and is not included (it is in
        `window_messages()`). Async-backed: `AsyncOnlyError`, use `await aget_messages()`.
        """
        thread = self._sync("messages", "await history.aget_messages()")
        return [from_openai_message(m) for m in thread.history()]

    @messages.setter
    def messages(self, value: list[BaseMessage]) -> None:
        raise AttributeError(
            "ContextKitChatMessageHistory.messages is read-only; use add_messages() or clear()"
        )

    async def aget_messages(self) -> list[BaseMessage]:
        """`messages`, awaited (on a sync-backed history: run in an executor)."""
        thread = await self._async()
        if thread is None:
            return await super().aget_messages()
        return [from_openai_message(m) async for m in thread.history()]

    def add_message(self, message: BaseMessage) -> None:
        """Store one message."""
        thread = self._sync("add_message", "await history.aadd_messages([message])")
        thread.append(to_openai_message(message))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store several messages in one transaction: all of them, or none."""
        thread = self._sync("add_messages", "await history.aadd_messages(messages)")
        thread.extend([to_openai_message(m) for m in messages])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """`add_messages`, awaited: one transaction, all of them or none."""
        thread = await self._async()
        if thread is None:
            await super().aadd_messages(messages)
            return
        await thread.extend([to_openai_message(m) for m in messages])

    def clear(self) -> None:
        """Delete the thread and recreate it empty, with the same id, owner and settings.

        contextkit never removes single messages, so this is the only honest "clear": the
        stored history, summaries and usage/cost records of the thread are gone for good.
        It is two transactions (delete, then create); a reader in between sees `NotFound`.
        """
        old = self._sync("clear", "await history.aclear()")
        with contextlib.suppress(NotFound):  # already deleted: recreate from our snapshot
            old.info()  # the current settings, in case they changed since this handle
            old.delete()
        self._thread = old.store.thread(old.id, **_settings_of(old))
        self.last_prompt = None

    async def aclear(self) -> None:
        """`clear`, awaited: delete the thread and recreate it empty, same id and settings."""
        old = await self._async()
        if old is None:
            await super().aclear()
            return
        with contextlib.suppress(NotFound):
            await old.info()
            await old.delete()
        self._thread = await old.store.thread(old.id, **_settings_of(old))
        self.last_prompt = None

    def window_messages(
        self, *, max_tokens: int, extra: object = None, **options: Any
    ) -> list[BaseMessage]:
        """The next model call's messages: the thread's budgeted, cache-stable window.

        `thread.build(max_tokens=...)` as LangChain messages: system prompt, pinned
        messages, summary, live window, then `extra` (volatile context, never stored; a
        string, LangChain messages or OpenAI dicts). Prompt tokens + `max_tokens` stay
        within the thread's `max_context_tokens`; the window may compact (summarize) old
        turns first. `options` go to `Thread.prepare` (`tools`, `thinking`, …). The
        `Prompt` is kept as `last_prompt`. Async-backed: use `awindow_messages`.
        """
        thread = self._sync("window_messages", "await history.awindow_messages(...)")
        prompt = thread.prepare(max_tokens=max_tokens, extra=_extra(extra), **options)
        self.last_prompt = prompt
        return [from_openai_message(m) for m in prompt.messages]

    async def awindow_messages(
        self, *, max_tokens: int, extra: object = None, **options: Any
    ) -> list[BaseMessage]:
        """`window_messages`, awaited (on a sync-backed history: run in an executor)."""
        thread = await self._async()
        if thread is None:
            call = partial(self.window_messages, max_tokens=max_tokens, extra=extra, **options)
            return await run_in_executor(None, call)
        prompt = await thread.prepare(max_tokens=max_tokens, extra=_extra(extra), **options)
        self.last_prompt = prompt
        return [from_openai_message(m) for m in prompt.messages]


_DEFAULT_MODEL = "deepseek-v4-flash"
"""The model of a thread that `from_store` creates without one."""


@dataclass(frozen=True)
class _Opener:
    """How a history from `from_store(async_store, ...)` opens its thread, once awaited."""

    store: AsyncStore
    thread_id: str
    model: str | None
    owner: str
    settings: Mapping[str, Any]

    @classmethod
    def checked(
        cls,
        store: AsyncStore,
        thread_id: str,
        model: str | None,
        owner: str,
        settings: Mapping[str, Any],
    ) -> _Opener:
        """The opener, its arguments checked as `AsyncStore.thread` would (no I/O)."""
        check_id(thread_id, "thread id")
        check_owner(owner)
        check_thread_settings(model=model, **settings)
        return cls(store, thread_id, model, owner, dict(settings))

    async def open(self) -> AsyncThread:
        model = self.model
        try:
            await self.store.get_thread(self.thread_id, owner=self.owner)
        except NotFound:
            model = model or _DEFAULT_MODEL
        return await self.store.thread(
            self.thread_id, model=model, owner=self.owner, **self.settings
        )


def _settings_of(thread: Thread | AsyncThread) -> dict[str, Any]:
    """What recreates `thread` as it is: its model, owner and settings."""
    return {
        "model": thread.model,
        "owner": thread.owner,
        "system": thread.system,
        "max_context_tokens": thread.max_context_tokens,
        "metadata": dict(thread.metadata),
    }


def _extra(extra: object) -> object:
    """`window_messages(extra=...)` with LangChain messages in OpenAI form."""
    if isinstance(extra, BaseMessage):
        return to_openai_message(extra)
    if isinstance(extra, Sequence) and not isinstance(extra, (str, bytes)):
        return [to_openai_message(m) if isinstance(m, BaseMessage) else m for m in extra]
    return extra


def to_openai_message(message: BaseMessage) -> dict[str, Any]:
    """A LangChain message as a validated OpenAI-format dict (what contextkit stores).

    Raises `contextkit.ValidationError` for what an OpenAI chat message cannot hold (e.g. a
    `FunctionMessage`, a tool call without an id, an unsupported content block).
    """
    if not isinstance(message, BaseMessage):
        raise ValidationError(f"expected a LangChain message, got {type(message).__name__}")
    role = _role_of(message)
    reasoning: list[str] = []
    out: dict[str, Any] = {
        "role": role,
        "content": _content_to_openai(message.content, role, reasoning),
    }
    if message.name is not None and role != Role.TOOL.value:
        out["name"] = message.name
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
    if isinstance(message, AIMessage):
        calls = _tool_calls_to_openai(message)
        if calls:
            out["tool_calls"] = calls
            if out["content"] == "":
                out["content"] = None  # the API's form for a tool-call-only turn
        kept = message.additional_kwargs.get("reasoning_content")
        if kept is not None:
            out["reasoning_content"] = kept
        elif reasoning:
            out["reasoning_content"] = "\n\n".join(reasoning)
    return Message.parse(out).to_openai()


def from_openai_message(message: object) -> BaseMessage:
    """An OpenAI-format message (dict, openai SDK object or `contextkit.Message`) for LangChain."""
    m = Message.parse(message)
    content = _content_from_openai(m)
    if m.role is Role.USER:
        return HumanMessage(content=content, name=m.name)
    if m.role is Role.ASSISTANT:
        calls: list[ToolCall] = []
        invalid: list[InvalidToolCall] = []
        for call in m.tool_calls:
            name, text = call.function.name, call.function.arguments
            try:
                args = json.loads(text)
            except ValueError:
                args = None
            if isinstance(args, dict):
                calls.append(_tool_call(name=name, args=args, id=call.id))
            else:
                invalid.append(_invalid_tool_call(name=name, args=text, id=call.id, error=None))
        extra: dict[str, Any] = {}
        if m.reasoning_content is not None:
            extra["reasoning_content"] = m.reasoning_content
        return AIMessage(
            content=content,
            name=m.name,
            tool_calls=calls,
            invalid_tool_calls=invalid,
            additional_kwargs=extra,
        )
    if m.role is Role.TOOL:
        return ToolMessage(content=content, tool_call_id=m.tool_call_id)
    if m.role is Role.DEVELOPER:
        return SystemMessage(
            content=content, name=m.name, additional_kwargs={_DEVELOPER_KEY: "developer"}
        )
    return SystemMessage(content=content, name=m.name)


def _role_of(message: BaseMessage) -> str:
    if isinstance(message, AIMessage):
        return Role.ASSISTANT.value
    if isinstance(message, HumanMessage):
        return Role.USER.value
    if isinstance(message, ToolMessage):
        return Role.TOOL.value
    if isinstance(message, SystemMessage):
        role = message.additional_kwargs.get(_DEVELOPER_KEY, Role.SYSTEM.value)
        if role not in (Role.SYSTEM.value, Role.DEVELOPER.value):
            raise ValidationError(f"SystemMessage {_DEVELOPER_KEY} must be 'system' or 'developer'")
        return str(role)
    if isinstance(message, ChatMessage):
        return message.role  # Message.parse rejects roles an OpenAI chat API does not take
    raise ValidationError(
        f"{type(message).__name__} is not supported: store Human, AI, System, Tool or "
        "ChatMessage messages (legacy function messages: use tool calls)"
    )


def _content_to_openai(
    content: str | list[str | dict[str, Any]], role: str, reasoning: list[str]
) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        if not isinstance(block, Mapping):
            raise ValidationError(
                f"content[{i}] must be a string or a dict block, got {type(block).__name__}"
            )
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text")})
        elif kind == "image_url":
            parts.append({"type": "image_url", "image_url": block.get("image_url")})
        elif kind == "image":
            image: dict[str, Any] = {"url": _image_url(block, i)}
            detail = block.get("detail") or (block.get("extras") or {}).get("detail")
            if detail is not None:
                image["detail"] = detail
            parts.append({"type": "image_url", "image_url": image})
        elif role == Role.ASSISTANT.value and kind in _TOOL_CALL_BLOCKS:
            continue
        elif role == Role.ASSISTANT.value and isinstance(kind, str) and kind in _REASONING_BLOCKS:
            text = block.get(_REASONING_BLOCKS[kind])
            if isinstance(text, str) and text:
                reasoning.append(text)
        else:
            raise ValidationError(
                f"content[{i}] is a {kind!r:.40} block, which contextkit does not store; "
                "use text and image blocks"
            )
    if not parts and role == Role.ASSISTANT.value:
        return ""
    return parts


def _image_url(block: Mapping[str, Any], index: int) -> str:
    """The URL (http(s) or data:) of a LangChain v1/v0 or Anthropic `image` block."""
    url = block.get("url")
    if isinstance(url, str):
        return url
    data, mime = block.get("base64"), block.get("mime_type")
    if data is None and block.get("source_type") == "base64":
        data = block.get("data")
    source = block.get("source")
    if data is None and isinstance(source, Mapping):
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
        data, mime = source.get("data"), source.get("media_type")
    if isinstance(data, str) and isinstance(mime, str):
        return f"data:{mime};base64,{data}"
    raise ValidationError(
        f"content[{index}] is an image block without a URL or base64 data with its MIME type"
    )


def _tool_calls_to_openai(message: AIMessage) -> list[dict[str, Any]]:
    raw_calls = message.additional_kwargs.get("tool_calls")
    raw: dict[Any, Mapping[str, Any]] = {}
    if isinstance(raw_calls, Sequence):
        raw = {c.get("id"): c for c in raw_calls if isinstance(c, Mapping)}
    out = []
    for call in message.tool_calls:
        text = _verbatim_arguments(call, raw.get(call.get("id")))
        if text is None:
            text = json.dumps(call["args"], ensure_ascii=False)
        out.append(_openai_call(call.get("id"), call["name"], text))
    for bad in message.invalid_tool_calls:
        out.append(_openai_call(bad.get("id"), bad.get("name"), bad.get("args") or ""))
    return out


def _verbatim_arguments(call: ToolCall, raw: Mapping[str, Any] | None) -> str | None:
    """The provider's own arguments string for `call`, if it parses to the same arguments."""
    fn = raw.get("function") if raw is not None else None
    if not isinstance(fn, Mapping) or fn.get("name") != call["name"]:
        return None
    text = fn.get("arguments")
    if not isinstance(text, str):
        return None
    try:
        same = json.loads(text) == call["args"]
    except ValueError:
        return None
    return text if same else None


def _openai_call(call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    if not call_id:
        raise ValidationError(
            f"tool call {name!r:.80} has no id; contextkit needs tool call ids to pair each "
            "call with its ToolMessage"
        )
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _content_from_openai(message: Message) -> str | list[str | dict[str, Any]]:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return [part.to_openai() for part in message.content]
