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
except ImportError as exc:  # pragma: no cover - exercised only without langchain-core
    raise ImportError(
        "contextkit.integrations.langchain needs langchain-core; install it with: "
        f'pip install "contextkit[langchain]" ({exc})'
    ) from exc

from contextkit.errors import NotFound, ValidationError
from contextkit.thread import Thread
from contextkit.types import Message, Role

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

    Reads and writes go to the database every time (no cache), so several histories, or
    other code, can share a thread. `add_messages` is one transaction: all are stored, or
    none (an invalid message raises `contextkit.ValidationError` and writes nothing). The
    async variants are LangChain's defaults, which run these methods in an executor.

    `clear()` cannot remove messages from the thread (contextkit history is append-only):
    it deletes the thread, with its messages, summaries and usage records, and recreates it
    empty with the same id, owner and settings. Other handles on the old thread (the
    `Thread` this history was built from, other histories on it) are stale afterwards: use
    `history.thread`, or a fresh `store.thread(id, owner=...)`.
    """

    def __init__(self, thread: Thread) -> None:
        if not isinstance(thread, Thread):
            raise TypeError(
                f"ContextKitChatMessageHistory needs a contextkit Thread (store.thread(...)), "
                f"got {type(thread).__name__}"
            )
        super().__init__()
        self._thread = thread
        self.last_prompt: Prompt | None = None
        """The `contextkit.Prompt` of the last `window_messages()` call (its token count,
        window facts, `request()`); pass it to `thread.record(..., prompt=...)`."""

    @classmethod
    def from_store(
        cls,
        store: Store,
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
        """
        try:
            store.get_thread(thread_id, owner=owner)
        except NotFound:
            model = model or "deepseek-v4-flash"
        return cls(store.thread(thread_id, model=model, owner=owner, **thread_settings))

    def __repr__(self) -> str:
        return f"<ContextKitChatMessageHistory {self._thread!r}>"

    @property
    def thread(self) -> Thread:
        """The contextkit thread behind this history (a new handle after `clear()`)."""
        return self._thread

    @property
    def messages(self) -> list[BaseMessage]:
        """Every stored message of the thread, oldest first, as LangChain messages.

        The thread's `system` setting is not a stored message and is not included (it is in
        `window_messages()`).
        """
        return [from_openai_message(m) for m in self._thread.history()]

    @messages.setter
    def messages(self, value: list[BaseMessage]) -> None:
        raise AttributeError(
            "ContextKitChatMessageHistory.messages is read-only; use add_messages() or clear()"
        )

    def add_message(self, message: BaseMessage) -> None:
        """Store one message."""
        self._thread.append(to_openai_message(message))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store several messages in one transaction: all of them, or none."""
        self._thread.extend([to_openai_message(m) for m in messages])

    def clear(self) -> None:
        """Delete the thread and recreate it empty, with the same id, owner and settings.

        contextkit never removes single messages, so this is the only honest "clear": the
        stored history, summaries and usage/cost records of the thread are gone for good.
        It is two transactions (delete, then create); a reader in between sees `NotFound`.
        """
        old = self._thread
        with contextlib.suppress(NotFound):  # already deleted: recreate from our snapshot
            old.info()  # the current settings, in case they changed since this handle
            old.delete()
        self._thread = old.store.thread(
            old.id,
            model=old.model,
            owner=old.owner,
            system=old.system,
            max_context_tokens=old.max_context_tokens,
            metadata=dict(old.metadata),
        )
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
        `Prompt` is kept as `last_prompt`.
        """
        if isinstance(extra, BaseMessage):
            extra = to_openai_message(extra)
        elif isinstance(extra, Sequence) and not isinstance(extra, (str, bytes)):
            extra = [to_openai_message(m) if isinstance(m, BaseMessage) else m for m in extra]
        prompt = self._thread.prepare(max_tokens=max_tokens, extra=extra, **options)
        self.last_prompt = prompt
        return [from_openai_message(m) for m in prompt.messages]


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
