"""Malformed messages raise ValidationError and leave the database exactly as it was."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import table_counts

import contextkit
from contextkit import ValidationError


def _call(
    id: Any = "c9", name: Any = "lookup", arguments: Any = "{}", **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
        **extra,
    }


BAD: list[tuple[str, Any]] = [
    ("not a mapping", "hello"),
    ("a list", [{"role": "user", "content": "x"}]),
    ("None", None),
    ("bytes", b'{"role":"user"}'),
    ("missing role", {"content": "x"}),
    ("unknown role", {"role": "wizard", "content": "x"}),
    ("role not a string", {"role": 1, "content": "x"}),
    ("role in caps", {"role": "USER", "content": "x"}),
    ("typo in a key", {"role": "user", "contents": "x"}),
    ("user without content", {"role": "user"}),
    ("system content None", {"role": "system", "content": None}),
    ("content is an int", {"role": "user", "content": 42}),
    ("content is a dict", {"role": "user", "content": {"text": "x"}}),
    ("content is bytes", {"role": "user", "content": b"x"}),
    ("content empty list", {"role": "user", "content": []}),
    ("part not a mapping", {"role": "user", "content": ["x"]}),
    ("part without type", {"role": "user", "content": [{"text": "x"}]}),
    ("unknown part type", {"role": "user", "content": [{"type": "audio", "data": "x"}]}),
    ("text part without text", {"role": "user", "content": [{"type": "text"}]}),
    ("text part with int text", {"role": "user", "content": [{"type": "text", "text": 5}]}),
    (
        "image part without url",
        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
    ),
    (
        "image url not http or data",
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}],
        },
    ),
    (
        "image bad detail",
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "ultra"}}
            ],
        },
    ),
    (
        "image in assistant content",
        {
            "role": "assistant",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
        },
    ),
    ("NUL in content", {"role": "user", "content": "a\x00b"}),
    ("lone surrogate in content", {"role": "user", "content": "a\udc80b"}),
    ("name with spaces", {"role": "user", "content": "x", "name": "bad name"}),
    ("name too long", {"role": "user", "content": "x", "name": "n" * 65}),
    ("name not a string", {"role": "user", "content": "x", "name": 7}),
    ("name on tool message", {"role": "tool", "tool_call_id": "c1", "content": "x", "name": "f"}),
    ("assistant with nothing", {"role": "assistant", "content": None}),
    ("reasoning on a user message", {"role": "user", "content": "x", "reasoning_content": "hmm"}),
    ("reasoning not a string", {"role": "assistant", "content": "x", "reasoning_content": ["a"]}),
    ("tool_calls on a user message", {"role": "user", "content": "x", "tool_calls": [_call()]}),
    ("tool_calls not a list", {"role": "assistant", "content": None, "tool_calls": _call()}),
    ("tool_calls is a string", {"role": "assistant", "content": None, "tool_calls": "c9"}),
    (
        "tool call without id",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
    ),
    ("tool call empty id", {"role": "assistant", "content": None, "tool_calls": [_call(id="")]}),
    (
        "tool call id not a string",
        {"role": "assistant", "content": None, "tool_calls": [_call(id=9)]},
    ),
    (
        "tool call wrong type",
        {"role": "assistant", "content": None, "tool_calls": [{**_call(), "type": "code"}]},
    ),
    (
        "tool call without function",
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
    ),
    (
        "function name invalid",
        {"role": "assistant", "content": None, "tool_calls": [_call(name="get weather")]},
    ),
    (
        "function name missing",
        {"role": "assistant", "content": None, "tool_calls": [_call(name=None)]},
    ),
    (
        "arguments as a dict",
        {"role": "assistant", "content": None, "tool_calls": [_call(arguments={"city": "Paris"})]},
    ),
    (
        "duplicate call ids",
        {"role": "assistant", "content": None, "tool_calls": [_call(), _call()]},
    ),
    (
        "legacy function_call",
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
    ),
    ("tool without tool_call_id", {"role": "tool", "content": "x"}),
    ("tool_call_id not a string", {"role": "tool", "tool_call_id": 3, "content": "x"}),
    ("tool_call_id on user", {"role": "user", "content": "x", "tool_call_id": "c1"}),
    ("tool answering unknown call", {"role": "tool", "tool_call_id": "never-made", "content": "x"}),
    ("tool answering an answered call", {"role": "tool", "tool_call_id": "c1", "content": "again"}),
    ("tool content None", {"role": "tool", "tool_call_id": "c1", "content": None}),
]


@pytest.fixture
def thread(store: contextkit.Store) -> contextkit.Thread:
    t = store.thread("v", model="deepseek-v4-flash", owner="alice")
    t.append({"role": "user", "content": "start"})
    t.append({"role": "assistant", "content": None, "tool_calls": [_call(id="c1")]})
    t.append({"role": "tool", "tool_call_id": "c1", "content": "ok"})
    return t


def test_the_table_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize(("case", "message"), BAD, ids=[c for c, _ in BAD])
def test_malformed_message_is_rejected(
    store: contextkit.Store, thread: contextkit.Thread, case: str, message: Any
) -> None:
    before = table_counts(store)
    with pytest.raises(ValidationError) as err:
        thread.append(message)
    assert str(err.value), f"{case}: the error must say what was wrong"
    assert table_counts(store) == before
    assert len(thread) == 3


def test_bad_idempotency_keys(store: contextkit.Store, thread: contextkit.Thread) -> None:
    before = table_counts(store)
    for key in ["", "k" * 256, 5, "a\x00"]:
        with pytest.raises(ValidationError):
            thread.append({"role": "user", "content": "x"}, idempotency_key=key)  # type: ignore[arg-type]
    assert table_counts(store) == before


def test_errors_are_contextkit_errors() -> None:
    assert issubclass(ValidationError, contextkit.ContextKitError)
    for cls in (
        contextkit.ContextOverflowError,
        contextkit.PermissionDenied,
        contextkit.ImageError,
        contextkit.UnknownModelError,
        contextkit.NotFound,
    ):
        assert issubclass(cls, contextkit.ContextKitError)


def _tool(**function: Any) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "lookup", **function}}]


BAD_TOOLS: list[tuple[str, Any, str]] = [
    ("a string", "tools", "list of tool schemas"),
    ("a bare schema", _tool()[0], "list of tool schemas"),
    ("not a mapping", [5], "'type': 'function'"),
    ("type is not function", [{"type": "code", "function": {"name": "f"}}], "'type'"),
    ("name not a string", _tool(name=5), "function.name"),
    ("name with a space", _tool(name="look up"), "function.name"),
    ("name too long", _tool(name="f" * 65), "function.name"),
    ("description not a string", _tool(description=["x"]), "description"),
    ("parameters not an object", _tool(parameters="{}"), "parameters"),
    ("strict not a bool", _tool(strict="yes"), "strict"),
    ("a set in the schema", _tool(parameters={"enum": {1, 2}}), "JSON"),
    ("lone surrogate", _tool(description="\ud800"), "surrogate"),
]


@pytest.mark.parametrize(
    ("tools", "said"), [b[1:] for b in BAD_TOOLS], ids=[b[0] for b in BAD_TOOLS]
)
def test_malformed_tools_are_rejected_before_a_call(
    store: contextkit.Store, thread: contextkit.Thread, tools: Any, said: str
) -> None:
    thread.append({"role": "user", "content": "hi"})
    before = table_counts(store)
    with pytest.raises(ValidationError, match=said):
        thread.prepare(max_tokens=100, tools=tools)
    with pytest.raises(ValidationError, match=said):
        contextkit.count_messages([{"role": "user", "content": "hi"}], tools=tools)
    assert table_counts(store) == before
    assert thread.prepare(max_tokens=100, tools=_tool(description="ok")).messages
