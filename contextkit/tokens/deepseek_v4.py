"""DeepSeek V4's chat template, as DeepSeek's own encoder renders a request.

The API bills the prompt its chat template renders from `messages` (+ `tools`), not the JSON.
`DeepSeekV4Template` follows `encoding/encoding_dsv4.py` of the DeepSeek-V4 model
repositories rule by rule (written from the rules, checked against 816 requests the encoder
rendered; see tests/test_golden_encoder.py):

    <｜begin▁of▁sentence｜>[effort preamble]{system}[\n\n## Tools…]
    <｜User｜>{user}<｜Assistant｜></think>{answer}<｜end▁of▁sentence｜>
    <｜User｜>{user}<｜Assistant｜><think>{reasoning}</think>{content}\n\n<｜DSML｜tool_calls>
    …</｜DSML｜tool_calls><｜end▁of▁sentence｜><｜User｜><tool_result>{result}</tool_result>
    <｜Assistant｜><think>

- `tools` join the first system (or developer) message; a new empty system message first if
  there is none. Tool results merge into one user block (`<tool_result>…</tool_result>`,
  joined by a blank line, in the order of the calls); a user message after a tool result or
  another user message joins that block. `name` is not rendered.
- `<｜Assistant｜>` plus `<think>`/`</think>` follows a user or developer block only where an
  assistant message or the generation prompt comes next; a system message that is not first
  is glued to what precedes it, and an assistant message after system text has no opener.
- Thinking mode without `tools`: assistant messages before the last user block (a tool
  result counts) render `{answer}` with their reasoning dropped, earlier developer messages
  are dropped, and only the last user block opens `<think>`. **With `tools` declared nothing
  is dropped:** every assistant message renders `{reasoning or ""}</think>{answer}` and every
  opener is `<think>`. Chat mode renders no reasoning and opens `</think>`.
- The effort preamble depends on the encoder generation (`GENERATIONS`).
- Content given as a list of parts renders its parts joined by a blank line; an image part as
  `<｜image｜>` repeated `image_tokens` times (the V4 encoder has no image syntax).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from attrs import field, frozen

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
from contextkit.tokens.dsml import (
    ASSISTANT,
    BOS,
    DSML,
    END_THINK,
    EOS,
    IMAGE,
    REASONING_EFFORT_MAX,
    THINK,
    TOOL_RESULT_CLOSE,
    TOOL_RESULT_JOIN,
    TOOL_RESULT_OPEN,
    USER,
    _dsml_tool_calls,
    generated_text,
)
from contextkit.tokens.image_tokens import ImageLimits

__all__ = [
    "ASSISTANT",
    "BOS",
    "DSML",
    "END_THINK",
    "EOS",
    "GENERATIONS",
    "IMAGE",
    "REASONING_EFFORT_MAX",
    "THINK",
    "TOOL_RESULT_CLOSE",
    "TOOL_RESULT_JOIN",
    "TOOL_RESULT_OPEN",
    "USER",
    "DeepSeekV4Template",
    "clear_piece_cache",
    "generated_text",
    "piece_tokens",
]

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


_EFFORT_HIGH_GA = REASONING_EFFORT_MAX
_EFFORT_MAX_GA = (
    "Reasoning Effort: Beyond maximum \u2014 exhaustive, relentless, and uncompromising.\n"
    "You MUST reason with the utmost depth and rigor, leaving absolutely nothing to chance: "
    "exhaustively decompose the problem into its most fundamental components, trace every "
    "causal chain to its root, and resolve the underlying cause rather than any surface "
    "symptom.\n"
    "Do not stop reasoning until you have independently verified the solution from multiple "
    "angles and are certain that no assumption remains unchecked and no error remains "
    "undiscovered.\n\n"
)
GENERATIONS = ("launch", "ga")
"""Encoder generations: `launch` is `encoding/encoding_dsv4.py` of the first V4-Flash/-Pro
releases (sha256 bdbd57c1...5e0, efforts `high`/`max`, only `max` adds a preamble); `ga` is the
encoder of V4-Flash-0731 / V4-Pro-0813 (efforts `low`/`high`/`max`; `high`, the API's
default, and `max` add a preamble). Everything else renders the same."""


def _preamble(generation: str, thinking: bool, effort: str | None) -> str:
    if not thinking:
        return ""
    if generation == "launch":
        return REASONING_EFFORT_MAX if effort == "max" else ""
    level = effort or "high"  # the API's default effort
    return {"high": _EFFORT_HIGH_GA, "max": _EFFORT_MAX_GA}.get(level, "")


class _Block(NamedTuple):
    """One message of the encoder's merged sequence (tool results folded into user blocks)."""

    role: str
    text: str = ""
    reasoning: str | None = None
    calls: str = ""
    call_ids: tuple[str, ...] = ()
    blocks: tuple[tuple[str, str, str], ...] = ()
    """User blocks: (kind, text, tool_call_id) with kind "text" or "tool_result"."""


def _merged(
    messages: Sequence[MessageDict], tools: Tools | None, image: Callable[[Any], str]
) -> list[_Block]:
    """The encoder's view of a request: tools attached, tool results merged and ordered."""
    out: list[_Block] = []
    tools_text = _tools_block(tools) if tools else ""
    msgs = [_as_message(m) for m in messages]
    if tools_text and (not msgs or msgs[0]["role"] not in ("system", "developer")):
        out.append(_Block("system", tools_text))
        tools_text = ""
    for index, message in enumerate(msgs):
        role = message["role"]
        content = _content(message.get("content"), image)
        if role in ("user", "tool"):
            block = (
                ("tool_result", content, str(message.get("tool_call_id") or ""))
                if role == "tool"
                else ("text", content, "")
            )
            if out and out[-1].role == "user":
                out[-1] = _Block("user", blocks=(*out[-1].blocks, block))
            else:
                out.append(_Block("user", blocks=(block,)))
        elif role == "assistant":
            calls = message.get("tool_calls") or ()
            reasoning = message.get("reasoning_content")
            ids = tuple(str(c.get("id") or "") if isinstance(c, Mapping) else "" for c in calls)
            out.append(
                _Block(
                    "assistant",
                    content,
                    None if reasoning is None else _text(reasoning, "reasoning_content"),
                    _dsml_tool_calls(calls),
                    ids,
                )
            )
        else:
            out.append(_Block(role, content + (tools_text if index == 0 else "")))
    return _ordered_results(out)


def _ordered_results(merged: list[_Block]) -> list[_Block]:
    """Tool results of a user block in the order of the calls of the last assistant before."""
    order: dict[str, int] = {}
    out = []
    for block in merged:
        if block.role == "assistant" and block.call_ids:
            order = {cid: n for n, cid in enumerate(block.call_ids) if cid}
        results = [b for b in block.blocks if b[0] == "tool_result"]
        if block.role == "user" and len(results) > 1 and order:
            ranked = iter(sorted(results, key=lambda b: order.get(b[2], 0)))
            block = _Block(
                "user",
                blocks=tuple(next(ranked) if b[0] == "tool_result" else b for b in block.blocks),
            )
        out.append(block)
    return out


@frozen
class DeepSeekV4Template:
    """DeepSeek V4's chat template, as DeepSeek's own encoder renders a request.

    `generation` picks the encoder (see `GENERATIONS`): the renderings differ only in the
    reasoning-effort preamble. `render` is the exact prompt text; `count` its token count,
    computed per piece between special tokens (the tokenizer never merges across one), with
    each piece's count cached, so a steady-state build tokenizes only what is new.
    """

    generation: str = field(default="ga")

    @generation.validator
    def _check(self, _: object, value: object) -> None:
        if value not in GENERATIONS:
            raise ValidationError(f"generation must be one of {GENERATIONS}, got {value!r:.40}")

    @property
    def name(self) -> str:
        return f"deepseek-v4-{self.generation}"

    def tools_block(self, tools: Tools) -> str:
        """The text `tools` add to the prompt: a blank line and the "## Tools" section."""
        return _tools_block(tools)

    def pieces(
        self,
        messages: Sequence[MessageDict],
        *,
        tools: Tools | None,
        thinking: bool,
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
        preamble: bool = True,
        bos: bool = True,
    ) -> list[str]:
        """The prompt as text pieces; special tokens stand alone, so pieces tokenize apart."""

        def image(part: Mapping[str, Any]) -> str:
            return IMAGE * _image_cost(part, image_limits)

        merged = _merged(messages, tools, image)
        drop = not tools
        if thinking and drop:
            merged = _drop_thinking(merged)
        last_user = _last_user(merged)
        out: list[str] = [BOS] if bos else []
        if preamble:
            out.append(_preamble(self.generation, thinking, reasoning_effort))
        for index, block in enumerate(merged):
            if block.role == "system":
                out.append(block.text)
            elif block.role == "developer":
                out += [USER, block.text]
            elif block.role == "user":
                parts = [
                    b[1] if b[0] == "text" else TOOL_RESULT_OPEN + b[1] + TOOL_RESULT_CLOSE
                    for b in block.blocks
                ]
                out += [USER, TOOL_RESULT_JOIN.join(parts)]
            else:
                if thinking and (not drop or index > last_user):
                    out += [block.reasoning or "", END_THINK]
                out += [block.text + block.calls, EOS]
            following = merged[index + 1].role if index + 1 < len(merged) else None
            if following not in (None, "assistant") or block.role not in ("user", "developer"):
                continue
            opens = thinking and (not drop or index >= last_user)
            out += [ASSISTANT, THINK if opens else END_THINK]
        return _joined(_expand_images(out))

    def render(
        self,
        messages: Sequence[MessageDict],
        *,
        tools: Tools | None,
        thinking: bool,
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> str:
        return "".join(
            self.pieces(
                messages,
                tools=tools,
                thinking=thinking,
                reasoning_effort=reasoning_effort,
                image_limits=image_limits,
            )
        )

    def count(
        self,
        messages: Sequence[MessageDict],
        tokenizer: Tokenizer,
        *,
        tools: Tools | None,
        thinking: bool,
        reasoning_effort: str | None,
        image_limits: ImageLimits | None,
    ) -> int:
        pieces = self.pieces(
            messages,
            tools=tools,
            thinking=thinking,
            reasoning_effort=reasoning_effort,
            image_limits=image_limits,
        )
        return sum(piece_tokens(tokenizer, piece) for piece in pieces)

    def message_tokens(
        self,
        message: MessageDict,
        tokenizer: Tokenizer,
        *,
        thinking: bool,
        keep_reasoning: bool,
        image_limits: ImageLimits | None,
    ) -> int:
        """A message's size on its own (for window weights and stats, not for budgets)."""
        message = _as_message(message)
        if message.get("reasoning_content") is not None and not keep_reasoning:
            message = {k: v for k, v in message.items() if k != "reasoning_content"}
        pieces = self.pieces(
            [message],
            tools=None,
            thinking=thinking,
            reasoning_effort=None,
            image_limits=image_limits,
            preamble=False,
            bos=False,
        )
        return sum(piece_tokens(tokenizer, piece) for piece in pieces)

    def message_shape(
        self, message: MessageDict, *, thinking: bool, keep_reasoning: bool
    ) -> MessageShape:
        return MessageShape(_as_message(message)["role"])

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
        """An estimate of what surrounds the messages: BOS, preamble, tools, generation prompt."""
        preamble = _preamble(self.generation, thinking, reasoning_effort)
        return 3 + tools_tokens + (piece_tokens(tokenizer, preamble) if preamble else 0)


_IMAGE_RUN = re.compile(f"((?:{re.escape(IMAGE)})+)")


def _expand_images(pieces: list[str]) -> list[str]:
    """Runs of `<｜image｜>` as pieces of their own: a special token, so the tokenizer splits
    there too (also where a text holds one literally), and a run counts without tokenizing."""
    if not any(IMAGE in p for p in pieces):
        return pieces
    out: list[str] = []
    for piece in pieces:
        if IMAGE in piece:
            out.extend(p for p in _IMAGE_RUN.split(piece) if p)
        else:
            out.append(piece)
    return out


_SPECIALS = frozenset({BOS, EOS, USER, ASSISTANT, THINK, END_THINK})


def _joined(pieces: list[str]) -> list[str]:
    """Adjacent text pieces as one: text meets text with no special token between (a system
    message and the assistant message after it), and the tokenizer sees them as one."""
    out: list[str] = []
    glue = False
    for piece in pieces:
        if not piece:
            continue
        text = piece not in _SPECIALS and not piece.startswith(IMAGE)
        if text and glue:
            out[-1] += piece
        else:
            out.append(piece)
        glue = text
    return out


def _drop_thinking(merged: list[_Block]) -> list[_Block]:
    """Thinking mode without tools: earlier reasoning and earlier developer messages go."""
    last = _last_user(merged)
    out = []
    for index, block in enumerate(merged):
        if index >= last or block.role in ("user", "system"):
            out.append(block)
        elif block.role == "assistant":
            out.append(_Block("assistant", block.text, None, block.calls))
    return out


def _last_user(merged: Sequence[_Block]) -> int:
    for index in range(len(merged) - 1, -1, -1):
        if merged[index].role in ("user", "developer"):
            return index
    return -1


def _digest(piece: str) -> bytes:
    """A long piece's cache key: 128 bits of BLAKE2b, so a collision is out of reach."""
    return hashlib.blake2b(piece.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_PIECE_CACHE: dict[int, tuple[Tokenizer, dict[object, int]]] = {}
_PIECE_CACHE_SIZE = 100_000
"""Counts of pieces already seen, per tokenizer: a build re-counts only what is new. A
cache, not state: entries are never wrong, only missing (cleared when full)."""


def piece_tokens(tokenizer: Tokenizer, piece: str) -> int:
    """Tokens of one piece, cached by its content (a build re-counts only new pieces).

    A template special token counts as one (the `Tokenizer` contract).
    """
    if piece in _SPECIALS:
        return 1
    if piece.startswith(IMAGE) and piece == IMAGE * (len(piece) // len(IMAGE)):
        return len(piece) // len(IMAGE)
    entry = _PIECE_CACHE.get(id(tokenizer))
    if entry is None or entry[0] is not tokenizer:
        entry = _PIECE_CACHE[id(tokenizer)] = (tokenizer, {})
    counts = entry[1]
    key: object = piece if len(piece) < 512 else _digest(piece)
    found = counts.get(key)
    if found is None:
        if len(counts) >= _PIECE_CACHE_SIZE:
            counts.clear()
        found = counts[key] = tokenizer.count(piece)
    return found


def clear_piece_cache() -> None:
    """Forget every cached piece count (benchmarks measure the cold path with it)."""
    _PIECE_CACHE.clear()


def _tools_block(tools: Tools | None) -> str:
    if not tools:
        return ""
    schemas = "\n".join(_to_json(function) for function in _functions(tools))
    return "\n\n" + _TOOLS_HEAD + schemas + _TOOLS_TAIL
