"""format="anthropic": the same window, valid against the anthropic SDK's request types."""

from __future__ import annotations

import base64
import io
import itertools

import pydantic
from anthropic.types import MessageParam, TextBlockParam
from PIL import Image


def png_data_url() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_anthropic_request_shape(store):
    t = store.thread("a", model="deepseek-v4-flash", system="You are careful.")
    t.append({"role": "user", "content": "Remember: code word is kiwi."}, pinned=True)
    t.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": png_data_url()}},
            ],
        }
    )
    t.append({"role": "assistant", "content": "A red square.", "reasoning_content": "look"})
    t.append({"role": "user", "content": "weather in Paris?"})
    t.append(
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "call tool",
            "tool_calls": [
                {
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        }
    )
    t.append({"role": "tool", "tool_call_id": "tu_1", "content": "18C"})
    t.append({"role": "assistant", "content": "18C.", "reasoning_content": "done"})
    req = t.build(max_tokens=500, extra="Current time: 10:00", format="anthropic")

    pydantic.TypeAdapter(list[TextBlockParam]).validate_python(req["system"])
    pydantic.TypeAdapter(list[MessageParam]).validate_python(req["messages"])
    assert req["system"][0]["text"] == "You are careful."
    roles = [m["role"] for m in req["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # alternating
    blocks = [b for m in req["messages"] for b in m["content"]]
    kinds = [b["type"] for b in blocks]
    assert kinds.count("tool_use") == 1 and kinds.count("tool_result") == 1
    assert kinds.count("image") == 1
    thinking = [b["thinking"] for b in blocks if b["type"] == "thinking"]
    assert thinking == ["call tool", "done"]  # only the tool-call turn replays reasoning
    marked = [b for b in blocks if "cache_control" in b] + [
        b for b in req["system"] if "cache_control" in b
    ]
    assert 1 <= len(marked) <= 4
    # the volatile tail is not inside a cached prefix
    assert "cache_control" not in req["messages"][-1]["content"][-1]
    assert "Current time" in req["messages"][-1]["content"][-1]["text"]


def test_anthropic_prefix_is_stable(store):
    t = store.thread("b", model="deepseek-v4-flash", system="s")
    t.append({"role": "user", "content": "one"})
    first = t.build(max_tokens=10, format="anthropic")
    t.append({"role": "assistant", "content": "two"})
    t.append({"role": "user", "content": "three"})
    second = t.build(max_tokens=10, format="anthropic")
    assert second["system"] == first["system"]
    assert second["messages"][0]["content"][0]["text"] == "one"
