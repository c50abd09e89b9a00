"""History imported from another framework often has tool turns without `reasoning_content`.
In thinking mode DeepSeek answers such a prompt with HTTP 400 (our local server enforces the
same rule); contextkit sends those turns as a plain-text transcript instead, only while
thinking is on, and stores them unchanged."""

from __future__ import annotations

import openai
import pytest

import contextkit

IMPORTED = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_w1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_w1", "content": "18°C, light rain"},
    {"role": "assistant", "content": "It is 18°C with light rain in Paris."},
]


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def test_a_reasoning_less_tool_turn_does_not_break_thinking_calls(store, deepseek):
    t = store.thread("imported", model="deepseek-v4-flash")
    t.extend(IMPORTED)
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=300)
    reply = conv.send("And tomorrow?")  # thinking is on by default
    assert reply.finish_reason == "stop" and reply.reasoning_content
    sent = deepseek.requests[-1].body["messages"]
    assert all("tool_calls" not in m and m["role"] != "tool" for m in sent)
    call_text = sent[1]["content"]
    assert sent[1]["role"] == "assistant" and "weather" in call_text and "Paris" in call_text
    assert sent[2]["role"] == "user" and "18°C, light rain" in sent[2]["content"]
    assert sent[3] == {"role": "assistant", "content": "It is 18°C with light rain in Paris."}
    # counted exactly as sent, and stable: the next call starts with this call's messages
    assert reply.usage.prompt_tokens == reply.prompt.prompt_tokens
    conv.send("Thanks!")
    assert deepseek.requests[-1].body["messages"][: len(sent)] == sent
    # stored unchanged, and sent natively when thinking is off
    stored = list(t.messages())
    assert stored[1].tool_calls[0].id == "call_w1" and stored[2].role == "tool"
    off = conv.send("One more?", thinking=False)
    native = off.prompt.to_list()
    assert native[1]["tool_calls"][0]["id"] == "call_w1" and native[2]["role"] == "tool"


def test_turns_with_their_reasoning_stay_native(store, deepseek):
    t = store.thread("native", model="deepseek-v4-flash")
    with_reasoning = [dict(m) for m in IMPORTED]
    with_reasoning[1] = {**IMPORTED[1], "reasoning_content": "Look it up."}
    with_reasoning[3] = {**IMPORTED[3], "reasoning_content": "Report it."}
    t.extend(with_reasoning)
    reply = contextkit.Conversation(client(deepseek), t, max_tokens=300).send("And tomorrow?")
    sent = reply.prompt.to_list()
    assert sent[1]["tool_calls"][0]["id"] == "call_w1" and sent[2]["role"] == "tool"


@pytest.mark.parametrize("thinking", [True, False])
def test_the_current_tool_loop_stays_native(store, deepseek, thinking):
    """The model's own tool calls in this thread carry their reasoning: never transcribed."""
    from contextkit.testing.server import ScriptedReply, ScriptedToolCall

    t = store.thread("loop", model="deepseek-v4-flash")
    deepseek.script(
        ScriptedReply(tool_calls=[ScriptedToolCall("weather", '{"city": "Oslo"}')]),
        ScriptedReply(content="Cold."),
    )
    reply = contextkit.Conversation(client(deepseek), t, max_tokens=300).run(
        "Weather in Oslo?", tools={"weather": lambda city: "-3°C"}, thinking=thinking
    )
    assert reply.content == "Cold."
    second = deepseek.requests[-1].body["messages"]
    assert second[1]["tool_calls"] and second[2]["role"] == "tool"
