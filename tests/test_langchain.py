"""The LangChain chat message history adapter: the contract, the message mapping, a real
`RunnableWithMessageHistory` over a fake chat model, the budgeted window, and the async
form on the async store (run with `blockbuster` on: a blocking call in the loop fails)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from blockbuster import BlockingError, blockbuster_ctx
from conftest import Database, table_counts
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

import contextkit
from contextkit import AsyncOnlyError, Message, ValidationError
from contextkit.integrations.langchain import (
    ContextKitChatMessageHistory,
    from_openai_message,
    to_openai_message,
)

PNG = "data:image/png;base64,iVBORw0KGgo="

# RunnableWithMessageHistory is deprecated in langchain-core >= 1.3.3 (still supported).
_RWMH_DEPRECATED = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


def _tool_turn() -> list[BaseMessage]:
    """A user question, a reasoning tool-call turn, two tool results, the answer."""
    return [
        HumanMessage("Weather in Paris and Rome?", name="alice"),
        AIMessage(
            "",
            tool_calls=[
                {"name": "weather", "args": {"city": "Paris"}, "id": "call_1"},
                {"name": "weather", "args": {"city": "Rome", "unit": "°C"}, "id": "call_2"},
            ],
            additional_kwargs={"reasoning_content": "Two cities: two calls."},
        ),
        ToolMessage('{"temp": 18}', tool_call_id="call_1"),
        ToolMessage([{"type": "text", "text": "21 °C"}], tool_call_id="call_2"),
        AIMessage("Paris 18 °C, Rome 21 °C."),
    ]


@pytest.fixture
def history(store: contextkit.Store) -> ContextKitChatMessageHistory:
    return ContextKitChatMessageHistory(store.thread("lc", model="deepseek-v4-flash"))


# --- the BaseChatMessageHistory contract ----------------------------------------------------


def test_is_a_chat_message_history(history: ContextKitChatMessageHistory) -> None:
    assert isinstance(history, BaseChatMessageHistory)
    assert history.messages == []
    assert "lc" in repr(history)


def test_add_get_round_trip_keeps_order_and_types(history: ContextKitChatMessageHistory) -> None:
    turn = [SystemMessage("Be brief."), *_tool_turn()]
    history.add_messages(turn[:3])
    history.add_message(turn[3])
    history.add_messages(turn[4:])
    history.add_user_message("and Oslo?")
    history.add_ai_message("Oslo 9 °C.")
    got = history.messages
    assert got == [*turn, HumanMessage("and Oslo?"), AIMessage("Oslo 9 °C.")]
    assert [type(m).__name__ for m in got] == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "AIMessage",
        "HumanMessage",
        "AIMessage",
    ]
    call_turn = got[2]
    assert isinstance(call_turn, AIMessage)
    assert call_turn.tool_calls[1]["args"] == {"city": "Rome", "unit": "°C"}
    assert call_turn.additional_kwargs == {"reasoning_content": "Two cities: two calls."}
    assert isinstance(got[3], ToolMessage) and got[3].tool_call_id == "call_1"
    assert str(history)  # BaseChatMessageHistory.__str__ renders the buffer


def test_history_is_the_thread(store: contextkit.Store) -> None:
    history = ContextKitChatMessageHistory.from_store(store, "t", owner="alice", system="S.")
    history.add_messages(_tool_turn())
    thread = store.thread("t", owner="alice")  # a fresh handle sees what LangChain wrote
    assert len(thread) == 5
    stored = [m.to_openai() for m in thread.history()]
    assert stored[1] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Two cities: two calls.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome", "unit": "°C"}'},
            },
        ],
    }
    assert stored[0]["name"] == "alice"
    assert stored[3]["content"] == [{"type": "text", "text": "21 °C"}]
    # and what other contextkit code writes, LangChain reads
    thread.append({"role": "user", "content": "thanks"})
    assert history.messages[-1] == HumanMessage("thanks")


def test_add_messages_is_atomic(store: contextkit.Store) -> None:
    history = ContextKitChatMessageHistory.from_store(store, "t")
    before = table_counts(store)
    orphan = ToolMessage("x", tool_call_id="never-called")
    with pytest.raises(ValidationError, match="no unanswered tool call"):
        history.add_messages([HumanMessage("hi"), AIMessage("hello"), orphan])
    with pytest.raises(ValidationError, match="FunctionMessage"):
        history.add_messages([HumanMessage("hi"), FunctionMessage(content="x", name="f")])
    assert table_counts(store) == before
    assert history.messages == []


def test_clear_recreates_the_thread_empty_with_its_settings(store: contextkit.Store) -> None:
    history = ContextKitChatMessageHistory.from_store(
        store,
        "t",
        owner="bob",
        system="Be brief.",
        max_context_tokens=9_000,
        metadata={"app": "lc"},
    )
    original = history.thread
    history.add_messages(_tool_turn())
    store.thread("t", owner="bob").update(system="Changed elsewhere.")  # clear keeps these
    history.clear()
    assert history.messages == []
    fresh = store.thread("t", owner="bob")
    assert len(fresh) == 0
    assert (fresh.model, fresh.system, fresh.max_context_tokens, dict(fresh.metadata)) == (
        "deepseek-v4-flash",
        "Changed elsewhere.",
        9_000,
        {"app": "lc"},
    )
    assert table_counts(store)["threads"] == 1
    assert table_counts(store)["messages"] == 0
    assert history.thread is not original
    history.add_user_message("again")
    assert len(fresh) == 1
    history.clear()
    history.clear()  # idempotent; also after someone else deleted the thread
    history.thread.delete()
    history.clear()
    assert len(store.thread("t", owner="bob")) == 0


def test_async_variants(history: ContextKitChatMessageHistory) -> None:
    async def run() -> tuple[list[BaseMessage], list[BaseMessage]]:
        await history.aadd_messages(_tool_turn())
        got = await history.aget_messages()
        await history.aclear()
        return got, await history.aget_messages()

    got, after = asyncio.run(run())
    assert got == _tool_turn()
    assert after == []


def test_messages_is_read_only(history: ContextKitChatMessageHistory) -> None:
    with pytest.raises(AttributeError, match="read-only"):
        history.messages = [HumanMessage("x")]


def test_needs_a_thread(store: contextkit.Store) -> None:
    with pytest.raises(TypeError, match="contextkit Thread"):
        ContextKitChatMessageHistory(store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="for a Store use from_store"):
        asyncio.run(ContextKitChatMessageHistory.afrom_store(store, "t"))  # type: ignore[arg-type]


def test_from_store_keeps_the_model_with_none(sqlite_store: contextkit.Store) -> None:
    sqlite_store.thread("t", model="deepseek-v4-pro")
    history = ContextKitChatMessageHistory.from_store(sqlite_store, "t", model=None)
    assert history.thread.model == "deepseek-v4-pro"
    # a missing thread gets the default model (model=None only means "keep" for existing ones)
    fresh = ContextKitChatMessageHistory.from_store(sqlite_store, "missing", model=None)
    assert fresh.thread.model == "deepseek-v4-flash"


# --- the message mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "openai"),
    [
        (HumanMessage("hi"), {"role": "user", "content": "hi"}),
        (
            HumanMessage(
                [
                    "look:",
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                    {"type": "image", "url": "https://example.com/a.png"},
                    {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
                    {
                        "type": "image",
                        "source_type": "base64",
                        "data": "iVBORw0KGgo=",
                        "mime_type": "image/png",
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                ]
            ),
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look:"},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ],
            },
        ),
        (SystemMessage("rules"), {"role": "system", "content": "rules"}),
        (
            SystemMessage("dev", additional_kwargs={"__openai_role__": "developer"}),
            {"role": "developer", "content": "dev"},
        ),
        (ChatMessage(role="user", content="hey"), {"role": "user", "content": "hey"}),
        (
            ToolMessage("ok", tool_call_id="c1", name="weather", status="error"),
            {"role": "tool", "content": "ok", "tool_call_id": "c1"},
        ),
        (
            AIMessage(
                [
                    {"type": "reasoning", "reasoning": "think"},
                    {"type": "text", "text": "calling", "annotations": []},
                    {"type": "tool_call", "name": "f", "args": {}, "id": "c9"},
                ],
                tool_calls=[{"name": "f", "args": {}, "id": "c9"}],
            ),
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "calling"}],
                "reasoning_content": "think",
                "tool_calls": [
                    {"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
        ),
    ],
)
def test_to_openai(message: BaseMessage, openai: dict[str, Any]) -> None:
    assert to_openai_message(message) == openai


def test_provider_arguments_are_kept_verbatim() -> None:
    raw = '{ "city":"Paris" }'
    message = AIMessage(
        "",
        tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "c1"}],
        additional_kwargs={
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": raw}}
            ]
        },
    )
    assert to_openai_message(message)["tool_calls"][0]["function"]["arguments"] == raw
    stale = message.model_copy(
        update={"tool_calls": [{"name": "weather", "args": {"city": "Rome"}, "id": "c1"}]}
    )
    arguments = to_openai_message(stale)["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"city": "Rome"}


def test_invalid_tool_calls_round_trip(sqlite_store: contextkit.Store) -> None:
    message = AIMessage(
        "",
        invalid_tool_calls=[{"name": "f", "args": '{"broken', "id": "c1", "error": None}],
    )
    history = ContextKitChatMessageHistory.from_store(sqlite_store, "t")
    history.add_messages([HumanMessage("go"), message, ToolMessage("bad JSON", tool_call_id="c1")])
    got = history.messages[1]
    assert got == message
    assert isinstance(got, AIMessage) and got.tool_calls == []


def test_from_openai_accepts_dicts_and_messages() -> None:
    form = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "r",
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "1"}}
        ],
    }
    got = from_openai_message(form)
    assert isinstance(got, AIMessage)
    assert got.content == ""
    assert got.invalid_tool_calls[0]["args"] == "1"  # not a JSON object: kept as invalid
    assert from_openai_message(Message.parse(form)) == got
    assert to_openai_message(got) == Message.parse(form).to_openai()
    dev = from_openai_message({"role": "developer", "content": "d"})
    assert to_openai_message(dev) == {"role": "developer", "content": "d"}


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (FunctionMessage(content="x", name="f"), "FunctionMessage is not supported"),
        (ChatMessage(role="critic", content="x"), "role must be one of"),
        (AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": None}]), "has no id"),
        (HumanMessage([{"type": "audio", "base64": "AA=="}]), "'audio' block"),
        (HumanMessage([{"type": "image", "file_id": "f-1"}]), "without a URL"),
        (AIMessage([{"type": "image_url", "image_url": {"url": PNG}}]), "only allowed in user"),
        (HumanMessage("x", name="has space"), "name"),
        (
            SystemMessage("x", additional_kwargs={"__openai_role__": "tool"}),
            "must be 'system' or 'developer'",
        ),
        (HumanMessage([]), "empty list"),
    ],
)
def test_unsupported_messages_raise(message: BaseMessage, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        to_openai_message(message)


# --- RunnableWithMessageHistory over a fake chat model ---------------------------------------


@_RWMH_DEPRECATED
@pytest.mark.parametrize("history_key", [True, False], ids=["history_key", "prepended"])
def test_runnable_with_message_history(store: contextkit.Store, history_key: bool) -> None:
    seen: list[list[BaseMessage]] = []

    def capture(prompt: Any) -> Any:
        seen.append(prompt.to_messages() if hasattr(prompt, "to_messages") else list(prompt))
        return prompt

    replies: Iterator[AIMessage | str] = iter(
        [
            "Hello Ada.",
            AIMessage("Your name is Ada.", additional_kwargs={"reasoning_content": "recall"}),
            "Goodbye.",
        ]
    )
    model = GenericFakeChatModel(messages=replies)
    if history_key:
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be kind."), MessagesPlaceholder("history"), ("human", "{question}")]
        )
        chain: Any = prompt | RunnableLambda(capture) | model
        kwargs: dict[str, Any] = {
            "input_messages_key": "question",
            "history_messages_key": "history",
        }
    else:
        chain = RunnableLambda(capture) | model
        kwargs = {}
    with_history = RunnableWithMessageHistory(
        chain,
        lambda session_id: ContextKitChatMessageHistory.from_store(
            store, session_id, owner="u1", max_context_tokens=2_000
        ),
        **kwargs,
    )
    config: Any = {"configurable": {"session_id": "chat-1"}}
    questions = ["Hi, I am Ada.", "What is my name?", "Bye."]
    answers = []
    for question in questions:
        value: Any = {"question": question} if history_key else [HumanMessage(question)]
        answers.append(with_history.invoke(value, config=config).content)
    assert answers == ["Hello Ada.", "Your name is Ada.", "Goodbye."]

    thread = store.thread("chat-1", owner="u1")  # fresh handle: persisted in contextkit
    assert len(thread) == 6
    assert [(m.role.value, m.text) for m in thread.history()] == [
        ("user", "Hi, I am Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ada."),
        ("user", "Bye."),
        ("assistant", "Goodbye."),
    ]
    assert thread.get(4).reasoning_content == "recall"
    # the third call saw the first two turns, loaded from the store, then the question
    assert [m.content for m in seen[2] if not isinstance(m, SystemMessage)] == [
        "Hi, I am Ada.",
        "Hello Ada.",
        "What is my name?",
        "Your name is Ada.",
        "Bye.",
    ]

    # the budgeted window: within a small context, newest turn last, lossless mapping
    history = ContextKitChatMessageHistory(thread)
    window = history.window_messages(max_tokens=100)
    prompt_ = history.last_prompt
    assert prompt_ is not None
    assert prompt_.prompt_tokens + 100 <= thread.max_context_tokens
    assert [to_openai_message(m) for m in window] == prompt_.to_list()
    assert window[-1] == AIMessage("Goodbye.")


@_RWMH_DEPRECATED
def test_runnable_with_message_history_async(sqlite_store: contextkit.Store) -> None:
    model = GenericFakeChatModel(messages=iter(["one", "two", "three"]))
    with_history = RunnableWithMessageHistory(
        model, lambda sid: ContextKitChatMessageHistory.from_store(sqlite_store, sid)
    )
    config: Any = {"configurable": {"session_id": "a"}}

    async def run() -> None:
        for text in ("1", "2", "3"):
            await with_history.ainvoke([HumanMessage(text)], config=config)

    asyncio.run(run())
    assert [m.text for m in sqlite_store.thread("a").history()] == [
        "1",
        "one",
        "2",
        "two",
        "3",
        "three",
    ]


# --- the budgeted window --------------------------------------------------------------------


def test_window_stays_within_a_small_budget(store: contextkit.Store) -> None:
    history = ContextKitChatMessageHistory.from_store(
        store, "w", system="You are terse.", max_context_tokens=400
    )
    for i in range(30):
        history.add_messages(
            [
                HumanMessage(f"Question {i}: tell me something about the number {i}."),
                AIMessage(f"Answer {i}: {i} is a number, one of many numbers we know of."),
            ]
        )
    assert len(history.messages) == 60
    window = history.window_messages(max_tokens=64)
    prompt = history.last_prompt
    assert prompt is not None
    assert prompt.prompt_tokens + 64 <= 400
    counted = contextkit.count_messages([to_openai_message(m) for m in window])
    assert counted == prompt.prompt_tokens
    assert 2 < len(window) < 60
    assert window[0] == SystemMessage("You are terse.")
    assert window[-1] == history.messages[-1]
    # stable: the same window again (cache-friendly), and `extra` rides along unstored
    again = history.window_messages(max_tokens=64, extra=[SystemMessage("It is Monday.")])
    assert again[:-1] == window
    assert again[-1] == SystemMessage("It is Monday.")
    assert len(history.thread) == 60


def test_from_store_opens_an_existing_thread_as_it_is(store: contextkit.Store) -> None:
    """The default model only applies to a new thread; other settings must match."""
    store.thread("pro", model="deepseek-v4-pro", owner="bob", system="Be brief.")
    history = ContextKitChatMessageHistory.from_store(store, "pro", owner="bob")
    assert (history.thread.model, history.thread.system) == ("deepseek-v4-pro", "Be brief.")
    with pytest.raises(contextkit.ValidationError, match=r"thread\.update"):
        ContextKitChatMessageHistory.from_store(store, "pro", owner="bob", system="Other.")
    fresh = ContextKitChatMessageHistory.from_store(store, "new", owner="bob")
    assert fresh.thread.model == "deepseek-v4-flash"


# --- the async form: on the async store, never blocking the event loop -----------------------

T = TypeVar("T")


def unblocked(url: str, body: Callable[[contextkit.AsyncStore], Awaitable[T]]) -> T:
    """`body(async_store)` on a fresh event loop, with blockbuster on for every module: any
    blocking call (file, socket, sqlite3, sleep, contended lock) in the loop raises.

    Outside the check: opening and closing the store (SQLAlchemy's engine setup resolves the
    SQLite path with `os.path.abspath`), and the first token count of the process, which
    loads the DeepSeek tokenizer from its package files (done here, before the loop).
    """
    contextkit.count_messages([{"role": "user", "content": "warm up"}])

    async def main() -> T:
        astore = await contextkit.open_async(url)
        try:
            with blockbuster_ctx():
                return await body(astore)
        finally:
            await astore.close()

    return asyncio.run(main())


def test_blockbuster_is_on_in_unblocked(sqlite_store: contextkit.Store) -> None:
    """The harness itself: a blocking call inside `unblocked` fails (so a pass means something)."""
    history = ContextKitChatMessageHistory.from_store(sqlite_store, "sync")

    async def body(astore: contextkit.AsyncStore) -> list[BaseMessage]:
        # the sync store's I/O, in the loop (contextkit reports the driver's error as StoreError)
        with pytest.raises((BlockingError, contextkit.StoreError), match="Blocking call to"):
            history.add_user_message("blocks")
        # a sync-backed history's async variants run the sync methods in a worker thread
        await history.aadd_messages([HumanMessage("fine")])
        return await history.aget_messages()

    assert unblocked(str(sqlite_store.url), body) == [HumanMessage("fine")]


def test_async_history_round_trip(database: Database) -> None:
    async def write(astore: contextkit.AsyncStore) -> tuple[list[BaseMessage], ...]:
        history = await ContextKitChatMessageHistory.afrom_store(
            astore, "t", owner="alice", system="S.", max_context_tokens=9_000, metadata={"k": 1}
        )
        assert history.is_async
        assert isinstance(history.thread, contextkit.AsyncThread)
        await history.aadd_messages(_tool_turn())
        got = await history.aget_messages()
        window = await history.awindow_messages(max_tokens=100, extra=SystemMessage("Monday."))
        prompt = history.last_prompt
        assert prompt is not None
        assert prompt.prompt_tokens + 100 <= 9_000
        assert [to_openai_message(m) for m in window] == prompt.to_list()
        return got, window

    got, window = unblocked(database.url, write)
    assert got == _tool_turn()
    store = contextkit.open(database.url)  # what the async history wrote, the sync one reads
    try:
        synced = ContextKitChatMessageHistory.from_store(store, "t", owner="alice")
        assert synced.messages == got
        assert synced.window_messages(max_tokens=100, extra=SystemMessage("Monday.")) == window
        assert (window[0], window[-1]) == (SystemMessage("S."), SystemMessage("Monday."))
        store.thread("t", owner="alice").update(system="Changed elsewhere.")  # clear keeps it
    finally:
        store.close()

    async def clear(astore: contextkit.AsyncStore) -> list[BaseMessage]:
        history = await ContextKitChatMessageHistory.afrom_store(astore, "t", owner="alice")
        old = history.thread
        await history.awindow_messages(max_tokens=100)
        await history.aclear()
        assert history.thread is not old
        assert history.last_prompt is None
        assert await history.aget_messages() == []
        await history.aclear()  # idempotent, also after someone else deleted the thread
        await history.thread.delete()  # type: ignore[misc]
        await history.aclear()
        await history.aadd_messages([HumanMessage("again")])
        return await history.aget_messages()

    assert unblocked(database.url, clear) == [HumanMessage("again")]
    store = contextkit.open(database.url)
    try:
        thread = store.thread("t", owner="alice")
        assert (thread.model, thread.system, thread.max_context_tokens, dict(thread.metadata)) == (
            "deepseek-v4-flash",
            "Changed elsewhere.",
            9_000,
            {"k": 1},
        )
        assert [m.text for m in thread.history()] == ["again"]
        assert table_counts(store)["threads"] == 1
    finally:
        store.close()


def test_async_history_has_no_sync_methods(database: Database) -> None:
    """On the async store, a sync call raises AsyncOnlyError (naming the awaited method)
    before any I/O: it would block the loop. Nothing is written."""

    async def body(astore: contextkit.AsyncStore) -> None:
        history = await ContextKitChatMessageHistory.afrom_store(astore, "t")
        await history.aadd_messages([HumanMessage("kept")])
        calls: list[tuple[Callable[[], object], str]] = [
            (lambda: history.messages, "aget_messages"),
            (lambda: str(history), "aget_messages"),
            (lambda: history.add_message(HumanMessage("x")), "aadd_messages"),
            (lambda: history.add_user_message("x"), "aadd_messages"),
            (lambda: history.add_ai_message("x"), "aadd_messages"),
            (lambda: history.add_messages([HumanMessage("x")]), "aadd_messages"),
            (history.clear, "aclear"),
            (lambda: history.window_messages(max_tokens=10), "awindow_messages"),
        ]
        for call, instead in calls:
            with pytest.raises(AsyncOnlyError, match=f"await history.{instead}") as err:
                call()
            assert isinstance(err.value, contextkit.ContextKitError)
            assert isinstance(err.value, RuntimeError)
        assert await history.aget_messages() == [HumanMessage("kept")]

    unblocked(database.url, body)


def test_from_async_store_opens_on_first_await(database: Database) -> None:
    """`from_store(async_store, ...)` does no I/O (a sync `get_session_history` can return
    it); it checks its arguments at once and opens the thread on the first awaited call."""

    async def body(astore: contextkit.AsyncStore) -> None:
        history = ContextKitChatMessageHistory.from_store(
            astore, "lazy", owner="bob", system="Be brief."
        )
        assert history.is_async
        assert "not opened yet" in repr(history)
        with pytest.raises(AsyncOnlyError, match=r"await history\.athread\(\)"):
            _ = history.thread
        with pytest.raises(AsyncOnlyError, match="aget_messages"):
            _ = history.messages
        with pytest.raises(contextkit.NotFound):
            await astore.get_thread("lazy", owner="bob")  # not created yet
        # two concurrent first calls: one thread, both writes
        await asyncio.gather(
            history.aadd_messages([HumanMessage("a")]), history.aadd_messages([HumanMessage("b")])
        )
        thread = await history.athread()
        assert thread is history.thread
        assert (thread.model, thread.system) == ("deepseek-v4-flash", "Be brief.")
        assert sorted(m.text for m in await history.aget_messages()) == ["a", "b"]
        assert [t.id async for t in astore.threads(owner="bob")] == ["lazy"]
        assert "not opened yet" not in repr(history)

        # arguments are checked at once, as store.thread() checks them
        with pytest.raises(ValidationError, match="thread id"):
            ContextKitChatMessageHistory.from_store(astore, "")
        with pytest.raises(ValidationError, match="owner"):
            ContextKitChatMessageHistory.from_store(astore, "t", owner=7)  # type: ignore[arg-type]
        with pytest.raises(contextkit.UnknownModelError):
            ContextKitChatMessageHistory.from_store(astore, "t", model="no-such-model")
        # settings that differ from the stored ones: reported by the first awaited call
        other = ContextKitChatMessageHistory.from_store(astore, "lazy", owner="bob", system="X")
        with pytest.raises(ValidationError, match=r"thread\.update"):
            await other.aget_messages()
        with pytest.raises(ValidationError, match=r"thread\.update"):
            await ContextKitChatMessageHistory.afrom_store(astore, "lazy", owner="bob", system="X")
        # an existing thread keeps its model; a new one gets the default
        await astore.thread("pro", model="deepseek-v4-pro")
        pro = ContextKitChatMessageHistory.from_store(astore, "pro")
        assert (await pro.athread()).model == "deepseek-v4-pro"
        fresh = await ContextKitChatMessageHistory.afrom_store(astore, "new", model=None)
        assert fresh.thread.model == "deepseek-v4-flash"
        # an AsyncThread made elsewhere works as well
        wrapped = ContextKitChatMessageHistory(await astore.thread("lazy", owner="bob"))
        assert len(await wrapped.aget_messages()) == 2

    unblocked(database.url, body)


@_RWMH_DEPRECATED
def test_runnable_with_message_history_on_the_async_store(database: Database) -> None:
    model = GenericFakeChatModel(messages=iter(["Hello Ada.", "Your name is Ada.", "Bye."]))
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be kind."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    seen: list[int] = []

    def count(value: Any) -> Any:
        seen.append(len(value.to_messages()))
        return value

    async def body(astore: contextkit.AsyncStore) -> list[str]:
        chain = RunnableWithMessageHistory(
            prompt | RunnableLambda(count) | model,
            lambda session_id: ContextKitChatMessageHistory.from_store(
                astore, session_id, owner="u1"
            ),
            input_messages_key="question",
            history_messages_key="history",
        )
        config: Any = {"configurable": {"session_id": "chat-1"}}
        answers = []
        for question in ("Hi, I am Ada.", "What is my name?"):
            reply = await chain.ainvoke({"question": question}, config=config)
            answers.append(reply.content)
        async for chunk in chain.astream({"question": "Bye."}, config=config):
            answers.append(chunk.content)
        return answers

    answers = unblocked(database.url, body)
    assert "".join(answers[2:]) == "Bye."
    assert answers[:2] == ["Hello Ada.", "Your name is Ada."]
    assert seen == [2, 4, 6]  # system + history loaded from the store + the question
    store = contextkit.open(database.url)
    try:
        assert [(m.role.value, m.text) for m in store.thread("chat-1", owner="u1").history()] == [
            ("user", "Hi, I am Ada."),
            ("assistant", "Hello Ada."),
            ("user", "What is my name?"),
            ("assistant", "Your name is Ada."),
            ("user", "Bye."),
            ("assistant", "Bye."),
        ]
    finally:
        store.close()


def test_sync_history_awindow_messages(store: contextkit.Store) -> None:
    history = ContextKitChatMessageHistory.from_store(store, "w", system="S.")
    history.add_messages([HumanMessage("hi"), AIMessage("hello")])
    window = asyncio.run(history.awindow_messages(max_tokens=50))
    assert window == history.window_messages(max_tokens=50)
    assert window == [SystemMessage("S."), HumanMessage("hi"), AIMessage("hello")]
    assert history.last_prompt is not None
    assert not history.is_async
