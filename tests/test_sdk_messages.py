"""The openai SDK's own message objects are accepted and come back unchanged."""

from __future__ import annotations

import json

from openai.types.chat import ChatCompletion, ChatCompletionMessage

import contextkit


def _completion(message: dict[str, object]) -> ChatCompletion:
    """A ChatCompletion parsed by the SDK from a DeepSeek-shaped JSON body."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "deepseek-v4-flash",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    return ChatCompletion.model_validate(json.loads(json.dumps(body)))


def test_chat_completion_message_round_trips(store: contextkit.Store) -> None:
    t = store.thread("sdk", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "Weather in Oslo?"})
    raw = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "Call the weather tool for Oslo.",
        "tool_calls": [
            {
                "id": "call_0_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    sdk_msg = _completion(raw).choices[0].message
    assert isinstance(sdk_msg, ChatCompletionMessage)
    stored = t.append(sdk_msg)
    assert stored.reasoning_content == "Call the weather tool for Oslo."
    assert stored.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    assert t.get(2).to_openai() == raw
    # and what we give back is accepted by the SDK's own model again
    again = ChatCompletionMessage.model_validate(t.get(2).to_openai())
    assert again.tool_calls is not None and again.tool_calls[0].id == "call_0_abc"


def test_plain_sdk_answer(store: contextkit.Store) -> None:
    t = store.thread("sdk", model="deepseek-v4-flash")
    msg = ChatCompletionMessage(role="assistant", content="Hello there.")
    assert t.append(msg).to_openai() == {"role": "assistant", "content": "Hello there."}


def test_sdk_refusal_becomes_content(store: contextkit.Store) -> None:
    t = store.thread("sdk", model="deepseek-v4-flash")
    msg = ChatCompletionMessage(role="assistant", content=None, refusal="I can't help with that.")
    assert t.append(msg).content == "I can't help with that."


def test_sdk_param_typed_dicts(store: contextkit.Store) -> None:
    from openai.types.chat import ChatCompletionUserMessageParam

    t = store.thread("sdk", model="deepseek-v4-flash")
    param: ChatCompletionUserMessageParam = {"role": "user", "content": "typed"}
    assert t.append(param).to_openai() == {"role": "user", "content": "typed"}
