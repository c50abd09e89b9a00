"""Streams cut short keep what arrived: the partial reply (flagged) and the call, billed.

Real openai SDK over real HTTP against the local DeepSeek server, on a real SQLite file and a
real PostgreSQL server, sync and async. The counted usage is checked against an independent
count (the tokenizer on the text the reader saw) and against what the server billed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
import sqlalchemy as sa

import contextkit
from contextkit.errors import ValidationError
from contextkit.testing.server import ScriptedReply, ScriptedToolCall

MODEL = "deepseek-v4-flash"
REASONING = "First I think about the ladder and then about the wall. "
CONTENT = "The ladder leans on the wall because the floor is flat and dry today."
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Find an order.",
        "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}},
    },
}


def client(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def aclient(server: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def count(text: str) -> int:
    return contextkit.count_tokens(text, model=MODEL) if text else 0


def call_rows(store: contextkit.Store) -> list[dict[str, Any]]:
    query = sa.text(
        "SELECT message_seq, finish_reason, usage_source, prompt_tokens, completion_tokens,"
        " reasoning_tokens, cache_hit_tokens, cache_miss_tokens, cost_usd FROM calls ORDER BY n"
    )
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def assert_counted(store: contextkit.Store, server: Any, reply: contextkit.Reply) -> None:
    """The reply and its call row carry counted usage: the prompt's exact count, the tokens
    of the text that arrived, the cache split unknown, all prompt tokens priced as misses."""
    billed = server.requests[-1].usage
    assert reply.usage_counted and reply.interrupted and reply.finish_reason == "interrupted"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == reply.prompt.prompt_tokens == billed["prompt_tokens"]
    expected = count(reply.reasoning_content or "") + count(reply.content)
    assert reply.usage.completion_tokens == expected
    assert reply.usage.reasoning_tokens == count(reply.reasoning_content or "")
    assert (reply.usage.cache_hit_tokens, reply.usage.cache_miss_tokens) == (0, 0)
    spec = contextkit.get_model(MODEL)
    assert reply.cost_usd == spec.cost(0, reply.usage.prompt_tokens, expected)
    row = call_rows(store)[-1]
    assert row["message_seq"] == reply.message.seq
    assert (row["finish_reason"], row["usage_source"]) == ("interrupted", "counted")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (billed["prompt_tokens"], expected)
    assert row["cost_usd"] == pytest.approx(reply.cost_usd)


def test_breaking_out_stores_the_partial_reply_and_counted_usage(store, deepseek):
    t = store.thread("brk", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
    stream = conv.send("Why does the ladder stand?", stream=True)
    seen = {"reasoning": "", "content": ""}
    contents = 0
    for delta in stream:
        seen[delta.kind] += delta.text
        contents += delta.kind == "content"
        if contents == 3:
            break
    reply = stream.reply
    assert reply is not None
    assert reply.content == seen["content"] == "The ladder leans "
    assert reply.reasoning_content == seen["reasoning"] == REASONING
    assert_counted(store, deepseek, reply)
    stored = list(t.messages())
    assert [m.role.value for m in stored] == ["user", "assistant"]
    assert stored[-1].text == "The ladder leans " and stored[-1].seq == reply.message.seq
    st = t.stats()
    assert (st.calls, st.interrupted_calls, st.counted_calls) == (1, 1, 1)
    assert st.completion_tokens == reply.usage.completion_tokens
    assert st.cost_usd == pytest.approx(reply.cost_usd)
    # iterating again yields nothing and records nothing more
    assert list(stream) == []
    stream.close()
    assert len(call_rows(store)) == 1
    # the thread stays valid: the next turn sees the partial answer
    nxt = conv.send("Go on.")
    assert nxt.content and not nxt.interrupted and not nxt.usage_counted
    assert {"role": "assistant", "content": "The ladder leans "} in nxt.prompt.to_list()
    assert [r["usage_source"] for r in call_rows(store)] == ["counted", "reported"]


def test_with_block_exit_records_once(store, deepseek):
    t = store.thread("with", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
    with conv.send("Tell me.", stream=True) as stream:
        it = iter(stream)
        first = [next(it) for _ in range(2)]
        assert stream.reply is None
    assert [d.kind for d in first] == ["reasoning", "reasoning"]
    reply = stream.reply
    assert reply is not None and reply.content == ""
    assert reply.reasoning_content == "First I "
    assert_counted(store, deepseek, reply)
    stream.close()  # idempotent: still one call, one assistant message
    del it  # the iterator's own finalization records nothing more
    assert len(call_rows(store)) == 1 and len(t) == 2
    assert conv.send("And?").content


def test_explicit_close_and_a_completed_stream(store, deepseek):
    t = store.thread("close", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    # a stream that completes is recorded as before, with the usage the server reported
    done = conv.send("Complete please.", stream=True)
    text = done.text()
    assert done.reply is not None and text == done.reply.content
    assert not done.reply.interrupted and not done.reply.usage_counted
    assert done.reply.usage is not None
    assert done.reply.usage.prompt_tokens == deepseek.requests[-1].usage["prompt_tokens"]
    assert done.reply.usage.cache_miss_tokens > 0
    done.close()
    assert [r["usage_source"] for r in call_rows(store)] == ["reported"]
    # close() mid-stream
    deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
    stream = conv.send("Again.", stream=True)
    for delta in stream:
        if delta.kind == "content":
            stream.close()
    assert stream.reply is not None and stream.reply.content == "The "
    assert_counted(store, deepseek, stream.reply)
    st = t.stats()
    assert (st.calls, st.interrupted_calls, st.counted_calls) == (2, 1, 1)


def test_closed_before_any_chunk_records_the_billed_prompt_only(store, deepseek):
    t = store.thread("none", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    with conv.send("Never read.", stream=True) as stream:
        pass
    assert stream.reply is None  # nothing arrived: no assistant message
    assert len(t) == 1
    (row,) = call_rows(store)
    billed = deepseek.requests[-1].usage["prompt_tokens"]
    spec = contextkit.get_model(MODEL)
    assert row["message_seq"] is None
    assert (row["finish_reason"], row["usage_source"]) == ("interrupted", "counted")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (billed, 0)
    assert row["cost_usd"] == pytest.approx(spec.cost(0, billed, 0))
    st = t.stats()
    assert (st.calls, st.interrupted_calls, st.counted_calls, st.messages) == (1, 1, 1, 1)
    # the user message is still the last one: sending without text retries the call
    retry = conv.send(None)
    assert retry.content and len(t) == 2


def test_a_connection_dropped_mid_stream_keeps_what_arrived(store, deepseek):
    t = store.thread("drop", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
    deepseek.fail(drop_mid_stream=True, after=15)  # role, 11 reasoning, 3 content pieces
    stream = conv.send("Drop me.", stream=True)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for delta in stream:
            seen.append(delta)
    reply = stream.reply
    assert reply is not None and reply.content == "The ladder leans "
    assert reply.reasoning_content == REASONING
    assert "".join(d.text for d in seen) == REASONING + "The ladder leans "
    assert_counted(store, deepseek, reply)
    # a connection dropped before the first chunk: the prompt is billed, nothing stored
    deepseek.fail(drop_mid_stream=True, after=0)
    empty = conv.send("Drop me early.", stream=True)
    with pytest.raises(openai.APIConnectionError):
        empty.text()
    assert empty.reply is None and len(t) == 3
    assert [r["message_seq"] for r in call_rows(store)] == [2, None]
    assert conv.send("Still there?").content and len(t) == 5


def test_reported_usage_wins_when_it_arrived(store, deepseek):
    t = store.thread("rep", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    # everything arrived, the usage chunk too, then the connection broke before [DONE]
    deepseek.fail(drop_mid_stream=True, after=10_000)
    stream = conv.send("Cut after the usage.", stream=True)
    with pytest.raises(openai.APIConnectionError):
        stream.text()
    billed = deepseek.requests[-1].usage
    reply = stream.reply
    assert reply is not None and reply.finish_reason == "stop"
    assert not reply.interrupted and not reply.usage_counted
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == billed["prompt_tokens"]
    assert reply.usage.completion_tokens == billed["completion_tokens"]
    assert reply.usage.cache_miss_tokens == billed["prompt_cache_miss_tokens"]
    # the reply finished but its usage chunk was lost: counted, and equal to what was billed
    deepseek.fail(drop_mid_stream=True, after=-1)
    lost = conv.send("Cut before the usage.", stream=True)
    with pytest.raises(openai.APIConnectionError):
        lost.text()
    billed = deepseek.requests[-1].usage
    assert lost.reply is not None and lost.reply.finish_reason == "stop"
    assert lost.reply.usage_counted and not lost.reply.interrupted
    assert lost.reply.usage is not None
    assert lost.reply.usage.prompt_tokens == billed["prompt_tokens"]
    assert lost.reply.usage.completion_tokens == billed["completion_tokens"]
    assert (
        lost.reply.usage.reasoning_tokens == billed["completion_tokens_details"]["reasoning_tokens"]
    )
    rows = call_rows(store)
    assert [(r["finish_reason"], r["usage_source"]) for r in rows] == [
        ("stop", "reported"),
        ("stop", "counted"),
    ]
    st = t.stats()
    assert (st.calls, st.interrupted_calls, st.counted_calls) == (2, 0, 1)


def test_a_tool_call_cut_mid_arguments_is_not_stored(store, deepseek):
    t = store.thread("tool", model=MODEL)
    conv = contextkit.Conversation(client(deepseek), t)
    deepseek.script(
        ScriptedReply(
            reasoning="I need the order.", tool_calls=[ScriptedToolCall("lookup", {"order": 12345})]
        )
    )
    stream = conv.send("Where is order 12345?", tools=[LOOKUP], stream=True)
    kinds = []
    for delta in stream:
        kinds.append(delta.kind)
        if kinds.count("tool_call") == 2:  # the name, then half of the arguments
            break
    reply = stream.reply
    assert reply is not None and reply.interrupted and reply.usage_counted
    assert reply.tool_calls == () and reply.reasoning_content == "I need the order."
    assert t.pending_tool_calls() == []
    assert all(not m.tool_calls for m in t.messages())
    # the cut call's text was billed: counted as the DSML block it was becoming
    from contextkit.tokens.deepseek_v4 import generated_text

    partial = [
        {"id": "x", "type": "function", "function": {"name": "lookup", "arguments": '{"order"'}}
    ]
    cut = generated_text(None, "", partial, finished=False)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == count("I need the order.") + count(cut)
    # the thread stays valid for the next build (no call without its result)
    deepseek.script(ScriptedReply("It shipped."))
    assert conv.send("Any news?", tools=[LOOKUP]).content == "It shipped."


def test_async_twins(store, deepseek):
    t = store.thread("async", model=MODEL)

    async def go() -> None:
        async with aclient(deepseek) as ac:
            astore = await contextkit.open_async(store.url)
            conv = contextkit.AsyncConversation(ac, await astore.get_thread(t.id))
            # break out of `async for`: the event loop finalizes the iterator, which records
            deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
            stream = await conv.send("Why?", stream=True)
            contents = 0
            async for delta in stream:
                contents += delta.kind == "content"
                if contents == 2:
                    break
            for _ in range(200):
                if stream.reply is not None:
                    break
                await asyncio.sleep(0.01)
            assert stream.reply is not None and stream.reply.content == "The ladder "
            assert_counted(store, deepseek, stream.reply)
            # `async with` exit
            deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
            async with await conv.send("Again?", stream=True) as inner:
                async for delta in inner:
                    if delta.kind == "content":
                        break
            assert inner.reply is not None and inner.reply.content == "The "
            assert_counted(store, deepseek, inner.reply)
            # aclose() before anything was read: the prompt only
            unread = await conv.send("Never read.", stream=True)
            await unread.aclose()
            await unread.aclose()
            assert unread.reply is None
            assert call_rows(store)[-1]["message_seq"] is None
            # a connection dropped mid-stream
            deepseek.script(ScriptedReply(CONTENT, reasoning=REASONING))
            deepseek.fail(drop_mid_stream=True, after=14)
            broken = await conv.send("Drop.", stream=True)
            with pytest.raises(openai.APIConnectionError):
                await broken.text()
            assert broken.reply is not None and broken.reply.content == "The ladder "
            assert_counted(store, deepseek, broken.reply)
            # a complete stream: reported usage, as before
            done = await conv.send("Complete.", stream=True)
            assert await done.text() and done.reply is not None
            assert not done.reply.interrupted and not done.reply.usage_counted

    asyncio.run(go())
    st = t.stats()
    assert (st.calls, st.interrupted_calls, st.counted_calls) == (5, 4, 4)
    assert [m.role.value for m in t.messages()] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_counted_usage_is_checked_on_record(store):
    t = store.thread("bad", model=MODEL)
    t.append({"role": "user", "content": "hi"})
    response = {
        "choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        "usage_source": "guessed",
    }
    with pytest.raises(ValidationError, match="usage_source"):
        t.record(response)
    assert len(t) == 1 and call_rows(store) == []


def test_the_server_cuts_a_stream_after_the_events_asked_for(deepseek):
    with pytest.raises(ValidationError):
        deepseek.fail(after=3)
    deepseek.script(ScriptedReply("a b c", reasoning=""))
    deepseek.fail(drop_mid_stream=True, after=3)
    got = []
    with client(deepseek) as c, pytest.raises(openai.APIConnectionError):
        for chunk in c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            got.append(chunk)
    assert [c.choices[0].delta.content for c in got] == [None, "a ", "b "]


def test_a_streamed_reply_that_thought_nothing_keeps_an_empty_reasoning():
    """DeepSeek streams `reasoning_content: ""` before a tool call it did not think about: the
    reply keeps "" (as a whole reply does), so its tool turn is not taken for one imported
    without reasoning (which thinking mode would send as a transcript)."""
    from contextkit.conversation.streaming import _StreamState
    from contextkit.prompt import Prompt

    state = _StreamState()
    state.feed({"id": "x", "choices": [{"delta": {"role": "assistant", "reasoning_content": ""}}]})
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    state.feed({"id": "x", "choices": [{"delta": {"tool_calls": [call]}}]})
    state.feed({"id": "x", "choices": [{"delta": {}, "finish_reason": "tool_calls"}]})
    prompt = Prompt(
        messages=({"role": "user", "content": "hi"},), model="deepseek-v4-flash",
        api_model="deepseek-v4-flash", max_tokens=10, budget=100, prompt_tokens=5,
        calibrated_tokens=5, structure="", thinking=True, reasoning_effort=None,
        window_start=1, moved=False, seqs=(1,), last_seq=1, sections=(0, 0, 0, 1, 0),
    )  # fmt: skip
    message = state.response(prompt, len)["choices"][0]["message"]
    assert message["reasoning_content"] == "" and message["tool_calls"][0]["id"] == "c1"
