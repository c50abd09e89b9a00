"""DeepSeek V4's chat template: predict a request's `usage.prompt_tokens` exactly.

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

So the count decomposes (the functions are in `contextkit.counting`): `message_tokens` (one
message, context-free, computed once when it is written) plus `sequence_overhead` (from roles
only, no tokenization) equals `len(encode(render_prompt(...)))` for every message list. The
few seams left that are not a special token follow fixed template text ending in a newline
(tools block, effort prefix, `</tool_result>`); only a message that starts with whitespace
changes there, which its `MessageShape.lead` records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from contextkit.errors import ValidationError
from contextkit.tokens.chat import (
    MessageDict,
    MessageShape,
    Tokenizer,
    Tools,
    _as_message,
    _content,
    _functions,
    _image_cost,
    _text,
    _to_json,
)
from contextkit.tokens.image_tokens import DEFAULT_IMAGE_LIMITS, ImageLimits

__all__ = [
    "ASSISTANT",
    "BOS",
    "DSML",
    "END_THINK",
    "EOS",
    "IMAGE",
    "REASONING_EFFORT_MAX",
    "THINK",
    "TOOL_RESULT_CLOSE",
    "TOOL_RESULT_JOIN",
    "TOOL_RESULT_OPEN",
    "USER",
    "DeepSeekV4Template",
    "generated_text",
]

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
        message: MessageDict,
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

        def image(part: Mapping[str, Any]) -> str:
            return IMAGE * _image_cost(part, image_limits) if measure_images else IMAGE

        content = _content(message.get("content"), image)
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
        messages: Sequence[MessageDict],
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
        message: MessageDict,
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
        self, message: MessageDict, *, thinking: bool, keep_reasoning: bool
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
