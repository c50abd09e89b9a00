"""The local DeepSeek-compatible server, driven by the real openai SDK over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from contextkit.cache import PrefixCacheModel
from contextkit.errors import ValidationError
from contextkit.testing.server import (
    REASONING_REQUIRED,
    DeepSeekServer,
    RecordedRequest,
    Reply,
    ToolCall,
    serve,
)
from contextkit.tokens import count_messages, count_tokens, render_prompt
from contextkit.tokens.deepseek_v4 import END_THINK, EOS, REASONING_EFFORT_MAX
from contextkit.tokens.encoding import encode

MODEL = "deepseek-v4-flash"
SYSTEM = (
    "You are a careful assistant for a hardware store. Answer in short, complete sentences, "
    "name the aisle where each product is found, mention safety gear for power tools, and "
    "never invent prices. When unsure, ask one clarifying question before answering. "
    "Store hours are 8am to 8pm on weekdays and 9am to 5pm on weekends."
)
NO_THINKING: dict[str, Any] = {"thinking": {"type": "disabled"}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "stock",
            "description": "Units in stock for a product.",
            "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[DeepSeekServer]:
    with serve() as srv:
        yield srv


@pytest.fixture
def srv(server: DeepSeekServer) -> DeepSeekServer:
    server.reset()
    return server


@pytest.fixture
def client(srv: DeepSeekServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=srv.base_url, api_key="test", max_retries=0) as c:
        yield c


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat(client: OpenAI, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=messages, **kwargs)


def bad_request(client: OpenAI, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, messages, **kwargs)
    assert info.value.status_code == 400
    body = info.value.response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_request_error"
    assert body["error"]["param"] is None
    return body["error"]


def extra(message: Any, name: str) -> Any:
    return (message.model_extra or {}).get(name)


def post_raw(srv: DeepSeekServer, data: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        srv.base_url + "/chat/completions",
        data=data,
        headers={"Content-Type": "application/json", "Authorization": "Bearer test"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_models_are_listed(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["deepseek-v4-flash", "deepseek-v4-pro"]
    assert client.models.retrieve("deepseek-v4-pro").id == "deepseek-v4-pro"


def test_a_completion_reports_exact_usage(srv: DeepSeekServer, client: OpenAI) -> None:
    messages = [{"role": "system", "content": SYSTEM}, user("Where are the drills?")]
    response = chat(client, messages)
    choice = response.choices[0]
    reasoning = extra(choice.message, "reasoning_content")
    assert choice.finish_reason == "stop"
    assert choice.message.content.startswith("Echo ")
    assert "Where are the drills?" in choice.message.content
    assert reasoning
    usage = response.usage
    assert usage.prompt_tokens == count_messages(messages, MODEL)
    assert usage.completion_tokens == count_tokens(reasoning) + count_tokens(choice.message.content)
    assert usage.completion_tokens_details.reasoning_tokens == count_tokens(reasoning)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    hit, miss = extra(usage, "prompt_cache_hit_tokens"), extra(usage, "prompt_cache_miss_tokens")
    assert (hit, miss) == (0, usage.prompt_tokens)
    assert usage.prompt_tokens_details.cached_tokens == 0
    (logged,) = srv.requests
    assert logged == RecordedRequest(
        "/chat/completions",
        {"model": MODEL, "messages": messages},
        200,
        usage.model_dump(exclude_none=True),
    )
    again = chat(client, messages)
    assert again.choices[0].message.content == choice.message.content


def test_streaming_sends_reasoning_then_content_then_usage(client: OpenAI) -> None:
    messages = [user("Do you sell ladders?")]
    chunks = list(
        chat(client, messages, stream=True, stream_options={"include_usage": True}, max_tokens=500)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    kinds = []
    reasoning = content = ""
    for chunk in chunks[1:-2]:
        delta = chunk.choices[0].delta
        if extra(delta, "reasoning_content"):
            kinds.append("reasoning")
            reasoning += extra(delta, "reasoning_content")
        if delta.content:
            kinds.append("content")
            content += delta.content
    assert kinds.index("content") > 0
    assert kinds == sorted(kinds, key=["reasoning", "content"].index)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.prompt_tokens == count_messages(messages, MODEL)
    assert usage.completion_tokens == count_tokens(reasoning) + count_tokens(content)
    assert usage.completion_tokens_details.reasoning_tokens == count_tokens(reasoning)
    plain = chat(client, messages)
    assert plain.choices[0].message.content == content
    assert extra(plain.choices[0].message, "reasoning_content") == reasoning
    no_usage = list(chat(client, messages, stream=True))
    assert all(c.usage is None and c.choices for c in no_usage)


def test_thinking_disabled_sends_no_reasoning(client: OpenAI) -> None:
    messages = [user("Hi")]
    response = chat(client, messages, extra_body=NO_THINKING)
    assert extra(response.choices[0].message, "reasoning_content") is None
    assert response.usage.completion_tokens_details.reasoning_tokens == 0
    assert response.usage.prompt_tokens == count_messages(messages, MODEL, thinking=False)
    for chunk in chat(client, messages, stream=True, extra_body=NO_THINKING):
        if chunk.choices:
            assert extra(chunk.choices[0].delta, "reasoning_content") is None
    enabled = chat(client, messages, extra_body={"thinking": {"type": "enabled"}})
    assert extra(enabled.choices[0].message, "reasoning_content")


def test_reasoning_effort_aliases_are_billed_as_their_level(client: OpenAI) -> None:
    messages = [user("Think hard.")]
    ultra = chat(client, messages, reasoning_effort="ultra")
    assert ultra.usage.prompt_tokens == count_messages(messages, MODEL, reasoning_effort="max")
    assert (
        ultra.usage.prompt_tokens
        > chat(client, messages, reasoning_effort="low").usage.prompt_tokens
    )
    assert bad_request(client, messages, reasoning_effort="extreme")["message"].startswith(
        "reasoning_effort"
    )


def test_an_extended_prompt_hits_the_cache_as_the_model_predicts(
    srv: DeepSeekServer, client: OpenAI
) -> None:
    model = PrefixCacheModel()
    first = [{"role": "system", "content": SYSTEM}, user("Where are the drills?")]
    r1 = chat(client, first)
    m1 = r1.choices[0].message
    reasoning = extra(m1, "reasoning_content")
    prompt1 = encode(render_prompt(first))
    assert len(prompt1) % 64 != 0
    model.request(prompt1, completion=encode(reasoning + END_THINK + m1.content + EOS))

    second = [*first, {"role": "assistant", "content": m1.content}, user("And the saws?")]
    r2 = chat(client, second)
    hit = extra(r2.usage, "prompt_cache_hit_tokens")
    assert hit > 0
    assert hit % 64 == 0
    expected = model.request(encode(render_prompt(second)))
    assert hit == expected.hit_tokens == len(prompt1) // 64 * 64
    assert extra(r2.usage, "prompt_cache_miss_tokens") == r2.usage.prompt_tokens - hit
    assert r2.usage.prompt_tokens_details.cached_tokens == hit

    pro = client.chat.completions.create(model="deepseek-v4-pro", messages=second)
    assert extra(pro.usage, "prompt_cache_hit_tokens") == 0  # one cache per model
    srv.reset_cache()
    assert extra(chat(client, second).usage, "prompt_cache_hit_tokens") == 0


def test_replayed_reasoning_of_a_tool_turn_hits_through_the_previous_output(
    srv: DeepSeekServer, client: OpenAI
) -> None:
    srv.script(Reply("", reasoning="Check the stock.", tool_calls=[("stock", '{"sku": "D1"}')]))
    first = [{"role": "system", "content": SYSTEM}, user("Is drill D1 in stock?")]
    m1 = chat(client, first, tools=TOOLS).choices[0].message
    replayed = m1.model_dump(exclude_none=True, exclude={"refusal", "annotations", "audio"})
    assert replayed["reasoning_content"] == "Check the stock."
    result = {"role": "tool", "tool_call_id": m1.tool_calls[0].id, "content": "12 units"}
    second = [*first, replayed, result]
    r2 = chat(client, second, tools=TOOLS)

    # The model's output is the replayed assistant message, reasoning included.
    prompt1 = encode(render_prompt(first, tools=TOOLS))
    output = encode(render_prompt([*first, replayed], tools=TOOLS))[len(prompt1) :]
    model = PrefixCacheModel()
    model.request(prompt1, completion=output)
    hit = extra(r2.usage, "prompt_cache_hit_tokens")
    assert hit == model.request(encode(render_prompt(second, tools=TOOLS))).hit_tokens
    assert hit == (len(prompt1) + len(output)) // 64 * 64 > 0


def test_a_prompt_over_the_window_is_refused(srv: DeepSeekServer, client: OpenAI) -> None:
    huge = [user("1a" * 340_000)]
    error = bad_request(client, huge, max_tokens=384_000)
    prompt = count_messages(huge)  # the GA template adds its `high` effort preamble
    assert prompt == count_messages(huge, thinking=False) + count_tokens(REASONING_EFFORT_MAX)
    assert error["message"] == (
        "This model's maximum context length is 1048576 tokens. However, you requested "
        f"{prompt + 384_000} tokens ({prompt} in the messages, 384000 in the completion). "
        "Please reduce the length of the messages or completion."
    )
    assert srv.requests[-1].status == 400
    assert srv.requests[-1].usage is None
    assert "valid range" in bad_request(client, [user("hi")], max_tokens=384_001)["message"]


@pytest.mark.parametrize("model", ["deepseek-chat", "deepseek-reasoner", "gpt-4o"])
def test_retired_and_unknown_models_do_not_exist(client: OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[user("hi")])
    message = info.value.response.json()["error"]["message"]
    assert "does not exist" in message
    assert repr(model) in message
    if model != "gpt-4o":
        assert "retired" in message


def test_tool_messages_need_their_call(client: OpenAI) -> None:
    orphan = [user("hi"), {"role": "tool", "tool_call_id": "call_9", "content": "42"}]
    assert "preceding message with 'tool_calls'" in bad_request(client, orphan)["message"]
    call = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "look it up",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "stock", "arguments": "{}"}}
        ],
    }
    wrong_id = [user("hi"), call, {"role": "tool", "tool_call_id": "call_2", "content": "42"}]
    assert "preceding message with 'tool_calls'" in bad_request(client, wrong_id)["message"]
    unanswered = [user("hi"), call, user("well?")]
    assert "call_1" in bad_request(client, unanswered)["message"]
    answered = [user("hi"), call, {"role": "tool", "tool_call_id": "call_1", "content": "42"}]
    assert chat(client, answered).choices[0].finish_reason == "stop"


def test_thinking_mode_requires_the_reasoning_of_tool_call_turns(client: OpenAI) -> None:
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "stock", "arguments": "{}"}}
        ],
    }
    result = {"role": "tool", "tool_call_id": "call_1", "content": "12"}
    answer = {"role": "assistant", "content": "12 in stock.", "reasoning_content": "easy"}
    history = [user("stock?"), call, result, answer, user("thanks")]
    assert bad_request(client, history)["message"] == REASONING_REQUIRED
    # The final answer of the tool turn needs its reasoning too.
    with_call_reasoning = [user("stock?"), {**call, "reasoning_content": "look"}, result]
    no_answer_reasoning = [
        *with_call_reasoning,
        {"role": "assistant", "content": "12."},
        user("ok"),
    ]
    assert bad_request(client, no_answer_reasoning)["message"] == REASONING_REQUIRED
    # Replayed in full, the same history is accepted.
    full = [*with_call_reasoning, answer, user("thanks")]
    assert chat(client, full).choices[0].finish_reason == "stop"
    # Not required on a turn without tool calls, nor with thinking disabled.
    plain_turn = [user("hi"), {"role": "assistant", "content": "hello"}, user("bye")]
    assert chat(client, plain_turn).choices[0].finish_reason == "stop"
    assert chat(client, history, extra_body=NO_THINKING).choices[0].finish_reason == "stop"


def test_images_are_measured_and_bad_ones_refused(client: OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": png(64, 48)}}
    good = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]
    assert chat(client, good).usage.prompt_tokens == count_messages(good, MODEL)
    broken = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
    bad = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, broken]}]
    assert "base64" in bad_request(client, bad)["message"]
    tiny = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png(8, 8)}}]}]
    bad_request(client, tiny)


def test_malformed_bodies_get_400_or_422(srv: DeepSeekServer) -> None:
    status, body = post_raw(srv, b"{not json")
    assert status == 400
    assert body["error"]["message"].startswith("Failed to parse the request body as JSON")
    status, body = post_raw(srv, json.dumps({"model": MODEL}).encode())
    assert status == 422
    assert "missing field `messages`" in body["error"]["message"]
    status, body = post_raw(srv, json.dumps({"model": MODEL, "messages": [{"x": 1}]}).encode())
    assert status == 422
    assert [r.status for r in srv.requests] == [400, 422, 422]


def test_scripted_tool_calls_drive_an_agent_loop(srv: DeepSeekServer, client: OpenAI) -> None:
    srv.script(
        Reply(
            "Let me check.",
            reasoning="Two lookups.",
            tool_calls=[("stock", '{"sku": "D1"}'), {"name": "stock", "arguments": {"sku": "S2"}}],
        ),
        Reply("", tool_calls=[ToolCall("stock", '{"sku": "L3"}')]),
        "Done: 12, 3 and 0 in stock.",
    )
    assert srv.pending_replies == 3
    messages: list[dict[str, Any]] = [user("Stock of D1, S2 and L3?")]
    ids: list[str] = []
    for _ in range(3):
        response = chat(client, messages, tools=TOOLS)
        message = response.choices[0].message
        turn = message.model_dump(exclude_none=True, exclude={"refusal", "annotations", "audio"})
        messages.append(turn)
        if not message.tool_calls:
            assert response.choices[0].finish_reason == "stop"
            break
        assert response.choices[0].finish_reason == "tool_calls"
        for call in message.tool_calls:
            ids.append(call.id)
            sku = json.loads(call.function.arguments)["sku"]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": f"{sku}: 1"})
    assert messages[-1]["content"] == "Done: 12, 3 and 0 in stock."
    assert len(set(ids)) == 3
    assert all(i.startswith("call_") for i in ids)
    assert messages[1]["tool_calls"][1]["function"]["arguments"] == '{"sku": "S2"}'
    assert messages[1]["reasoning_content"] == "Two lookups."
    assert srv.pending_replies == 0
    follow_up = chat(client, messages)
    assert follow_up.choices[0].message.content.startswith("Echo ")

    srv.script(Reply("", tool_calls=[("stock", '{"sku": "D1"}')]))
    streamed = list(chat(client, [user("D1?")], tools=TOOLS, stream=True))
    deltas = [c.choices[0].delta.tool_calls for c in streamed if c.choices[0].delta.tool_calls]
    assert deltas[0][0].function.name == "stock"
    assert deltas[0][0].id not in ids
    assert "".join(d[0].function.arguments or "" for d in deltas) == '{"sku": "D1"}'
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_max_tokens_truncates_with_finish_reason_length(
    srv: DeepSeekServer, client: OpenAI
) -> None:
    srv.script(Reply("word " * 200, reasoning="short"))
    response = chat(client, [user("Say a lot.")], max_tokens=50)
    choice = response.choices[0]
    assert choice.finish_reason == "length"
    assert response.usage.completion_tokens == 50
    assert count_tokens(choice.message.content) <= 50 - count_tokens("short")

    srv.script(Reply("never shown", reasoning="think " * 100))
    response = chat(client, [user("Think a lot.")], max_tokens=20)
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == ""
    assert response.usage.completion_tokens_details.reasoning_tokens == 20

    srv.script(Reply("word " * 200, finish_reason="content_filter"))
    streamed = list(
        chat(client, [user("Stream.")], max_tokens=30, extra_body=NO_THINKING, stream=True)
    )
    assert streamed[-1].choices[0].finish_reason == "length"
    srv.script(Reply("fine", finish_reason="content_filter"))
    assert chat(client, [user("x")]).choices[0].finish_reason == "content_filter"


def test_rate_limits_are_survived_by_the_sdk_retries(srv: DeepSeekServer) -> None:
    srv.fail(429, times=2)
    with OpenAI(base_url=srv.base_url, api_key="test", max_retries=3) as c:
        response = chat(c, [user("hi")])
    assert response.choices[0].finish_reason == "stop"
    assert [(r.status, r.fault) for r in srv.requests] == [
        (429, "status"),
        (429, "status"),
        (200, None),
    ]

    srv.clear_requests()
    srv.fail(429, times=2, retry_after=7, message="Rate Limit Reached")
    with OpenAI(base_url=srv.base_url, api_key="test", max_retries=0) as c:
        with pytest.raises(openai.RateLimitError) as info:
            chat(c, [user("hi")])
        assert info.value.response.headers["Retry-After"] == "7"
        assert info.value.response.json()["error"]["message"] == "Rate Limit Reached"
        with pytest.raises(openai.RateLimitError):
            chat(c, [user("hi")])
        assert chat(c, [user("hi")]).choices
    assert len(srv.requests) == 3


def test_server_errors_and_dropped_connections_are_retried(srv: DeepSeekServer) -> None:
    srv.fail(500)
    srv.fail(drop=True)
    with OpenAI(base_url=srv.base_url, api_key="test", max_retries=3) as c:
        assert chat(c, [user("hi")]).choices[0].finish_reason == "stop"
    assert [(r.status, r.fault) for r in srv.requests] == [
        (500, "status"),
        (None, "drop"),
        (200, None),
    ]
    srv.fail(drop=True)
    with (
        OpenAI(base_url=srv.base_url, api_key="test", max_retries=0) as c,
        pytest.raises(openai.APIConnectionError),
    ):
        chat(c, [user("hi")])


def test_a_stream_dropped_midway_raises_in_the_client(srv: DeepSeekServer, client: OpenAI) -> None:
    srv.fail(drop_mid_stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in chat(client, [user("Tell me a story about a ladder.")], stream=True):
            received.append(chunk)
    assert received
    assert all(c.choices[0].finish_reason is None for c in received)
    assert srv.requests[-1].fault == "drop_mid_stream"
    srv.fail(drop_mid_stream=True)
    with pytest.raises(openai.APIConnectionError):
        chat(client, [user("hi")])
    assert chat(client, [user("hi")]).choices


def test_the_async_client_works(srv: DeepSeekServer) -> None:
    async def run() -> None:
        async with AsyncOpenAI(base_url=srv.base_url, api_key="test", max_retries=2) as c:
            srv.fail(429)
            answers = await asyncio.gather(
                *(
                    c.chat.completions.create(model=MODEL, messages=[user(f"question {i}")])
                    for i in range(5)
                )
            )
            assert all(a.choices[0].message.content for a in answers)
            stream = await c.chat.completions.create(
                model=MODEL,
                messages=[user("stream please")],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].usage.prompt_tokens == count_messages([user("stream please")])

    asyncio.run(run())
    assert len(srv.requests) == 7


def test_the_api_key_can_be_required() -> None:
    with serve(api_key="sk-right") as srv:
        with (
            OpenAI(base_url=srv.base_url, api_key="sk-wrong", max_retries=0) as c,
            pytest.raises(openai.AuthenticationError),
        ):
            c.models.list()
        with OpenAI(base_url=srv.base_url + "/v1", api_key="sk-right", max_retries=0) as c:
            assert chat(c, [user("hi")]).choices


def test_the_module_runs_a_server_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "contextkit.testing.server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url:
            process.wait(timeout=10)
            pytest.fail(f"the server did not start: {process.stderr.read()}")
        assert base_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base_url + "/v1/models", timeout=10) as response:
            assert json.loads(response.read())["data"][0]["id"] == MODEL
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_scripts_and_faults_are_checked_when_given(srv: DeepSeekServer) -> None:
    assert Reply("x", tool_calls=[{"id": "c9", "function": {"name": "f", "arguments": {}}}]) == (
        Reply("x", tool_calls=[ToolCall("f", "{}", "c9")])
    )
    with pytest.raises(ValidationError):
        srv.script(Reply("x", tool_calls=["f"]))
    with pytest.raises(ValidationError):
        Reply(content=None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        srv.fail(drop=True, drop_mid_stream=True)
    with pytest.raises(ValidationError):
        srv.fail(200)
    with pytest.raises(ValidationError):
        srv.fail(times=0)
    assert srv.pending_replies == 0
