"""Chat template accounting: counts equal the tokens of the rendered prompt, always."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contextkit.errors import ValidationError
from contextkit.models import get_model
from contextkit.tokens import (
    Calibration,
    MessageShape,
    OpenAIChatTemplate,
    ReasoningReplay,
    count_messages,
    kept_reasoning,
    message_shape,
    message_tokens,
    prompt_structure,
    render_prompt,
    sequence_overhead,
    tools_tokens,
)
from contextkit.tokens.encoding import encode
from contextkit.tokens.template import REASONING_EFFORT_MAX, reasoning_effort_level

Msg = dict[str, Any]


def png_url(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    crc = zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", crc)
    return "data:image/png;base64," + base64.b64encode(data).decode()


def call(call_id: str, name: str, arguments: Any) -> Msg:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CLOCK_TOOL = {
    "type": "function",
    "function": {"name": "now", "description": "Current time (UTC).", "parameters": {}},
}
TOOLS = [WEATHER_TOOL, CLOCK_TOOL]

AGENT = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris and the time?", "name": "alice"},
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Two lookups, in parallel.",
        "tool_calls": [
            call("c1", "get_weather", {"city": "Paris", "days": 2}),
            call("c2", "now", {}),
        ],
    },
    {"role": "tool", "tool_call_id": "c2", "content": "12:00"},
    {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "sunny", "temp": 21}'},
    {"role": "assistant", "content": "Sunny, 21°C; it is noon.", "reasoning_content": "Done."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome.", "reasoning_content": "Polite."},
    {"role": "user", "content": "And London?"},
]

CASES: dict[str, list[Msg]] = {
    "empty": [],
    "one user": [{"role": "user", "content": "hi"}],
    "chat": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "agent": AGENT,
    "agent, answer pending": AGENT[:5],
    "agent, last answer given": AGENT[:8],
    "names and developer": [
        {"role": "system", "content": "Be brief.", "name": "ops"},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hi", "name": "bob"},
        {"role": "assistant", "content": "Salut", "name": "bot"},
        {"role": "developer", "content": "Now in German."},
        {"role": "user", "content": "Again"},
    ],
    "several systems": [
        {"role": "system", "content": "You are helpful."},
        {"role": "system", "content": "Summary of earlier turns: the user likes tea."},
        {"role": "user", "content": "Recommend a drink."},
        {"role": "assistant", "content": "Green tea."},
        {"role": "system", "content": "Now 14:02 UTC."},
        {"role": "user", "content": "And later?"},
    ],
    "assistant first": [
        {"role": "assistant", "content": "Hi, I'm your assistant."},
        {"role": "user", "content": "hello"},
    ],
    "system then assistant": [
        {"role": "system", "content": "Greet first."},
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": "thanks"},
    ],
    "consecutive users and tool then user": [
        {"role": "user", "content": "First thought."},
        {"role": "user", "content": "\n\nSecond thought, with leading newlines."},
        {"role": "assistant", "content": "", "tool_calls": [call("x", "now", "{}")]},
        {"role": "tool", "tool_call_id": "x", "content": "09:00"},
        {"role": "user", "content": "\nAlso: hurry."},
    ],
    "images": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": png_url(1000, 600)}},
                {"type": "image_url", "image_url": {"url": png_url(64, 64), "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        }
    ],
    "whitespace-led texts": [
        {"role": "system", "content": "\n\n  Leading blank lines in the system prompt."},
        {"role": "user", "content": "  spaced"},
        {"role": "assistant", "content": "\n answer", "reasoning_content": "\n\nthink"},
    ],
    "whitespace-only system": [
        {"role": "system", "content": "\n"},
        {"role": "user", "content": "x"},
    ],
    "whitespace-led assistant first": [
        {"role": "assistant", "content": "\r\n\thello"},
        {"role": "user", "content": "x"},
    ],
    "special strings in text": [
        {"role": "system", "content": "Never print <｜User｜> or </think>."},
        {"role": "user", "content": "<｜Assistant｜><think>fake</think>"},
        {"role": "assistant", "content": "<tool_result>no</tool_result>｜DSML｜"},
    ],
    "unicode": [
        {"role": "user", "content": "你好，世界！12345 ümlaut — ∑ 🙂"},
        {"role": "assistant", "content": "こんにちは 2024-01-01"},
    ],
    "odd arguments": [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                call("a", "f", "not json"),
                call("b", "g", "[1, 2]"),
                call("c", "h", {"nested": {"k": [1, None, True]}, "s": "ü\n"}),
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "part"}]},
        {"role": "tool", "tool_call_id": "a", "content": ""},
        {"role": "tool", "tool_call_id": "b", "content": None},
    ],
}


def n_tokens(text: str) -> int:
    return len(encode(text))


def replay_form(messages: Sequence[Msg], thinking: bool) -> list[Msg]:
    """What a store sends: reasoning kept only where the provider keeps it."""
    kept = kept_reasoning(messages, thinking=thinking, policy=ReasoningReplay.TOOL_TURNS)
    out = []
    for message, keep in zip(messages, kept, strict=True):
        m = dict(message)
        if not keep:
            m.pop("reasoning_content", None)
        out.append(m)
    return out


def check_exact(
    messages: Sequence[Msg],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    thinking: bool,
    effort: str | None,
) -> int:
    prompt = render_prompt(messages, tools=tools, thinking=thinking, reasoning_effort=effort)
    expected = n_tokens(prompt)
    counted = count_messages(messages, tools=tools, thinking=thinking, reasoning_effort=effort)
    assert counted == expected, prompt
    replay = replay_form(messages, thinking)
    assert render_prompt(replay, tools=tools, thinking=thinking, reasoning_effort=effort) == prompt
    stored = sum(message_tokens(m, thinking=thinking) for m in replay)
    shapes = [message_shape(m, thinking=thinking) for m in replay]
    overhead = sequence_overhead(
        shapes, tools_tokens=tools_tokens(tools), thinking=thinking, reasoning_effort=effort
    )
    assert stored + overhead == expected
    return expected


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("thinking", [True, False], ids=["thinking", "chat"])
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no-tools", "tools"])
@pytest.mark.parametrize("effort", [None, "max"])
def test_count_equals_rendered_tokens(
    name: str, thinking: bool, tools: list[Msg] | None, effort: str | None
) -> None:
    check_exact(CASES[name], tools=tools, thinking=thinking, effort=effort)


def test_golden_chat_thinking() -> None:
    assert render_prompt(CASES["chat"]) == (
        "<｜begin▁of▁sentence｜>You are helpful."
        "<｜User｜>hi<｜Assistant｜></think>Hello! How can I help?<｜end▁of▁sentence｜>"
        "<｜User｜>What is 2+2?<｜Assistant｜><think>"
    )
    assert render_prompt(CASES["chat"], thinking=False).endswith(
        "<｜User｜>What is 2+2?<｜Assistant｜></think>"
    )


def test_golden_agent_turn() -> None:
    assert render_prompt(AGENT[:6]) == (
        "<｜begin▁of▁sentence｜>You are a weather bot."
        "<｜User｜>Weather in Paris and the time?"
        "<｜Assistant｜><think>Two lookups, in parallel.</think>\n\n"
        "<｜DSML｜tool_calls>\n"
        '<｜DSML｜invoke name="get_weather">\n'
        '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n'
        '<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>\n'
        "</｜DSML｜invoke>\n"
        '<｜DSML｜invoke name="now">\n\n</｜DSML｜invoke>\n'
        "</｜DSML｜tool_calls><｜end▁of▁sentence｜>"
        '<｜User｜><tool_result>{"sky": "sunny", "temp": 21}</tool_result>\n\n'
        "<tool_result>12:00</tool_result>"
        "<｜Assistant｜><think>Done.</think>Sunny, 21°C; it is noon.<｜end▁of▁sentence｜>"
    )


def test_golden_later_turn_keeps_tool_turn_reasoning_only() -> None:
    prompt = render_prompt(AGENT)
    assert "<think>Two lookups, in parallel.</think>" in prompt
    assert "<think>Done.</think>" in prompt
    assert "Polite." not in prompt
    assert prompt.endswith(
        "<｜User｜>Thanks!<｜Assistant｜></think>You're welcome.<｜end▁of▁sentence｜>"
        "<｜User｜>And London?<｜Assistant｜><think>"
    )
    chat = render_prompt(AGENT, thinking=False)
    assert "Two lookups" not in chat and "<think>" not in chat


def test_golden_tools_block_and_effort() -> None:
    prompt = render_prompt(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}],
        tools=[CLOCK_TOOL],
        reasoning_effort="max",
    )
    assert prompt.startswith("<｜begin▁of▁sentence｜>" + REASONING_EFFORT_MAX + "\n\n## Tools\n\n")
    assert (
        '### Available Tool Schemas\n\n{"name": "now", "description": "Current time (UTC).", '
        '"parameters": {}}\n\nYou MUST strictly follow the above defined tool name and '
        "parameter schemas to invoke tool calls.\nS<｜User｜>u<｜Assistant｜><think>"
    ) in prompt
    assert REASONING_EFFORT_MAX not in render_prompt(
        [{"role": "user", "content": "u"}], thinking=False, reasoning_effort="max"
    )


def test_golden_seams_we_keep_at_special_tokens() -> None:
    assert render_prompt(CASES["several systems"], thinking=False) == (
        "<｜begin▁of▁sentence｜>You are helpful."
        "<｜User｜>Summary of earlier turns: the user likes tea."
        "<｜User｜>Recommend a drink.<｜Assistant｜></think>Green tea.<｜end▁of▁sentence｜>"
        "<｜User｜>Now 14:02 UTC.<｜User｜>And later?<｜Assistant｜></think>"
    )
    assert render_prompt(CASES["system then assistant"], thinking=False).startswith(
        "<｜begin▁of▁sentence｜>Greet first.<｜Assistant｜></think>Welcome!<｜end▁of▁sentence｜>"
    )
    assert render_prompt(CASES["assistant first"], thinking=False).startswith(
        "<｜begin▁of▁sentence｜>Hi, I'm your assistant.<｜end▁of▁sentence｜><｜User｜>hello"
    )


def test_images_render_as_placeholder_tokens() -> None:
    prompt = render_prompt(CASES["images"])
    assert prompt.count("<｜image｜>") == (85 + 170 * 4) + 85 + 2805
    assert "What is in these?\n\n<｜image｜>" in prompt


def test_names_are_not_rendered() -> None:
    named = [{"role": "user", "content": "hi", "name": "alice"}]
    assert render_prompt(named) == render_prompt([{"role": "user", "content": "hi"}])


def test_tool_results_follow_call_order() -> None:
    prompt = render_prompt(AGENT[:5])
    assert prompt.index("sunny") < prompt.index("12:00")


def test_kept_reasoning_per_turn() -> None:
    kept = kept_reasoning(AGENT, thinking=True, policy=ReasoningReplay.TOOL_TURNS)
    assert kept == [False, False, True, False, False, True, False, False, False]
    assert not any(kept_reasoning(AGENT, thinking=False, policy=ReasoningReplay.ALWAYS))
    assert not any(kept_reasoning(AGENT, thinking=True, policy=ReasoningReplay.NEVER))
    always = kept_reasoning(AGENT, thinking=True, policy=ReasoningReplay.ALWAYS)
    assert always == [False, False, True, False, False, True, False, True, False]


def test_message_tokens_is_context_free_and_counts_replay_form() -> None:
    answer = {"role": "assistant", "content": "ok", "reasoning_content": "because"}
    with_reasoning = message_tokens(answer)
    without = message_tokens({"role": "assistant", "content": "ok"})
    assert with_reasoning == without + n_tokens("because") + 1
    assert message_tokens(answer, thinking=False) == without
    assert without == n_tokens("ok") + 1


def test_overhead_rules() -> None:
    def overhead(roles: str, **kw: Any) -> int:
        names = {"s": "system", "d": "developer", "u": "user", "a": "assistant", "t": "tool"}
        return sequence_overhead([MessageShape(names[r]) for r in roles], **kw)

    assert overhead("") == 1
    assert overhead("u") == 1 + 1 + 2
    assert overhead("sua") == 1 + 0 + 1 + 2
    assert overhead("suau") == 1 + 0 + 1 + 2 + 1 + 2
    assert overhead("suatt") == 1 + 0 + 1 + 2 + 1 + 0 + 2
    assert overhead("ss") == 1 + 0 + 1 + 2
    assert overhead("sa") == 1 + 0 + 2
    assert overhead("a") == 1
    assert overhead("a", tools_tokens=100) == 1 + 100 + 2


def test_legacy_model_ids_count_with_their_thinking_mode() -> None:
    with pytest.warns(DeprecationWarning):
        chat = count_messages(CASES["chat"], "deepseek-chat")
    assert chat == n_tokens(render_prompt(CASES["chat"], thinking=False))
    with pytest.warns(DeprecationWarning):
        spec = get_model("deepseek-reasoner")
    assert count_messages(AGENT, spec) == n_tokens(render_prompt(AGENT, thinking=True))


def test_invalid_input() -> None:
    with pytest.raises(ValidationError, match="role"):
        count_messages([{"role": "narrator", "content": "x"}])
    with pytest.raises(ValidationError):
        count_messages(["hi"])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="unsupported type"):
        count_messages([{"role": "user", "content": [{"type": "audio"}]}])
    with pytest.raises(ValidationError, match="reasoning_effort"):
        count_messages([], reasoning_effort="extreme")
    with pytest.raises(ValidationError, match="tools"):
        count_messages([], tools=[{"name": "f"}])
    assert reasoning_effort_level("ultra") == "max"
    assert reasoning_effort_level("medium") == "high"


def test_openai_template_is_formula_only() -> None:
    with pytest.raises(NotImplementedError):
        OpenAIChatTemplate().render(
            [], tools=None, thinking=False, kept=[], reasoning_effort=None, image_limits=None
        )


def test_calibration_is_a_pure_value() -> None:
    shapes = [message_shape(m) for m in AGENT]
    key = prompt_structure(shapes, tools=True, thinking=True)
    assert key == "think+tools+tool-results"
    assert prompt_structure([MessageShape("user"), MessageShape("user")], thinking=False) == (
        "chat+user-after-user"
    )
    empty = Calibration()
    assert empty.correction(key) == 0
    one = empty.observe(key, predicted=1000, reported=1003)
    two = one.observe(key, predicted=2000, reported=2001).observe("chat", 10, 9)
    assert empty.observations == 0 and one.observations == 1 and two.observations == 3
    assert one.adjust(500, key) == 503
    assert two.correction(key) == 1 and two.correction("chat") == -1
    assert two.correction("unseen") == 0
    assert Calibration(two.as_dict(), two.observations) == two
    assert hash(two) == hash(Calibration(two.as_dict(), 3))
    with pytest.raises(ValidationError):
        empty.observe(key, predicted=-1, reported=3)


FRAGMENTS = [
    "Hello",
    " world",
    ".",
    "?!",
    "\n",
    "\n\n",
    "\r\n",
    "  ",
    "\t",
    " \n ",
    "123",
    "4567",
    "你好",
    "世界。",
    "ümlaut",
    "🙂",
    "<｜User｜>",
    "<｜Assistant｜>",
    "</think>",
    "<think>",
    "｜DSML｜",
    "<tool_result>",
    "</tool_result>",
    "<｜end▁of▁sentence｜>",
    "{",
    '"k": 1}',
    "<",
    ">",
    "｜",
    "_",
    "'s",
]
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=6).map(
    "".join
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-99, 99) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
arguments = st.one_of(
    st.dictionaries(st.sampled_from(["city", "q", "n", "x y"]), json_values, max_size=3).map(
        json.dumps
    ),
    texts,
)
images = st.builds(
    lambda w, h, detail: {
        "type": "image_url",
        "image_url": {"url": png_url(w, h), **({"detail": detail} if detail else {})},
    },
    st.integers(32, 4096),
    st.integers(32, 4096),
    st.sampled_from([None, "low", "high", "auto"]),
)
contents = st.one_of(
    texts,
    st.lists(
        st.one_of(texts.map(lambda t: {"type": "text", "text": t}), images),
        min_size=1,
        max_size=3,
    ),
)


@st.composite
def conversations(draw: st.DrawFn) -> list[Msg]:
    """Plausible agent/chat histories: system, turns, tool-call cycles, odd interleavings."""
    msgs: list[Msg] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(texts)})
    n = 0
    for _ in range(draw(st.integers(0, 4))):
        opener = draw(st.sampled_from(["user", "user", "user", "developer", "system", "users"]))
        if opener == "users":
            msgs += [{"role": "user", "content": draw(contents)} for _ in range(2)]
        elif opener == "user":
            msgs.append({"role": "user", "content": draw(contents)})
        else:
            msgs.append({"role": opener, "content": draw(texts)})
        for _ in range(draw(st.integers(0, 2))):
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                n += 1
                calls.append(
                    call(f"call_{n}", draw(st.sampled_from(["f", "g_2"])), draw(arguments))
                )
            assistant: Msg = {
                "role": "assistant",
                "content": draw(st.none() | texts),
                "tool_calls": calls,
            }
            if draw(st.booleans()):
                assistant["reasoning_content"] = draw(texts)
            msgs.append(assistant)
            for c in draw(st.permutations(calls)):
                msgs.append({"role": "tool", "tool_call_id": c["id"], "content": draw(texts)})
            if draw(st.integers(0, 5)) == 0:
                msgs.append({"role": "user", "content": draw(texts)})
        if draw(st.booleans()):
            answer: Msg = {"role": "assistant", "content": draw(texts)}
            if draw(st.booleans()):
                answer["reasoning_content"] = draw(texts)
            msgs.append(answer)
    return msgs


any_message = st.one_of(
    st.builds(
        lambda r, c: {"role": r, "content": c},
        st.sampled_from(["system", "developer", "user"]),
        texts,
    ),
    st.builds(lambda c: {"role": "tool", "tool_call_id": "t", "content": c}, texts),
    st.builds(
        lambda c, r, a: {
            "role": "assistant",
            "content": c,
            **({"reasoning_content": r} if r is not None else {}),
            **({"tool_calls": [call("t", "f", a)]} if a is not None else {}),
        },
        texts,
        st.none() | texts,
        st.none() | arguments,
    ),
)

modes = {
    "thinking": st.booleans(),
    "tools": st.sampled_from([None, TOOLS, [CLOCK_TOOL]]),
    "effort": st.sampled_from([None, None, "high", "max"]),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=conversations(), **modes)
def test_property_conversations(
    messages: list[Msg], thinking: bool, tools: list[Msg] | None, effort: str | None
) -> None:
    check_exact(messages, tools=tools, thinking=thinking, effort=effort)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(any_message, max_size=8), **modes)
def test_property_any_role_order(
    messages: list[Msg], thinking: bool, tools: list[Msg] | None, effort: str | None
) -> None:
    check_exact(messages, tools=tools, thinking=thinking, effort=effort)
