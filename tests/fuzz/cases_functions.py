"""Cases for the module-level functions: tokens, models, images, parsing, policies, JSONL,
opening a store."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import strategies as st

from .data import (
    CORRUPT_IMAGE_URLS,
    MAGIC,
    MODEL,
    PNG1,
    PNG64,
    PNG_GARBAGE_BODY,
    PNG_HUGE,
    PNG_TRUNCATED,
)
from .oracle import INVALID, READ, Case, case
from .strategies import (
    bad_models,
    bad_text,
    bad_tools,
    invalid_messages,
    valid_message,
    valid_text,
    wrong_types,
)


@st.composite
def function_cases(draw: st.DrawFn) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "count_tokens",
                "count_messages",
                "get_model",
                "image_tokens",
                "prepare_image",
                "check_image_count",
                "parse",
                "policy",
                "summarizer",
                "tool_schema",
                "read_jsonl",
                "open",
            ]
        )
    )
    model = st.one_of(st.just(MODEL), bad_models)
    if kind == "count_tokens":
        text = draw(st.one_of(wrong_types, valid_text, bad_text))
        return case("contextkit.count_tokens", text, draw(model), expect=READ, tags="text")
    if kind == "count_messages":
        messages = draw(
            st.one_of(
                wrong_types,
                st.lists(invalid_messages().map(lambda m: m[0]), min_size=1, max_size=2),
                st.lists(valid_message(), max_size=2),
            )
        )
        options = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "tools": bad_tools,
                    "thinking": st.sampled_from([None, "x", 5]),
                    "reasoning_effort": st.sampled_from(["extreme", 5, None]),
                },
            )
        )
        return case(
            "contextkit.count_messages",
            messages,
            draw(model),
            **options,
            expect=READ,
            tags="messages",
        )
    if kind == "get_model":
        return case("contextkit.get_model", draw(bad_models), tags="model")
    if kind == "image_tokens":
        size = st.one_of(
            st.integers(-5, 5), st.sampled_from([10**30, 1.5, "64", None, math.inf, True])
        )
        detail = st.sampled_from(["auto", "low", "high", "", "HIGH", 5, None])
        return case(
            "contextkit.image_tokens",
            draw(size),
            draw(size),
            draw(detail),
            expect=READ,
            tags="size",
        )
    if kind == "prepare_image":
        source = draw(
            st.one_of(
                st.sampled_from(CORRUPT_IMAGE_URLS),
                st.binary(max_size=64).filter(lambda b: not b.startswith(MAGIC)),
                st.sampled_from(
                    [
                        PNG1,
                        PNG_TRUNCATED,
                        PNG_GARBAGE_BODY,
                        PNG_HUGE,
                        b"",
                        "",
                        "/",
                        "/no/such/image.png",
                        "https://exa mple.com/a.png",
                        "https://",
                        "http://\x00",
                        "https://x.org/\ud800",
                        5,
                        None,
                        [PNG64],
                        Path("/no/such/image.png"),
                        "\x00",
                        "\ud800.png",
                    ]
                ),
            )
        )
        detail = draw(st.sampled_from(["auto", "low", "", 5, None]))
        return case("images.prepare_image", source, detail=detail, tags="image")
    if kind == "check_image_count":
        n = draw(st.one_of(st.integers(-3, 10**6), st.sampled_from([1.5, "1", None, True])))
        return case("images.check_image_count", n, expect=READ, tags="count")
    if kind == "parse":
        message, tag = draw(invalid_messages())
        if message and isinstance(message, dict) and message.get("role") == "tool":
            tag = "tool"  # parse alone cannot know the tool call is unknown
        # parse checks shape only: image data and tool call ids are the store's to check
        expect = READ if tag in ("tool", "tool_call_id", "image", "image:corrupt-body") else INVALID
        return case("contextkit.Message.parse", message, expect=expect, tags=tag)
    if kind == "policy":
        name = draw(
            st.sampled_from(
                ["high_water", "keep_recent", "summary_share", "min_summary_tokens", "enabled"]
            )
        )
        value = draw(st.sampled_from([0, -1, 1.5, math.nan, "0.5", None, [1], True, 10**30]))
        return case("contextkit.CompactionPolicy", **{name: value}, expect=READ, tags=name)
    if kind == "summarizer":
        value = draw(st.sampled_from([0, -1, 1.5, math.nan, "0.5", None, [1]]))
        return case("contextkit.ExtractiveSummarizer", new_share=value, tags="new_share")
    if kind == "tool_schema":
        value = draw(st.sampled_from([5, "f", None, object(), print, [len]]))
        return case("contextkit.tool_schema", value, expect=READ, tags="fn")
    if kind == "read_jsonl":
        lines = draw(
            st.one_of(
                st.lists(st.sampled_from(["{", "[]", "5", "null", '"s"', "{}", "\x00", ""])),
                st.sampled_from([5, None, [5], [b"{}"], "{}"]),
            )
        )
        return case("transfer.read_jsonl", lines, expect=READ, tags="lines")
    url = draw(
        st.sampled_from(
            [
                5,
                "",
                "not a url",
                "foo://bar",
                "mysql://u@127.0.0.1:1/x",
                "postgresql://u@127.0.0.1:1/x",
                "sqlite:///\x00",
                "sqlite:///\ud800.db",
                "sqlite:////no/such/dir/contextkit.db",
                b"sqlite://",
                ["sqlite://"],
            ]
        )
    )
    return case("contextkit.open", url, tags="url")
