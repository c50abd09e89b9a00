"""`send()`'s write contract over the real SDK and real HTTP: a send that fails before the
model call writes nothing, and a retried keyed send that already succeeded calls no model."""

from __future__ import annotations

import openai
import pytest
from conftest import table_counts

import contextkit
from contextkit.errors import ContextOverflowError, ValidationError

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def _with_open_tool_call(store) -> contextkit.Thread:
    t = store.thread("open-call", model="deepseek-v4-flash", max_context_tokens=8_000)
    t.append({"role": "user", "content": "Weather in Paris?"})
    t.append(
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "Look it up.",
            "tool_calls": [
                {"id": "w1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            ],
        }
    )  # fmt: skip
    return t


def test_failed_sends_leave_no_orphan_user_messages(store, deepseek):
    """Each check that can fail before the model call runs before the user message is
    written: three retries of a failing send leave the thread exactly as it was."""
    t = _with_open_tool_call(store)
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=500)
    before = table_counts(store)
    for _ in range(3):
        with pytest.raises(ValidationError, match="w1"):
            conv.send("And in Rome?")
    assert table_counts(store) == before

    fine = store.thread("fine", model="deepseek-v4-flash", max_context_tokens=8_000)
    conv = contextkit.Conversation(client(deepseek), fine, max_tokens=500)
    before = table_counts(store)
    failing = [
        ({"max_tokens": 8_000}, ContextOverflowError),  # max_tokens >= the window
        ({"max_tokens": 10**7}, ValidationError),  # past the model's output limit
        ({"tools": [{"type": "function"}]}, ValidationError),  # a malformed tool
        ({"extra": 42}, ValidationError),  # extra of the wrong type
        ({"reasoning_effort": "extreme"}, ValidationError),
    ]
    for options, error in failing:
        for _ in range(3):
            with pytest.raises(error):
                conv.send("Hello?", **options)
    with pytest.raises(ContextOverflowError):  # the user message alone overflows the budget
        conv.send("word " * 9_000)
    assert table_counts(store) == before
    assert deepseek.requests == []
    assert conv.send("Hello?").content  # and the thread works as before
    assert [m.role for m in fine.messages()] == ["user", "assistant"]


def test_a_keyed_send_that_succeeded_is_not_sent_again(store, deepseek):
    """A retry of a completed `send(idempotency_key=k)` returns the stored reply: no second
    model call, no second reply; a retry after a failed call does call the model."""
    t = store.thread("keyed", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    first = conv.send("What is 2+2?", idempotency_key="turn-1")
    again = conv.send("What is 2+2?", idempotency_key="turn-1")
    assert len(deepseek.requests) == 1
    assert again.message.seq == first.message.seq and again.content == first.content
    assert again.usage == first.usage and again.cost_usd == pytest.approx(first.cost_usd)
    assert again.replayed and not first.replayed
    assert [m.role for m in t.messages()] == ["user", "assistant"] and t.stats().calls == 1

    deepseek.fail(500, times=1)
    with pytest.raises(openai.InternalServerError):
        conv.send("And 3+3?", idempotency_key="turn-2")
    retried = conv.send("And 3+3?", idempotency_key="turn-2")  # the call failed: call again
    assert not retried.replayed and len(deepseek.requests) == 3
    assert [m.role for m in t.messages()] == ["user", "assistant"] * 2
    # the same key with other words is a caller error, not a silent replay
    with pytest.raises(ValidationError, match="turn-1"):
        conv.send("What is 5+5?", idempotency_key="turn-1")


def test_a_keyed_send_replays_on_the_async_twin(store, deepseek):
    import asyncio

    t = store.thread("keyed-async", model="deepseek-v4-flash")

    async def go() -> tuple[contextkit.Reply, contextkit.Reply]:
        aclient = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="test", max_retries=0)
        astore = await contextkit.open_async(store.url)
        at = await astore.get_thread(t.id)
        conv = contextkit.AsyncConversation(aclient, at, max_tokens=200)
        first = await conv.send("Hi", idempotency_key="a-1")
        return first, await conv.send("Hi", idempotency_key="a-1")

    first, again = asyncio.run(go())
    assert again.replayed and again.message.seq == first.message.seq
    assert len(deepseek.requests) == 1


def test_a_keyed_run_that_ended_is_not_run_again(store, deepseek):
    """`run(text, idempotency_key=k)` retried after it ended returns the reply that ended
    it (no model call, no tool run); retried after a failed step it goes on from there."""
    from contextkit.testing.server import ScriptedReply, ScriptedToolCall

    t = store.thread("keyed-run", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    ran = []

    def weather(city: str) -> str:
        ran.append(city)
        return "sunny"

    deepseek.script(
        ScriptedReply(tool_calls=[ScriptedToolCall("weather", {"city": "Paris"})]),
        ScriptedReply(content="Sunny in Paris."),
    )
    first = conv.run("Weather in Paris?", tools={"weather": weather}, idempotency_key="r-1")
    again = conv.run("Weather in Paris?", tools={"weather": weather}, idempotency_key="r-1")
    assert first.content == again.content == "Sunny in Paris." and again.replayed
    assert ran == ["Paris"] and len(deepseek.requests) == 2

    deepseek.script(ScriptedReply(tool_calls=[ScriptedToolCall("weather", {"city": "Rome"})]))
    deepseek.fail(500, times=1)  # the call fails: the user message is stored, no reply
    with pytest.raises(openai.InternalServerError):
        conv.run("And Rome?", tools={"weather": weather}, idempotency_key="r-2")
    deepseek.script(ScriptedReply(content="Sunny in Rome."))
    done = conv.run("And Rome?", tools={"weather": weather}, idempotency_key="r-2")
    assert done.content == "Sunny in Rome." and not done.replayed and ran == ["Paris", "Rome"]
    assert [m.role for m in t.messages()] == ["user", "assistant", "tool", "assistant"] * 2


def test_a_keyed_streamed_send_replays_the_stored_reply(store, deepseek):
    t = store.thread("keyed-stream", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    with conv.send("Hi there", stream=True, idempotency_key="s-1") as first:
        streamed = "".join(d.text for d in first if d.kind == "content")
    with conv.send("Hi there", stream=True, idempotency_key="s-1") as again:
        replayed = "".join(d.text for d in again if d.kind == "content")
    assert replayed == streamed == first.reply.content and again.reply.replayed
    assert len(deepseek.requests) == 1 and t.stats().calls == 1


def test_a_failed_send_with_an_image_stores_no_blob(store, deepseek):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="PNG")
    t = _with_open_tool_call(store)
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=500)
    before = table_counts(store)
    with pytest.raises(ValidationError, match="w1"):
        conv.send("What is in this picture?", images=[buf.getvalue()])
    assert table_counts(store) == before and before["blobs"] == 0


def test_a_keyed_send_whose_stream_was_cut_calls_again(store, deepseek):
    """A cut stream keeps what arrived, but it is no answer: the keyed retry calls again."""
    from contextkit.testing.server import ScriptedReply

    t = store.thread("cut-keyed", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    deepseek.script(ScriptedReply(content="The answer is a long sentence about many things."))
    deepseek.fail(drop_mid_stream=True, after=4)
    with (
        pytest.raises(openai.APIConnectionError),
        conv.send("Q?", stream=True, idempotency_key="q") as s,
    ):
        for _ in s:
            pass
    assert [m.role for m in t.messages()] == ["user", "assistant"]  # the fragment, kept
    retry = conv.send("Q?", idempotency_key="q")
    assert not retry.replayed and retry.finish_reason == "stop"
    assert len(deepseek.requests) == 2 and t.stats().calls == 2


def test_a_keyed_retry_overtaken_by_another_turn_is_refused(store, deepseek):
    """The call of A failed and B's turn followed: retrying A must not answer B's turn."""
    t = store.thread("overtaken", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    deepseek.fail(500, times=1)
    with pytest.raises(openai.InternalServerError):
        conv.send("Question A", idempotency_key="kA")
    conv.send("Question B", idempotency_key="kB")
    before = table_counts(store)
    with pytest.raises(ValidationError, match="kA"):
        conv.send("Question A", idempotency_key="kA")
    assert table_counts(store) == before


def test_unknown_or_reserved_create_arguments_write_nothing(store, deepseek):
    t = store.thread("kwargs", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    before = table_counts(store)
    with pytest.raises(ValidationError, match="temprature"):
        conv.send("Hi", temprature=0.2)
    with pytest.raises(ValidationError, match="messages"):
        conv.send("Hi", messages=[])
    assert table_counts(store) == before and deepseek.requests == []
    assert conv.send("Hi", temperature=0.2, extra_headers={"X-Trace": "1"}).content
