"""Chat template accounting: predict a request's `usage.prompt_tokens` exactly.

The API bills the prompt its chat template renders from `messages` (+ `tools`), not the
JSON. `DeepSeekV4Template` reproduces DeepSeek V4's template (`encoding/encoding_dsv4.py` of
the DeepSeek-V4 model repositories, as served by vLLM's DeepSeek-V4 tokenizer wrapper):

    <｜begin▁of▁sentence｜>[effort prefix][tools block]{system}
    <｜User｜>{user}<｜Assistant｜></think>{answer}<｜end▁of▁sentence｜>
    <｜User｜>{user}<｜Assistant｜><think>{reasoning}</think>{content}\\n\\n<｜DSML｜tool_calls>
    …</｜DSML｜tool_calls><｜end▁of▁sentence｜><｜User｜><tool_result>{result}</tool_result>
    <｜Assistant｜><think>

Faithful to the reference: BOS once; the first system message verbatim; user and developer
messages after `<｜User｜>`; `<｜Assistant｜>` plus `<think>` (reasoning follows) or `</think>`
(it does not) after a user-side block that an assistant message or the generation prompt
follows; assistant messages as `[reasoning</think>]content[DSML tool calls]EOS`; tool calls
as DSML with one `parameter` per argument (strings verbatim, other values as JSON); tool
results as `<tool_result>…</tool_result>` blocks, consecutive ones joined by a blank line and
ordered as the calls were; `tools` as the reference's "## Tools" block in a system message
inserted first; `reasoning_effort="max"` as the reference's prefix; `name` is not rendered.

Where the reference is not usable as is, this is what we do instead (the differences are a
token or two per occurrence; `Calibration` absorbs what the provider really does):

* Reasoning replay follows the provider's documented per-turn rule (the model's
  `ReasoningReplay`), not the reference's global `drop_thinking` switch: an assistant
  message shows `{reasoning}</think>` only if its turn (user message to user message) made
  tool calls; otherwise its turn is rendered in the dropped form `<｜Assistant｜></think>`.
  The reference, once `tools` are present, renders even dropped turns as `<think></think>`.
* Developer messages are always kept (the reference drops earlier ones in thinking mode).
* The reference joins text of adjacent messages with no special token in between (a second
  system message is glued to the first, a user message after tool results or another user
  message is merged into the same block with a blank line, an assistant message is glued to
  a system message before it). The tokenizer then merges characters across the seam, so no
  per-message count could be exact. We keep every seam at a special token instead: each
  user message opens its own `<｜User｜>` block, a system message that is not first renders
  like a developer message (`<｜User｜>{content}`, as V4.1's `<｜System｜>` later made official),
  and an assistant message after a system message gets the `<｜Assistant｜>` opener.
* Content given as a list of parts renders its parts joined by a blank line (V4.1's rule);
  an image part renders as `<｜image｜>` repeated `image_tokens` times (V4 has no image
  syntax), so tokenizing the prompt counts images by the image formula.

So the count decomposes: `message_tokens` (one message, context-free, computed once when
it is written) plus `sequence_overhead` (from roles only, no tokenization) equals
`len(encode(render_prompt(...)))` for every message list. The few seams left that are not a
special token follow fixed template text ending in a newline (tools block, effort prefix,
`</tool_result>`); only a message that starts with whitespace changes there, which its
`MessageShape.lead` records.
"""

from __future__ import annotations

import enum
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from attrs import field, frozen

from contextkit.errors import ValidationError
from contextkit.tokens.images import DEFAULT_IMAGE_LIMITS, ImageLimits, image_part_tokens

if TYPE_CHECKING:
    from contextkit.models import ModelSpec

__all__ = [
    "ASSISTANT",
    "BOS",
    "EOS",
    "IMAGE",
    "REASONING_EFFORT_MAX",
    "USER",
    "Calibration",
    "ChatTemplate",
    "DeepSeekV4Template",
    "MessageShape",
    "OpenAIChatTemplate",
    "ReasoningReplay",
    "Tokenizer",
    "count_messages",
    "kept_reasoning",
    "message_shape",
    "message_tokens",
    "prompt_structure",
    "render_prompt",
    "sequence_overhead",
    "tools_tokens",
]

Message: TypeAlias = Mapping[str, Any]
Tools: TypeAlias = Sequence[Mapping[str, Any]]
ModelRef: TypeAlias = "str | ModelSpec"

ROLES = ("system", "developer", "user", "assistant", "tool")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"
DSML = "｜DSML｜"
IMAGE = "<｜image｜>"
TOOL_RESULT_OPEN = "<tool_result>"
TOOL_RESULT_CLOSE = "</tool_result>"
TOOL_RESULT_JOIN = "\n\n"

REASONING_EFFORT_MAX = (
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate "
    "step, considered alternative, and rejected hypothesis to ensure absolutely no assumption "
    "is left unchecked.\n\n"
)
"""The prompt prefix DeepSeek V4 adds in thinking mode when `reasoning_effort="max"`."""

_TOOLS_HEAD = (
    "## Tools\n\nYou have access to a set of tools to help answer the user's question. "
    f'You can invoke tools by writing a "<{DSML}tool_calls>" block like the following:\n\n'
    f"<{DSML}tool_calls>\n"
    f'<{DSML}invoke name="$TOOL_NAME">\n'
    f'<{DSML}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE'
    f"</{DSML}parameter>\n...\n</{DSML}invoke>\n"
    f'<{DSML}invoke name="$TOOL_NAME2">\n...\n</{DSML}invoke>\n'
    f"</{DSML}tool_calls>\n\n"
    'String parameters should be specified as is and set `string="true"`. For all other '
    "types (numbers, booleans, arrays, objects), pass the value in JSON format and set "
    '`string="false"`.\n\n'
    f"If thinking_mode is enabled (triggered by {THINK}), you MUST output your complete "
    f"reasoning inside {THINK}...{END_THINK} BEFORE any tool calls or final response.\n\n"
    f"Otherwise, output directly after {END_THINK} with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n"
)
_TOOLS_TAIL = (
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to "
    "invoke tool calls.\n"
)
_LEAD_CONTEXT = 8
"""Characters kept after a message's leading whitespace in `MessageShape.lead`."""


class ReasoningReplay(str, enum.Enum):
    """Which assistant messages carry `reasoning_content` back into later prompts."""

    TOOL_TURNS = "tool_turns"
    """Only messages of turns that made tool calls (DeepSeek V4 thinking mode)."""
    NEVER = "never"
    """Nowhere (the retired deepseek-reasoner rejected any replayed reasoning)."""
    ALWAYS = "always"
    """Every assistant message that has it."""


@runtime_checkable
class Tokenizer(Protocol):
    """Counts the tokens of a text; a template's special-token strings must count as one."""

    def count(self, text: str) -> int: ...


@frozen
class MessageShape:
    """What `sequence_overhead` needs to know of one message: its role and how it starts.

    `lead` is empty unless the rendered message starts with whitespace; then it holds that
    whitespace and a few characters after it (a plain string, no tokenization needed).
    """

    role: str = field()
    lead: str = ""

    @role.validator
    def _check_role(self, _: object, value: object) -> None:
        if value not in ROLES:
            raise ValidationError(f"role must be one of {ROLES}, got {value!r:.40}")


class ChatTemplate(Protocol):
    """How a model family turns messages into billed prompt tokens."""

    @property
    def name(self) -> str: ...

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Tools | None,
        thinking: bool,
        kept: Sequence[bool],
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> str:
        """The exact prompt text; `kept[i]` says whether message i shows its reasoning."""
        ...

    def message_tokens(
        self,
        message: Message,
        tokenizer: Tokenizer,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None,
    ) -> int: ...

    def message_shape(
        self, message: Message, *, thinking: bool, keep_reasoning: bool
    ) -> MessageShape: ...

    def tools_tokens(self, tools: Tools, tokenizer: Tokenizer) -> int: ...

    def sequence_overhead(
        self,
        shapes: Sequence[MessageShape],
        tokenizer: Tokenizer,
        *,
        tools_tokens: int,
        thinking: bool,
        reasoning_effort: str | None,
    ) -> int: ...


def _as_message(message: object) -> Message:
    if isinstance(message, Mapping):
        role = message.get("role")
        if role not in ROLES:
            raise ValidationError(f"message role must be one of {ROLES}, got {role!r:.40}")
        return message
    to_openai = getattr(message, "to_openai", None)
    if callable(to_openai):
        return _as_message(to_openai())
    raise ValidationError(
        f"a message must be an OpenAI-format dict or a contextkit Message, "
        f"got {type(message).__name__}"
    )


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _content(content: object, image_limits: ImageLimits | None, *, measure: bool = True) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, Sequence):
        raise ValidationError(
            f"content must be a string or a list of parts, got {type(content).__name__}"
        )
    pieces = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            pieces.append(_text(part.get("text"), f"content[{i}].text"))
        elif kind == "image_url" and not measure:
            pieces.append(IMAGE)
        elif kind == "image_url":
            if image_limits is None:
                raise ValidationError("this model does not accept images")
            pieces.append(IMAGE * image_part_tokens(part, image_limits))
        else:
            raise ValidationError(f"content[{i}] has unsupported type {kind!r:.40}")
    return "\n\n".join(pieces)


def _to_json(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("not valid Unicode: a string holds a lone surrogate") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"not JSON-serializable: {exc}") from None
    return text


def _dsml_arguments(arguments: object) -> str:
    parsed: object = arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
    if not isinstance(parsed, Mapping):
        parsed = {"arguments": arguments if isinstance(arguments, str) else _to_json(arguments)}
    lines = []
    for key, value in parsed.items():
        is_str = isinstance(value, str)
        rendered = value if is_str else _to_json(value)
        flag = "true" if is_str else "false"
        opening = f'<{DSML}parameter name="{key}" string="{flag}">'
        lines.append(f"{opening}{rendered}</{DSML}parameter>")
    return "\n".join(lines)


def _dsml_tool_calls(tool_calls: object) -> str:
    if not tool_calls:
        return ""
    if not isinstance(tool_calls, Sequence):
        raise ValidationError(f"tool_calls must be a list, got {type(tool_calls).__name__}")
    invokes = []
    for i, call in enumerate(tool_calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise ValidationError(f"tool_calls[{i}] has no 'function' object")
        name = _text(function.get("name"), f"tool_calls[{i}].function.name")
        arguments = _dsml_arguments(function.get("arguments"))
        invokes.append(f'<{DSML}invoke name="{name}">\n{arguments}\n</{DSML}invoke>')
    joined = "\n".join(invokes)
    return f"\n\n<{DSML}tool_calls>\n{joined}\n</{DSML}tool_calls>"


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _functions(tools: Tools) -> list[Mapping[str, Any]]:
    """The function schemas of `tools`, checked as the API checks them (a 400 costs a call)."""
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise ValidationError(f"tools must be a list of tool schemas, got {type(tools).__name__}")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type") != "function":
            raise ValidationError(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise ValidationError(
                f"tools[{i}].function.name must be 1-64 letters, digits, '_' or '-', "
                f"got {name!r:.40}"
            )
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationError(f"tools[{i}].function.description must be a string")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ValidationError(f"tools[{i}].function.parameters must be a JSON Schema object")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ValidationError(f"tools[{i}].function.strict must be a bool")
        out.append(function)
    return out


def _lead(body: str) -> str:
    if not body or not body[0].isspace():
        return ""
    k = len(body) - len(body.lstrip())
    return body[: k + _LEAD_CONTEXT]


def _seam(tokenizer: Tokenizer, before: str, lead: str) -> int:
    """Tokens gained by writing `lead` right after `before` instead of counting both apart."""
    if not lead:
        return 0
    return tokenizer.count(before + lead) - tokenizer.count(before) - tokenizer.count(lead)


def _user_side(role: str, index: int) -> bool:
    return role in ("user", "developer", "tool") or (role == "system" and index > 0)


@frozen
class DeepSeekV4Template:
    """DeepSeek V4's chat template (see the module docstring for sources and deviations)."""

    name: str = "deepseek-v4"

    def tools_block(self, tools: Tools) -> str:
        """The text `tools` add to the prompt: a blank line and the "## Tools" section."""
        schemas = "\n".join(_to_json(function) for function in _functions(tools))
        return "\n\n" + _TOOLS_HEAD + schemas + _TOOLS_TAIL

    def body(
        self,
        message: Message,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None = DEFAULT_IMAGE_LIMITS,
        measure_images: bool = True,
    ) -> str:
        """One message's own text: everything but the role openers the sequence adds.

        With `measure_images=False` an image is a single placeholder (for `message_shape`,
        which only looks at how the text starts).
        """
        message = _as_message(message)
        role = message["role"]
        content = _content(message.get("content"), image_limits, measure=measure_images)
        if role == "tool":
            return TOOL_RESULT_OPEN + content + TOOL_RESULT_CLOSE
        if role != "assistant":
            return content
        reasoning = message.get("reasoning_content")
        head = ""
        if thinking and keep_reasoning and reasoning is not None:
            head = _text(reasoning, "reasoning_content") + END_THINK
        return head + content + _dsml_tool_calls(message.get("tool_calls")) + EOS

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Tools | None,
        thinking: bool,
        kept: Sequence[bool],
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> str:
        msgs = [_as_message(m) for m in messages]
        out = [BOS]
        if thinking and reasoning_effort == "max":
            out.append(REASONING_EFFORT_MAX)
        if tools:
            out.append(self.tools_block(tools))
        order: dict[str, int] = {}
        results: list[tuple[int, str]] = []
        for i, message in enumerate(msgs):
            role = message["role"]
            prev = msgs[i - 1]["role"] if i else None
            body = self.body(
                message, thinking=thinking, keep_reasoning=kept[i], image_limits=image_limits
            )
            if role == "tool":
                if prev != "tool":
                    out.append(USER)
                results.append((order.get(message.get("tool_call_id") or "", 0), body))
                if i + 1 == len(msgs) or msgs[i + 1]["role"] != "tool":
                    results.sort(key=lambda keyed: keyed[0])
                    out.append(TOOL_RESULT_JOIN.join(body for _, body in results))
                    results = []
                continue
            if role == "assistant":
                calls = message.get("tool_calls")
                if calls:
                    order = _call_order(calls)
                if (prev is not None and prev != "assistant") or (i == 0 and tools):
                    out += [ASSISTANT, THINK if thinking and kept[i] else END_THINK]
            elif i > 0 or role != "system":
                out.append(USER)
            out.append(body)
        if msgs and _user_side(msgs[-1]["role"], len(msgs) - 1):
            out += [ASSISTANT, THINK if thinking else END_THINK]
        return "".join(out)

    def message_tokens(
        self,
        message: Message,
        tokenizer: Tokenizer,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None,
    ) -> int:
        body = self.body(
            message, thinking=thinking, keep_reasoning=keep_reasoning, image_limits=image_limits
        )
        return tokenizer.count(body)

    def message_shape(
        self, message: Message, *, thinking: bool, keep_reasoning: bool
    ) -> MessageShape:
        message = _as_message(message)
        role = message["role"]
        if role not in ("system", "assistant"):
            return MessageShape(role)
        body = self.body(
            message, thinking=thinking, keep_reasoning=keep_reasoning, measure_images=False
        )
        return MessageShape(role, _lead(body))

    def tools_tokens(self, tools: Tools, tokenizer: Tokenizer) -> int:
        return tokenizer.count(self.tools_block(tools)) if tools else 0

    def sequence_overhead(
        self,
        shapes: Sequence[MessageShape],
        tokenizer: Tokenizer,
        *,
        tools_tokens: int,
        thinking: bool,
        reasoning_effort: str | None,
    ) -> int:
        total = 1
        first = shapes[0] if shapes else None
        glued_first = first is not None and (
            first.role == "system" or (first.role == "assistant" and not tools_tokens)
        )
        if thinking and reasoning_effort == "max":
            total += tokenizer.count(REASONING_EFFORT_MAX)
            if tools_tokens:
                total += _seam(tokenizer, REASONING_EFFORT_MAX, _lead("\n\n" + _TOOLS_HEAD))
            elif first is not None and glued_first:
                total += _seam(tokenizer, REASONING_EFFORT_MAX, first.lead)
        if tools_tokens:
            total += tools_tokens
            if first is not None and first.role == "system":
                total += _seam(tokenizer, _TOOLS_TAIL, first.lead)
        tool_join: int | None = None
        for i, shape in enumerate(shapes):
            prev = shapes[i - 1].role if i else None
            if shape.role == "assistant":
                if (prev is not None and prev != "assistant") or (i == 0 and tools_tokens):
                    total += 2
            elif shape.role == "tool" and prev == "tool":
                if tool_join is None:
                    tool_join = _tool_join(tokenizer)
                total += tool_join
            elif i > 0 or shape.role != "system":
                total += 1
        if shapes and _user_side(shapes[-1].role, len(shapes) - 1):
            total += 2
        return total


def _tool_join(tokenizer: Tokenizer) -> int:
    block = TOOL_RESULT_OPEN + "x" + TOOL_RESULT_CLOSE
    return tokenizer.count(block + TOOL_RESULT_JOIN + block) - 2 * tokenizer.count(block)


def _call_order(calls: Sequence[Any]) -> dict[str, int]:
    order = {}
    for index, call in enumerate(calls):
        call_id = call.get("id") if isinstance(call, Mapping) else None
        if call_id:
            order[call_id] = index
    return order


@frozen
class OpenAIChatTemplate:
    """The well-known estimate for OpenAI chat models, as an example of a pluggable template.

    Each message costs `tokens_per_message` plus its role and text (+ `tokens_per_name` and
    the name when named; tool calls count their name and arguments), and the reply is primed
    with `reply_priming` tokens. OpenAI does not publish how `tools` are billed; they count as
    their JSON text. There is no exact prompt text, so `render` is not available.
    """

    name: str = "openai-chat"
    tokens_per_message: int = 3
    tokens_per_name: int = 1
    reply_priming: int = 3

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Tools | None,
        thinking: bool,
        kept: Sequence[bool],
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> str:
        raise NotImplementedError(f"the {self.name} template counts by formula; it has no text")

    def message_tokens(
        self,
        message: Message,
        tokenizer: Tokenizer,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None,
    ) -> int:
        message = _as_message(message)
        total = self.tokens_per_message + tokenizer.count(message["role"])
        content = message.get("content")
        if content is None or isinstance(content, str):
            total += tokenizer.count(content or "")
        else:
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "image_url":
                    if image_limits is None:
                        raise ValidationError("this model does not accept images")
                    total += image_part_tokens(part, image_limits)
                else:
                    total += tokenizer.count(_content([part], None))
        name = message.get("name")
        if name is not None:
            total += tokenizer.count(_text(name, "name")) + self.tokens_per_name
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments")
            text = arguments if isinstance(arguments, str) else _to_json(arguments)
            total += tokenizer.count(_text(function.get("name"), "tool name"))
            total += tokenizer.count(text)
        if message.get("tool_call_id"):
            total += tokenizer.count(_text(message["tool_call_id"], "tool_call_id"))
        return total

    def message_shape(
        self, message: Message, *, thinking: bool, keep_reasoning: bool
    ) -> MessageShape:
        return MessageShape(_as_message(message)["role"])

    def tools_tokens(self, tools: Tools, tokenizer: Tokenizer) -> int:
        if not tools:
            return 0
        _functions(tools)
        return tokenizer.count(_to_json(list(tools)))

    def sequence_overhead(
        self,
        shapes: Sequence[MessageShape],
        tokenizer: Tokenizer,
        *,
        tools_tokens: int,
        thinking: bool,
        reasoning_effort: str | None,
    ) -> int:
        return self.reply_priming + tools_tokens


_EFFORTS = {
    "minimal": "low",
    "low": "low",
    "medium": "high",
    "high": "high",
    "xhigh": "high",
    "max": "max",
    "ultra": "max",
}


def reasoning_effort_level(effort: str | None) -> str | None:
    """The effort the provider applies to a requested one (`ultra` -> max, `medium` -> high)."""
    if effort is None:
        return None
    try:
        return _EFFORTS[effort]
    except (KeyError, TypeError):
        raise ValidationError(
            f"reasoning_effort must be one of {sorted(_EFFORTS)}, got {effort!r:.40}"
        ) from None


def _spec(model: ModelRef) -> ModelSpec:
    from contextkit.models import ModelSpec, get_model

    return model if isinstance(model, ModelSpec) else get_model(model)


def kept_reasoning(
    messages: Sequence[Message], *, thinking: bool, policy: ReasoningReplay
) -> list[bool]:
    """For each message, whether the provider shows its `reasoning_content` in the prompt.

    TOOL_TURNS keeps it on the assistant messages of a turn (a user message up to the next)
    in which some assistant message made tool calls; nothing is kept outside thinking mode.
    """
    msgs = [_as_message(m) for m in messages]
    has = [m["role"] == "assistant" and m.get("reasoning_content") is not None for m in msgs]
    if not thinking or policy is ReasoningReplay.NEVER:
        return [False] * len(msgs)
    if policy is ReasoningReplay.ALWAYS:
        return has
    kept = [False] * len(msgs)
    start = 0
    for end in range(len(msgs) + 1):
        if end < len(msgs) and (msgs[end]["role"] != "user" or end == start):
            continue
        turn = range(start, end)
        if any(msgs[j]["role"] == "assistant" and msgs[j].get("tool_calls") for j in turn):
            for j in turn:
                kept[j] = has[j]
        start = end
    return kept


def generated_text(
    reasoning: str | None,
    content: str,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    *,
    reasoning_ended: bool = True,
    finished: bool = True,
) -> str:
    """The text a DeepSeek V4 model generates for a reply, as its template would replay it.

    Reasoning (closed by `</think>` once it ended), the content, the DSML tool-call block and,
    for a finished reply, EOS: what the provider's cache persists at the end of the output.
    """
    out = ""
    if reasoning is not None:
        out = reasoning + (END_THINK if reasoning_ended else "")
    out += content + _dsml_tool_calls(list(tool_calls) or None)
    return out + (EOS if finished else "")


def render_prompt(
    messages: Sequence[Message],
    *,
    tools: Tools | None = None,
    thinking: bool = True,
    reasoning_effort: str | None = None,
    model: ModelRef = "deepseek-v4-flash",
) -> str:
    """The exact prompt text the provider tokenizes, special-token strings included.

    This is the reference the counts are checked against: `count_messages(...)` equals the
    number of tokens of this string. Images appear as `<｜image｜>` once per image token.
    """
    spec = _spec(model)
    msgs = [_as_message(m) for m in messages]
    kept = kept_reasoning(msgs, thinking=thinking, policy=spec.reasoning_replay)
    return spec.template.render(
        msgs,
        tools=tools,
        thinking=thinking,
        kept=kept,
        reasoning_effort=reasoning_effort_level(reasoning_effort),
        image_limits=spec.image_limits,
    )


def message_tokens(
    message: Message, model: ModelRef = "deepseek-v4-flash", *, thinking: bool | None = None
) -> int:
    """Tokens of one message in its replay form, independent of its neighbours.

    Computed once when the message is written and stored. The message is taken as it will be
    sent: its `reasoning_content`, if present, is counted (in thinking mode, unless the
    model never replays reasoning), so strip it first where the policy drops it.
    """
    spec = _spec(model)
    thinking = spec.thinking_default if thinking is None else thinking
    msg = _as_message(message)
    return spec.template.message_tokens(
        msg,
        spec.tokenizer,
        thinking=thinking,
        keep_reasoning=_keeps(msg, spec, thinking),
        image_limits=spec.image_limits,
    )


def message_shape(
    message: Message, model: ModelRef = "deepseek-v4-flash", *, thinking: bool | None = None
) -> MessageShape:
    """What `sequence_overhead` needs of one message; store it beside `message_tokens`."""
    spec = _spec(model)
    thinking = spec.thinking_default if thinking is None else thinking
    msg = _as_message(message)
    return spec.template.message_shape(
        msg, thinking=thinking, keep_reasoning=_keeps(msg, spec, thinking)
    )


def _keeps(message: Message, spec: ModelSpec, thinking: bool) -> bool:
    return (
        thinking
        and spec.reasoning_replay is not ReasoningReplay.NEVER
        and message.get("reasoning_content") is not None
    )


def tools_tokens(tools: Tools | None, model: ModelRef = "deepseek-v4-flash") -> int:
    """Tokens the `tools` request parameter adds to the prompt (0 for none)."""
    spec = _spec(model)
    return spec.template.tools_tokens(tools, spec.tokenizer) if tools else 0


def sequence_overhead(
    shapes: Sequence[MessageShape],
    model: ModelRef = "deepseek-v4-flash",
    *,
    tools_tokens: int = 0,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
) -> int:
    """Tokens the template adds around the messages: BOS, role openers, generation prompt.

    Depends only on the shapes (roles), `tools_tokens` (from `tools_tokens()`), the thinking
    mode and the effort. Adding it to the stored `message_tokens` of the same messages gives
    `count_messages` of them, as long as the messages are in replay form.
    """
    spec = _spec(model)
    return spec.template.sequence_overhead(
        shapes,
        spec.tokenizer,
        tools_tokens=tools_tokens,
        thinking=spec.thinking_default if thinking is None else thinking,
        reasoning_effort=reasoning_effort_level(reasoning_effort),
    )


def count_messages(
    messages: Sequence[Message],
    model: ModelRef = "deepseek-v4-flash",
    *,
    tools: Tools | None = None,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
) -> int:
    """The `usage.prompt_tokens` a request with these messages will report.

    Reasoning is counted where the provider keeps it (the model's `ReasoningReplay`), so raw
    histories count right too. `thinking=None` means the model's default.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ValidationError(f"messages must be a list, got {type(messages).__name__}")
    spec = _spec(model)
    thinking = spec.thinking_default if thinking is None else thinking
    template, tokenizer = spec.template, spec.tokenizer
    msgs = [_as_message(m) for m in messages]
    kept = kept_reasoning(msgs, thinking=thinking, policy=spec.reasoning_replay)
    total = sum(
        template.message_tokens(
            m, tokenizer, thinking=thinking, keep_reasoning=k, image_limits=spec.image_limits
        )
        for m, k in zip(msgs, kept, strict=True)
    )
    shapes = [
        template.message_shape(m, thinking=thinking, keep_reasoning=k)
        for m, k in zip(msgs, kept, strict=True)
    ]
    return total + template.sequence_overhead(
        shapes,
        tokenizer,
        tools_tokens=template.tools_tokens(tools, tokenizer) if tools else 0,
        thinking=thinking,
        reasoning_effort=reasoning_effort_level(reasoning_effort),
    )


def prompt_structure(
    shapes: Sequence[MessageShape],
    *,
    tools: bool = False,
    thinking: bool = True,
    reasoning_effort: str | None = None,
) -> str:
    """A short key naming the template features a prompt uses, for `Calibration`.

    Two prompts with the same key differ from the provider's count in the same way, if at
    all: the key lists the mode and each kind of seam where our rendering may differ.
    """
    roles = [s.role for s in shapes]
    features = ["think" if thinking else "chat"]
    if tools:
        features.append("tools")
    if thinking and reasoning_effort_level(reasoning_effort) == "max":
        features.append("max")
    pairs = set(itertools.pairwise(roles))
    if {("user", "user"), ("tool", "user"), ("developer", "user")} & pairs:
        features.append("user-after-user")
    if "system" in roles[1:]:
        features.append("late-system")
    if ("system", "assistant") in pairs:
        features.append("system-assistant")
    if "tool" in roles:
        features.append("tool-results")
    return "+".join(features)


def _deltas(value: object) -> tuple[tuple[str, int], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    if not isinstance(items, Sequence) and not hasattr(items, "__iter__"):
        raise ValidationError(f"deltas must be a mapping, got {type(value).__name__}")
    out = []
    for key, delta in items:
        if not isinstance(key, str) or not isinstance(delta, int) or isinstance(delta, bool):
            raise ValidationError(f"calibration entries must be str -> int, got {key!r}: {delta!r}")
        out.append((key, delta))
    return tuple(sorted(out))


@frozen
class Calibration:
    """What the provider reported minus what we predicted, last seen per prompt structure.

    A pure value: `observe` returns a new `Calibration`, which the store persists (as
    `as_dict()`) and feeds back; `adjust` adds the last gap seen for the same structure
    (see `prompt_structure`), or nothing for a structure never seen.
    """

    deltas: tuple[tuple[str, int], ...] = field(default=(), converter=_deltas)
    observations: int = 0

    def observe(self, structure: str, predicted: int, reported: int) -> Calibration:
        """This calibration updated with one request's predicted and reported prompt tokens."""
        for what, value in (("predicted", predicted), ("reported", reported)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"{what} must be a non-negative integer, got {value!r:.40}")
        deltas = dict(self.deltas)
        deltas[structure] = reported - predicted
        return Calibration(deltas, self.observations + 1)

    def correction(self, structure: str) -> int:
        """Tokens to add to a prediction for a prompt of this structure."""
        return dict(self.deltas).get(structure, 0)

    def adjust(self, predicted: int, structure: str) -> int:
        """`predicted` corrected by the last gap seen for `structure`."""
        return predicted + self.correction(structure)

    def as_dict(self) -> dict[str, int]:
        """The deltas as a plain dict, for storage; `Calibration(d, n)` reads it back."""
        return dict(self.deltas)
