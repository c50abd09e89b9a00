"""Chat template accounting: counts equal the tokens of the rendered prompt, always, and the
rendering follows DeepSeek's own V4 encoder (its rules, case by case; every golden record of
the encoder is checked in test_golden_encoder.py)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
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
)
from contextkit.tokens.deepseek_v4 import REASONING_EFFORT_MAX, DeepSeekV4Template
from contextkit.tokens.encoding import encode
from contextkit.tokens.template import reasoning_effort_level

LAUNCH = attrs.evolve(get_model("deepseek-v4-flash"), template=DeepSeekV4Template("launch"))
"""The launch encoder: no effort preamble unless `max` (the GA default `high` adds one)."""

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
    for model in ("deepseek-v4-flash", LAUNCH):
        prompt = render_prompt(
            messages, tools=tools, thinking=thinking, reasoning_effort=effort, model=model
        )
        expected = n_tokens(prompt)
        counted = count_messages(
            messages, tools=tools, thinking=thinking, reasoning_effort=effort, model=model
        )
        assert counted == expected, prompt
    for m in messages:  # the per-message size (window weights, stats) is defined for each
        assert message_tokens(m, thinking=thinking) >= 0
    return expected


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("thinking", [True, False], ids=["thinking", "chat"])
@pytest.mark.parametrize("tools", [None, TOOLS], ids=["no-tools", "tools"])
@pytest.mark.parametrize("effort", [None, "max"])
def test_count_equals_rendered_tokens(
    name: str, thinking: bool, tools: list[Msg] | None, effort: str | None
) -> None:
    check_exact(CASES[name], tools=tools, thinking=thinking, effort=effort)


def render(messages: Sequence[Msg], **kw: Any) -> str:
    return render_prompt(messages, model=LAUNCH, **kw)


def test_encoder_chat_thinking() -> None:
    assert render(CASES["chat"]) == (
        "<｜begin▁of▁sentence｜>You are helpful."
        "<｜User｜>hi<｜Assistant｜></think>Hello! How can I help?<｜end▁of▁sentence｜>"
        "<｜User｜>What is 2+2?<｜Assistant｜><think>"
    )
    assert render(CASES["chat"], thinking=False).endswith(
        "<｜User｜>What is 2+2?<｜Assistant｜></think>"
    )


AGENT_TURN = (
    "<｜User｜>Weather in Paris and the time?<｜Assistant｜><think>"
    "Two lookups, in parallel.</think>\n\n"
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


def test_encoder_agent_turn_with_tools_declared_keeps_every_reasoning() -> None:
    prompt = render(AGENT, tools=[CLOCK_TOOL])
    assert prompt.startswith("<｜begin▁of▁sentence｜>You are a weather bot.\n\n## Tools\n\n")
    assert AGENT_TURN in prompt  # tool results merge into one user block, in call order
    # declared tools switch dropping off: every assistant message renders <think>…</think>
    assert prompt.endswith(
        "<｜User｜>Thanks!<｜Assistant｜><think>Polite.</think>You're welcome."
        "<｜end▁of▁sentence｜><｜User｜>And London?<｜Assistant｜><think>"
    )


def test_encoder_without_tools_drops_reasoning_before_the_last_user_message() -> None:
    prompt = render(AGENT)
    # no `tools` parameter: even the tool loop's reasoning is dropped (it costs nothing)
    assert "Two lookups" not in prompt and "Done." not in prompt and "Polite." not in prompt
    assert "<｜Assistant｜></think>\n\n<｜DSML｜tool_calls>" in prompt
    assert prompt.endswith(
        "<｜User｜>Thanks!<｜Assistant｜></think>You're welcome.<｜end▁of▁sentence｜>"
        "<｜User｜>And London?<｜Assistant｜><think>"
    )
    # the latest tool result is "the last user message": the loop's reasoning after it stays
    pending = render(AGENT[:6])
    assert pending.endswith(
        "<｜Assistant｜><think>Done.</think>Sunny, 21°C; it is noon.<｜end▁of▁sentence｜>"
    )
    assert "Two lookups" not in pending
    chat = render(AGENT, thinking=False)
    assert "Two lookups" not in chat and "<think>" not in chat


def test_encoder_tools_join_the_first_system_message() -> None:
    prompt = render(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "u"}],
        tools=[CLOCK_TOOL],
        reasoning_effort="max",
    )
    assert prompt.startswith(
        "<｜begin▁of▁sentence｜>" + REASONING_EFFORT_MAX + "Be brief.\n\n## Tools\n\n"
    )
    assert prompt.endswith(
        '### Available Tool Schemas\n\n{"name": "now", "description": "Current time (UTC).", '
        '"parameters": {}}\n\nYou MUST strictly follow the above defined tool name and '
        "parameter schemas to invoke tool calls.\n<｜User｜>u<｜Assistant｜><think>"
    )
    no_system = render([{"role": "user", "content": "u"}], tools=[CLOCK_TOOL])
    assert no_system.startswith("<｜begin▁of▁sentence｜>\n\n## Tools\n\n")
    assert REASONING_EFFORT_MAX not in render(
        [{"role": "user", "content": "u"}], thinking=False, reasoning_effort="max"
    )


def test_encoder_generations_differ_only_in_the_effort_preamble() -> None:
    msgs = CASES["chat"]
    ga = render_prompt(msgs)  # GA is the default: the API's default effort `high` adds one
    assert ga.startswith("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum")
    assert ga == render(msgs, reasoning_effort="max")
    assert render_prompt(msgs, reasoning_effort="max").startswith(
        "<｜begin▁of▁sentence｜>Reasoning Effort: Beyond maximum"
    )
    assert (
        render_prompt(msgs, reasoning_effort="low")
        == render(msgs)
        == render(msgs, reasoning_effort="high")
    )
    assert render_prompt(msgs, thinking=False) == render(msgs, thinking=False)


def test_encoder_seams_without_special_tokens() -> None:
    assert render(CASES["several systems"], thinking=False) == (
        "<｜begin▁of▁sentence｜>You are helpful.Summary of earlier turns: the user likes tea."
        "<｜User｜>Recommend a drink.<｜Assistant｜></think>Green tea.<｜end▁of▁sentence｜>"
        "Now 14:02 UTC.<｜User｜>And later?<｜Assistant｜></think>"
    )
    assert render(CASES["system then assistant"], thinking=False).startswith(
        "<｜begin▁of▁sentence｜>Greet first.Welcome!<｜end▁of▁sentence｜>"
    )
    assert render(CASES["assistant first"], thinking=False).startswith(
        "<｜begin▁of▁sentence｜>Hi, I'm your assistant.<｜end▁of▁sentence｜><｜User｜>hello"
    )
    merged = render(CASES["consecutive users and tool then user"], thinking=False)
    assert merged.startswith(
        "<｜begin▁of▁sentence｜><｜User｜>First thought.\n\n\n\nSecond thought, with leading "
        "newlines.<｜Assistant｜></think>"
    )
    assert merged.endswith(
        "<tool_result>09:00</tool_result>\n\n\nAlso: hurry.<｜Assistant｜></think>"
    )
    # a request ending with an assistant message: in thinking mode it renders <think></think>
    assert render(CASES["unicode"]).endswith(
        "<｜Assistant｜><think></think>こんにちは 2024-01-01<｜end▁of▁sentence｜>"
    )


def test_encoder_developer_messages() -> None:
    named = CASES["names and developer"]
    chat = render(named, thinking=False)
    assert "<｜User｜>Answer in French.<｜User｜>Hi<｜Assistant｜></think>Salut" in chat
    # thinking mode without tools drops developer messages before the last user message
    thinking = render(named)
    assert "Answer in French." not in thinking and "Now in German." not in thinking
    assert render(named, tools=[CLOCK_TOOL]).count("<｜User｜>Answer in French.") == 1


def test_images_render_as_placeholder_tokens() -> None:
    prompt = render(CASES["images"])
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


def test_message_tokens_is_a_standalone_size_in_replay_form() -> None:
    answer = {"role": "assistant", "content": "ok", "reasoning_content": "because"}
    with_reasoning = message_tokens(answer)
    without = message_tokens({"role": "assistant", "content": "ok"})
    assert with_reasoning == without + n_tokens("because")
    assert message_tokens(answer, thinking=False) == without - 1 == n_tokens("ok") + 1
    user = message_tokens({"role": "user", "content": "hi"})
    assert user == n_tokens("hi") + 3  # <｜User｜> … <｜Assistant｜><think>


def test_overhead_estimate() -> None:
    assert sequence_overhead([], model=LAUNCH) == 3
    assert sequence_overhead([], model=LAUNCH, tools_tokens=100) == 103
    preamble = n_tokens(REASONING_EFFORT_MAX)
    assert sequence_overhead([], model=LAUNCH, reasoning_effort="max") == 3 + preamble
    assert sequence_overhead([], thinking=True) == 3 + preamble  # GA: `high` by default
    assert sequence_overhead([], thinking=False) == 3


def test_legacy_model_ids_count_with_their_thinking_mode() -> None:
    with pytest.warns(DeprecationWarning):
        chat = count_messages(CASES["chat"], "deepseek-chat")
    assert chat == n_tokens(render_prompt(CASES["chat"], thinking=False))
    assert chat == count_messages(CASES["chat"], thinking=False)
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
            [], tools=None, thinking=False, reasoning_effort=None, image_limits=None
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


@pytest.mark.parametrize(("thinking", "opener"), [(True, "<think>"), (False, "</think>")])
def test_a_trailing_developer_message_is_followed_by_the_generation_prompt(
    thinking: bool, opener: str
) -> None:
    """A developer message renders after `<｜User｜>` like a user turn, so when it ends the
    request the assistant's opener follows it (and is billed), as after a user message."""
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": "Answer in French."},
    ]
    prompt = render_prompt(messages, thinking=thinking)
    assert prompt.endswith("<｜User｜>Hi<｜User｜>Answer in French.<｜Assistant｜>" + opener)
    user_last = render_prompt([{"role": "user", "content": "Answer in French."}], thinking=thinking)
    assert user_last.endswith("<｜Assistant｜>" + opener)
