"""Input strategies: wrong types, bad text, ids, owners, models, settings, tools, messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

import contextkit

from .data import (
    CORRUPT_IMAGE_URLS,
    DEEP,
    HUGE,
    MAGIC,
    PNG64,
    PNG_GARBAGE_BODY,
    PNG_TRUNCATED,
    SQLISH,
    data_url,
    short_repr,
    tool_call,
)

VALID_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
valid_text = st.text(VALID_CHARS, max_size=30)
fresh_ids = st.uuids().map(lambda u: f"fz-{u.hex[:20]}")
BIG_INTS = (10**30, -(10**30), 2**63, -(2**63) - 1, 2**31, 2**64, 10**12)
ODD = (
    object(),
    set(),
    frozenset({"a"}),
    bytearray(b"x"),
    memoryview(b"xy"),
    Ellipsis,
    type,
    Decimal("1.5"),
    complex(1, 2),
    range(3),
    iter([1, 2]),
)
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(BIG_INTS),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.dictionaries(valid_text, st.integers(), max_size=2),
    st.sampled_from(ODD),
)
"""Values of the wrong type for a string argument (none is a str)."""


def rarely(rare: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> Any:
    """`rare` for a few percent of draws (1 MB strings are slow to tokenize), else `usual`."""
    return st.integers(0, 63).flatmap(lambda n: rare if n == 0 else usual)


bad_text = rarely(
    st.sampled_from([HUGE + "\x00", "\x00" + HUGE, HUGE + "\ud800"]),
    st.builds(
        lambda a, bad, b: a + bad + b,
        valid_text,
        st.sampled_from(["\x00", "\ud800", "\udfff", "\udc80\ud800"]),
        valid_text,
    ),
)
"""Strings no database stores faithfully: a NUL or a lone surrogate, sometimes in 1 MB."""
bad_ids = st.one_of(
    wrong_types,
    st.just(""),
    rarely(st.just(HUGE), st.just("i" * 256)),
    bad_text,
)
bad_owners = st.one_of(wrong_types.filter(lambda v: v is not None), st.just("o" * 256), bad_text)
KNOWN_MODELS = contextkit.known_models(aliases=True)
bad_models = st.one_of(
    wrong_types.filter(lambda v: v is not None),
    st.sampled_from(SQLISH),
    valid_text.filter(lambda s: s not in KNOWN_MODELS),
    bad_text,
    st.just("m" * 10_000),
)
bad_context_tokens = st.one_of(
    st.sampled_from([0, -1, -(10**30), 10**30, 2**63, 1_048_577, 10**12, True, False]),
    st.floats(),
    st.sampled_from(["1000", b"1000", [1000], Decimal(1000)]),
)
bad_system = st.one_of(wrong_types.filter(lambda v: v is not None), bad_text)
bad_metadata = st.one_of(
    st.sampled_from(
        [
            5,
            "str",
            ["a"],
            b"{}",
            {"a": object()},
            {"a": b"x"},
            {("t",): 1},
            {"a": "\ud800"},
            {"\ud800": 1},
            {"big": "x" * 70_000},
            {"a": {1, 2}},
            {"a": Decimal("1.5")},
            {"a": DEEP},
            {"a": [HUGE]},
        ]
    ),
    st.dictionaries(valid_text, bad_text.filter(lambda t: "\x00" not in t), min_size=1, max_size=2),
)
"""(A NUL is fine in metadata: JSON escapes it; a lone surrogate is not.)"""
bad_keys = st.one_of(
    wrong_types.filter(lambda v: v is not None), st.just(""), st.just("k" * 256), bad_text
)


def valid_message(role: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    user = valid_text.map(lambda t: {"role": "user", "content": t or "hi"})
    parts = valid_text.map(
        lambda t: {"role": "user", "content": [{"type": "text", "text": t or "hi"}]}
    )
    assistant = valid_text.map(lambda t: {"role": "assistant", "content": t or "ok"})
    calls = fresh_ids.map(
        lambda i: {"role": "assistant", "content": None, "tool_calls": [tool_call(i)]}
    )
    system = st.sampled_from(["system", "developer"]).map(lambda r: {"role": r, "content": "Be."})
    by_role = {"user": st.one_of(user, parts), "assistant": st.one_of(assistant, calls)}
    if role is not None:
        return by_role[role]
    return st.one_of(user, parts, assistant, calls, system)


class SDKLike:
    """An object with `model_dump`, like an openai SDK message; returns whatever it holds."""

    def __init__(self, dumped: Any) -> None:
        self.dumped = dumped

    def model_dump(self, **_: Any) -> Any:
        return self.dumped

    def __repr__(self) -> str:
        return f"SDKLike({short_repr(self.dumped)})"


@st.composite
def invalid_messages(draw: st.DrawFn) -> tuple[Any, str]:
    """A message every append must refuse, and a tag naming its defect."""
    base = dict(draw(valid_message()))
    kind = draw(
        st.sampled_from(
            [
                "not-a-message",
                "role",
                "unknown-key",
                "content:type",
                "content:none",
                "content:text",
                "content:parts",
                "image",
                "image:corrupt-body",
                "image:role",
                "name",
                "tool_calls:role",
                "tool_calls:junk",
                "tool_call_id",
                "tool_call_id:misplaced",
                "reasoning",
                "legacy",
                "sdk",
            ]
        )
    )
    if kind == "not-a-message":
        return draw(st.one_of(wrong_types, valid_text, bad_text, st.just([base]))), kind
    if kind == "sdk":
        return SDKLike(draw(st.one_of(wrong_types, st.just([base])))), kind
    if kind == "role":
        base["role"] = draw(
            st.one_of(
                wrong_types,
                st.sampled_from(["", "USER", "bot", "function", "user ", "user\x00", "\ud800"]),
                st.sampled_from(SQLISH),
            )
        )
    elif kind == "unknown-key":
        key = draw(st.one_of(valid_text, st.sampled_from(["contents", "Role", "id", "pinned", 1])))
        if key in base or key in ("role", "content", "name", "tool_calls", "tool_call_id"):
            key = f"x-{key}"
        if key in ("reasoning_content", "refusal", "annotations", "audio", "function_call"):
            key = f"x-{key}"
        base[key] = draw(st.one_of(st.none(), valid_text))
    elif kind == "content:type":
        base["content"] = draw(
            wrong_types.filter(lambda v: v is not None and not isinstance(v, (list, tuple)))
            | st.sampled_from([[], (), [[]], [None], [5], ["text"], [b"x"]])
        )
    elif kind == "content:none":
        base["content"] = None
        base.pop("tool_calls", None)
    elif kind == "content:text":
        base["content"] = draw(bad_text)
    elif kind == "content:parts":
        base["content"] = draw(
            st.lists(
                st.sampled_from(
                    [
                        {"type": "text"},
                        {"type": "text", "text": 5},
                        {"type": "text", "text": None},
                        {"type": "text", "text": "a\x00b"},
                        {"type": "text", "text": "\ud800"},
                        {"type": "texts", "text": "a"},
                        {"type": None, "text": "a"},
                        {"type": ["text"], "text": "a"},
                        {"text": "a"},
                        {"type": "image_url"},
                        {"type": "image_url", "image_url": None},
                        {"type": "image_url", "image_url": {"url": 5}},
                        {"type": "image_url", "image_url": {"uri": "https://x.org/a.png"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/", "detail": "ultra"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://x/", "detail": []}},
                        {"type": "input_audio", "input_audio": {"data": "AAAA"}},
                        "just text",
                        None,
                        5,
                    ]
                ),
                min_size=1,
                max_size=3,
            ).map(lambda junk: [{"type": "text", "text": "ok"}, *junk])
        )
    elif kind in ("image", "image:corrupt-body"):
        if kind == "image":
            url = draw(
                st.one_of(
                    st.sampled_from(CORRUPT_IMAGE_URLS),
                    st.binary(min_size=1, max_size=64)
                    .filter(lambda b: not b.startswith(MAGIC))
                    .map(data_url),
                )
            )
        else:  # a valid header on a corrupt body, or PNG bytes sent as JPEG
            url = draw(
                st.sampled_from(
                    [
                        data_url(PNG_TRUNCATED),
                        data_url(PNG_GARBAGE_BODY),
                        data_url(PNG64, "image/jpeg"),
                    ]
                )
            )
        detail = draw(st.sampled_from([None, "auto", "low", "high"]))
        image = {"url": url} if detail is None else {"url": url, "detail": detail}
        base = {"role": "user", "content": [{"type": "image_url", "image_url": image}]}
    elif kind == "image:role":
        role = draw(st.sampled_from(["assistant", "system", "developer"]))
        image = {"type": "image_url", "image_url": {"url": data_url(PNG64)}}
        base = {"role": role, "content": [{"type": "text", "text": "see"}, image]}
    elif kind == "name":
        bad_name = st.sampled_from(["", "a b", "n" * 65, "näme", "a\x00", "\ud800", 5, ["n"]])
        base["name"] = draw(bad_name)
        if draw(st.booleans()):
            base = {"role": "tool", "tool_call_id": "call_x", "content": "1", "name": "fine"}
    elif kind == "tool_calls:role":
        base = {
            "role": draw(st.sampled_from(["user", "system", "developer", "tool"])),
            "content": "x",
            "tool_calls": [tool_call(draw(fresh_ids))],
        }
        if base["role"] == "tool":
            base["tool_call_id"] = "call_x"
    elif kind == "tool_calls:junk":
        base = {"role": "assistant", "content": draw(st.sampled_from([None, "x"]))}
        i = draw(fresh_ids)
        base["tool_calls"] = draw(
            st.sampled_from(
                [
                    "call",
                    {"id": i},
                    5,
                    b"x",
                    [5],
                    [None],
                    ["call"],
                    [{"id": i}],
                    [{"id": i, "function": None}],
                    [{"id": i, "function": "get_weather"}],
                    [{"id": i, "function": {"name": "get_weather"}}],
                    [tool_call(i, name="bad name")],
                    [tool_call(i, name="")],
                    [tool_call(i, name="n" * 65)],
                    [tool_call(i, name=None)],
                    [tool_call(i, arguments={"city": "Paris"})],
                    [tool_call(i, arguments=None)],
                    [tool_call(i, arguments="\x00")],
                    [tool_call(i, arguments="\ud800")],
                    [tool_call(None)],
                    [tool_call(5)],
                    [tool_call("")],
                    [tool_call("c" * 256)],
                    [tool_call("a\x00b")],
                    [tool_call("\ud800")],
                    [{**tool_call(i), "type": "code"}],
                    [{**tool_call(i), "type": None}],
                    [tool_call(i), tool_call(i)],
                ]
            )
        )
        if base["content"] is None and base["tool_calls"] == []:
            base["tool_calls"] = None
    elif kind == "tool_call_id":
        answered = draw(
            st.one_of(
                st.sampled_from(["call_a1", "call_b1", *SQLISH]),
                fresh_ids,
                st.sampled_from([None, 5, "", "c" * 256, "a\x00", "\ud800"]),
            )
        )
        base = {"role": "tool", "tool_call_id": answered, "content": "42"}
    elif kind == "tool_call_id:misplaced":
        base["tool_call_id"] = "call_a1"
        if base["role"] == "tool":
            base["role"] = "user"
    elif kind == "reasoning":
        if draw(st.booleans()):
            base = {"role": "user", "content": "x", "reasoning_content": "thought"}
        else:
            base = {"role": "assistant", "content": "x"}
            base["reasoning_content"] = draw(st.one_of(bad_text, st.sampled_from([5, ["r"], b"r"])))
    elif kind == "legacy":
        key, value = draw(
            st.sampled_from(
                [
                    ("function_call", {"name": "f", "arguments": "{}"}),
                    ("audio", {"id": "a1"}),
                    ("function_call", "f"),
                ]
            )
        )
        base = {"role": "assistant", "content": "x", key: value}
    return base, kind


bad_tools = st.sampled_from(
    [
        "tools",
        5,
        [5],
        [None],
        [{}],
        [{"type": "function"}],
        [{"type": "code", "function": {"name": "f"}}],
        [{"type": "function", "function": {"name": 5}}],
        [{"type": "function", "function": {"name": "f", "parameters": {"a": object()}}}],
        [{"type": "function", "function": {"name": "f", "parameters": {"a": {1, 2}}}}],
        [{"type": "function", "function": {"name": "f", "parameters": DEEP}}],
        {"type": "function", "function": {"name": "f"}},
    ]
)
