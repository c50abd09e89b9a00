"""Conversation over the real openai SDK and real HTTP against the local DeepSeek server."""

from __future__ import annotations

import asyncio
import io
import warnings

import openai
import pytest
from conftest import table_counts
from PIL import Image

import contextkit
from contextkit.conversation import LengthWarning
from contextkit.errors import ImageError
from contextkit.testing.server import Reply, ToolCall


def client(server, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", **kw)


def test_plain_chat_records_reply_usage_and_cost(store, deepseek):
    t = store.thread("c", model="deepseek-v4-flash", system="You are terse.")
    conv = contextkit.Conversation(client(deepseek), t)
    r = conv.send("Hello there, who are you?", max_tokens=200)
    assert r.content.startswith("Echo") and r.reasoning_content
    assert r.finish_reason == "stop" and not r.truncated
    assert r.usage.prompt_tokens == r.prompt.prompt_tokens
    spec = contextkit.get_model("deepseek-v4-flash")
    expected = (
        r.usage.cache_hit_tokens * 0.028
        + r.usage.cache_miss_tokens * 0.14
        + r.usage.completion_tokens * 0.28
    ) / 1e6
    assert r.cost_usd == pytest.approx(expected, abs=1e-15)
    assert (
        spec.cost(r.usage.cache_hit_tokens, r.usage.cache_miss_tokens, r.usage.completion_tokens)
        == r.cost_usd
    )
    st = t.stats()
    assert st.calls == 1 and st.messages == 2 and st.cost_usd == pytest.approx(r.cost_usd)
    # the reply's reasoning is stored, and stripped from the next prompt (no tool calls)
    assert [m.reasoning_content is not None for m in t.messages()] == [False, True]
    r2 = conv.send("And then?")
    assert "reasoning_content" not in r2.prompt.to_list()[2]


def test_fifty_turns_predictions_match_the_server(store, deepseek):
    t = store.thread(
        "long", model="deepseek-v4-flash", system="You help.", max_context_tokens=1_500
    )
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=300)
    hits = compactions = 0
    for i in range(50):
        r = conv.send(f"Question {i}: tell me about item {i * 7} and its colour, briefly.")
        assert r.usage.prompt_tokens == r.prompt.prompt_tokens, i
        assert r.usage.cache_hit_tokens == r.predicted_cache_hit_tokens, i
        assert r.prompt.prompt_tokens + 300 <= 1_500
        hits += r.usage.cache_hit_tokens
        compactions += r.prompt.moved
    st = t.stats()
    assert st.calls == 50 and st.compactions >= 1
    assert st.cache_hit_ratio > 0.5
    assert st.predicted_cache_hit_tokens == st.cache_hit_tokens == hits
    assert len(list(t.history())) == 100


def test_streaming_records_complete_and_cut_streams(store, deepseek):
    t = store.thread("s", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek, max_retries=0), t)
    stream = conv.send("stream please", stream=True)
    kinds = [d.kind for d in stream]
    assert "reasoning" in kinds and "content" in kinds
    assert kinds.index("reasoning") < kinds.index("content")
    assert stream.reply is not None and stream.reply.usage.prompt_tokens > 0
    assert t.stats().calls == 1 and len(t) == 2
    # a stream abandoned halfway keeps what arrived (see test_stream_interrupt.py)
    partial = conv.send("again", stream=True)
    for _ in partial:
        break
    assert partial.reply is not None and partial.reply.interrupted
    assert len(t) == 4 and t.stats().calls == 2
    # a connection dropped mid-stream keeps what arrived too
    deepseek.fail(drop_mid_stream=True)
    broken = conv.send("once more", stream=True)
    with pytest.raises(openai.APIConnectionError):
        list(broken)
    assert broken.reply is not None and broken.reply.interrupted
    assert len(t) == 6 and t.stats().calls == 3
    # and the thread is still valid for the next call
    assert conv.send("last").content


def test_thinking_off(store, deepseek):
    t = store.thread("n", model="deepseek-v4-flash")
    r = contextkit.Conversation(client(deepseek), t).send("hi", thinking=False)
    assert r.reasoning_content is None
    assert deepseek.requests[-1].body["thinking"] == {"type": "disabled"}


def test_fifty_step_tool_loop_in_thinking_mode(store, deepseek):
    t = store.thread("agent", model="deepseek-v4-flash", max_context_tokens=20_000)
    steps = [
        Reply(
            reasoning=f"step {i}: need more data", tool_calls=[ToolCall("lookup", f'{{"n": {i}}}')]
        )
        for i in range(49)
    ]
    deepseek.script(*steps, Reply(content="All done.", reasoning="finished"))
    seen = []

    def lookup(n: int) -> dict:
        """Look up a record."""
        seen.append(n)
        if n == 7:
            raise KeyError("record 7 is missing")
        return {"n": n, "value": n * n}

    conv = contextkit.Conversation(client(deepseek), t, max_tokens=500)
    reply = conv.run("Research all records.", tools={"lookup": lookup}, max_steps=60)
    assert reply.content == "All done." and reply.steps == 50
    assert seen == list(range(49))
    statuses = [r.status for r in deepseek.requests]
    assert statuses == [200] * 50  # never a 400: reasoning was replayed on every step
    tool_msgs = [m for m in t.messages() if m.role.value == "tool"]
    assert "KeyError" in tool_msgs[7].content
    assert t.stats().calls == 50


def image_bytes(fmt: str, size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (10, 120, 200)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_images_are_sent_and_counted(store, deepseek, fmt):
    t = store.thread(f"img-{fmt}", model="deepseek-v4-flash")
    r = contextkit.Conversation(client(deepseek), t).send(
        "what is this?", images=[image_bytes(fmt)]
    )
    assert r.usage.prompt_tokens == r.prompt.prompt_tokens
    part = r.prompt.to_list()[0]["content"][1]
    assert part["image_url"]["url"].startswith("data:image/")
    assert contextkit.image_tokens(64, 48) == 85 + 170


def test_oversized_image_is_resized_and_corrupt_rejected(store, deepseek, tmp_path):
    t = store.thread("big-img", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t)
    path = tmp_path / "huge.png"
    Image.new("RGB", (5000, 3000), (1, 2, 3)).save(path)
    r = conv.send("big one", images=[path])
    assert r.usage.prompt_tokens == r.prompt.prompt_tokens
    before = table_counts(store)
    with pytest.raises(ImageError):
        conv.send("broken", images=[image_bytes("JPEG")[:100]])
    assert table_counts(store) == before


def test_429_storm_survived_without_duplicates(store, deepseek):
    t = store.thread("storm", model="deepseek-v4-flash")
    deepseek.fail(429, times=4, retry_after=0)
    conv = contextkit.Conversation(client(deepseek, max_retries=5), t)
    r = conv.send("are you there?")
    assert r.content and len(t) == 2 and t.stats().calls == 1
    assert [x.status for x in deepseek.requests] == [429] * 4 + [200]
    # a call that fails for good leaves one user message and a valid thread
    deepseek.fail(500, times=10)
    with pytest.raises(openai.InternalServerError):
        conv.send("second", idempotency_key="q2")
    assert len(t) == 3
    deepseek.reset()
    again = conv.send("second", idempotency_key="q2")  # the retry does not append twice
    assert again.content and len(t) == 4


def test_length_is_surfaced(store, deepseek):
    t = store.thread("len", model="deepseek-v4-flash")
    deepseek.script(Reply(content="word " * 200))
    with pytest.warns(LengthWarning):
        r = contextkit.Conversation(client(deepseek), t).send("long answer", max_tokens=20)
    assert r.truncated and r.finish_reason == "length"


def test_async_conversation(store, deepseek):
    t = store.thread("async", model="deepseek-v4-flash")

    async def go():
        aclient = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="test")
        astore = await contextkit.open_async(store.url)
        conv = contextkit.AsyncConversation(aclient, await astore.get_thread(t.id))
        r = await conv.send("hello async")
        stream = await conv.send("stream async", stream=True)
        text = await stream.text()
        deepseek.script(
            Reply(reasoning="r", tool_calls=[ToolCall("add", '{"a": 2, "b": 3}')]),
            Reply(content="5", reasoning="sum"),
        )

        async def add(a: int, b: int) -> int:
            """Add two numbers."""
            return a + b

        final = await conv.run("2+3?", tools={"add": add})
        await aclient.close()
        return r, text, final

    r, text, final = asyncio.run(go())
    assert r.content and text and final.content == "5"
    assert [m.content for m in t.messages() if m.role.value == "tool"] == ["5"]
    assert t.stats().calls == 4


def test_tool_schema_from_signature():
    def search(query: str, limit: int = 5, exact: bool = False) -> list:
        """Search the catalogue.

        Longer text."""
        return []

    schema = contextkit.tool_schema(search)
    assert schema["function"]["name"] == "search"
    assert schema["function"]["description"] == "Search the catalogue."
    params = schema["function"]["parameters"]
    assert params["properties"] == {
        "query": {"type": "string"},
        "limit": {"type": "integer"},
        "exact": {"type": "boolean"},
    }
    assert params["required"] == ["query"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")


def test_run_stops_at_max_steps_with_every_tool_call_answered(store, deepseek):
    t = store.thread("cut", model="deepseek-v4-flash")
    deepseek.script(
        Reply(reasoning="a", tool_calls=[ToolCall("nope", "{}"), ToolCall("echo", "[1]")]),
        Reply(reasoning="b", tool_calls=[ToolCall("echo", "not json")]),
        Reply(content="never reached", reasoning="c"),
    )

    def echo(x: str) -> str:
        """Echo."""
        return x

    conv = contextkit.Conversation(client(deepseek), t)
    reply = conv.run("go", tools={"echo": echo}, max_steps=2)
    assert reply.steps == 2 and reply.tool_calls and t.stats().calls == 2
    results = [m.content for m in t.messages() if m.role.value == "tool"]
    assert results[0] == "Error: unknown tool 'nope'; available: ['echo']"
    assert results[1] == "Error: arguments must be a JSON object"
    assert results[2].startswith("Error: arguments are not valid JSON (")
    assert len(results) == 3  # the last reply's calls answered: the thread stays valid
    assert conv.send(None).content == "never reached"


def test_public_surface():
    conversation = contextkit.conversation
    assert conversation.LengthWarning is contextkit.errors.LengthWarning
    assert set(conversation.__all__) == {
        "AsyncConversation",
        "AsyncReplyStream",
        "Conversation",
        "Delta",
        "LengthWarning",
        "Reply",
        "ReplyStream",
        "tool_schema",
    }
    for name in conversation.__all__:
        assert getattr(contextkit, name) is getattr(conversation, name)


CLOCK = {"type": "function", "function": {"name": "now", "description": "The time."}}
WEATHER = {"type": "function", "function": {"name": "weather", "description": "The weather."}}


def test_a_changed_tool_set_warns_once_and_is_counted_as_a_prefix_break(store, deepseek):
    """DeepSeek renders the tools into the system prompt: a new tool set re-renders every
    earlier turn, so the server's cache misses from the first tool schema on."""
    t = store.thread("tools", model="deepseek-v4-flash", system="You are terse.")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", contextkit.CacheWarning)
        first = conv.send("What time is it?", tools=[CLOCK])
        same = conv.send("And now?", tools=[CLOCK])  # same tools: the prefix extends
    assert same.prompt.prefix_break is None and same.usage.cache_hit_tokens > 0
    with pytest.warns(contextkit.CacheWarning, match="tool set of thread 'tools'"):
        changed = conv.send("And the weather?", tools=[CLOCK, WEATHER])
    assert changed.prompt.prefix_break == "tools"
    # the server's cache hit stops inside the system prompt, before the tools block
    assert changed.usage.cache_hit_tokens < first.usage.prompt_tokens
    assert changed.usage.cache_hit_tokens == changed.predicted_cache_hit_tokens
    with warnings.catch_warnings():
        warnings.simplefilter("error", contextkit.CacheWarning)  # once per thread handle
        dropped = conv.send("Thanks.")
    assert dropped.prompt.prefix_break == "tools"
    toggled = conv.send("Think hard.", tools=[CLOCK, WEATHER], thinking=False)
    assert toggled.prompt.prefix_break == "tools"
    again = conv.send("Briefly.", tools=[CLOCK, WEATHER], thinking=True)
    assert again.prompt.prefix_break == "mode"
    assert t.stats().prefix_breaks == {"mode": 1, "tools": 3}


def test_prefix_break_sees_the_effort_the_template_applies(store, deepseek):
    """GA renders thinking without an effort as `high`: asking for `high` breaks nothing."""
    t = store.thread("effort", model="deepseek-v4-flash")
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=100)
    conv.send("one")
    assert conv.send("two", reasoning_effort="high").prompt.prefix_break is None
    assert conv.send("three", reasoning_effort="max").prompt.prefix_break == "mode"
    with pytest.warns(contextkit.CacheWarning):
        conv.send("four", tools=[CLOCK])
    # once per thread: neither this handle nor a second one on the same store warns again
    other = contextkit.Conversation(client(deepseek), store.thread("effort"), max_tokens=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", contextkit.CacheWarning)
        assert conv.send("five", tools=[CLOCK, WEATHER]).prompt.prefix_break == "tools"
        assert other.send("six", tools=[WEATHER]).prompt.prefix_break == "tools"


def test_a_restarted_server_reusing_response_ids_loses_no_reply(store):
    """Provider ids are not unique across servers and restarts (this one restarts at 1):
    every reply is stored with its usage; dedupe is on contextkit's own per-call key."""
    from contextkit.testing.server import serve

    t = store.thread("restart", model="deepseek-v4-flash")
    for attempt in range(2):
        with serve() as server:  # a fresh server: its first id again
            conv = contextkit.Conversation(client(server), t, max_tokens=100)
            conv.send(f"question {attempt}")
            conv.send("same words")  # the same reply text under the same provider id
    messages = list(t.messages())
    assert [m.role for m in messages] == ["user", "assistant"] * 4
    assert t.stats().calls == 4
    # recording the same prompt's response again (a retry of record) still adds nothing
    t.append({"role": "user", "content": "once more"})
    prompt = t.prepare(max_tokens=100)
    response = {
        "id": "chatcmpl-00000001",
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt.prompt_tokens, "completion_tokens": 1},
    }
    first = t.record(response)
    assert t.record(response).seq == first.seq and t.stats().calls == 5


def test_a_run_resumes_after_a_crash_left_tool_calls_unanswered(store, deepseek):
    """A process died between the model's tool call and its result: the next process sees
    the pending calls and `run(None, ...)` executes them and goes on."""
    t = store.thread("crashed", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "Stock of TENT-2P and PACK-40?"})
    t.append(
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Look both up.",
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "stock", "arguments": '{"sku": "TENT-2P"}'}},
                {"id": "c2", "type": "function",
                 "function": {"name": "stock", "arguments": '{"sku": "PACK-40"}'}},
            ],
        }
    )  # fmt: skip
    t.append({"role": "tool", "tool_call_id": "c1", "content": "12"})  # c2 never answered
    fresh = store.thread("crashed")  # the next process
    assert [(c.id, c.function.arguments) for c in fresh.pending_tool_calls()] == [
        ("c2", '{"sku": "PACK-40"}')
    ]
    seen = []

    def stock(sku: str) -> int:
        seen.append(sku)
        return 0

    deepseek.script(Reply(content="TENT-2P: 12, PACK-40: sold out."))
    reply = contextkit.Conversation(client(deepseek), fresh).run(None, tools={"stock": stock})
    assert seen == ["PACK-40"] and reply.content == "TENT-2P: 12, PACK-40: sold out."
    assert fresh.pending_tool_calls() == []
    assert [m.role for m in fresh.messages()] == ["user", "assistant", "tool", "tool", "assistant"]
