"""The window in Anthropic Messages API form, with cache breakpoints at the stable seams.

Same messages as the OpenAI form, rearranged: system text goes to `system`; tool calls
become `tool_use` blocks and tool results `tool_result` blocks in a user message; kept
reasoning becomes a leading `thinking` block (its `signature` is empty: reasoning stored from
an OpenAI-format API has none, so send it back only to endpoints that accept that);
consecutive messages of one role merge. `cache_control` marks up to three prefixes that stay
byte-identical between calls: the end of the system prompt, the end of the pinned messages
and summary, and the last stored message before the volatile `extra`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from contextkit._dataurl import split_data_url
from contextkit.errors import ValidationError

if TYPE_CHECKING:
    from contextkit.prompt import Prompt

__all__ = ["to_anthropic"]

_EPHEMERAL = {"type": "ephemeral"}


def to_anthropic(prompt: Prompt) -> dict[str, Any]:
    """`{"system": [...], "messages": [...]}` for `anthropic.Anthropic().messages.create`."""
    n_system, n_pinned, n_summary, n_live, _ = prompt.sections
    stable = n_system + n_pinned + n_summary
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    marks: list[int] = []
    for i, message in enumerate(prompt.messages):
        role = message["role"]
        if role == "system" and i < n_system:
            system.append({"type": "text", "text": message["content"] or ""})
            continue
        blocks = _blocks(message)
        target = "assistant" if role == "assistant" else "user"
        if messages and messages[-1]["role"] == target:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": target, "content": blocks})
        if i in (stable - 1, stable + n_live - 1):
            marks.append(len(messages) - 1)
    if system:
        system[-1]["cache_control"] = dict(_EPHEMERAL)
    for index in sorted(set(marks)):
        content = messages[index]["content"]
        if content:
            content[-1]["cache_control"] = dict(_EPHEMERAL)
    return {"system": system, "messages": messages}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    role = message["role"]
    if role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": _content(message.get("content")),
            }
        ]
    blocks: list[dict[str, Any]] = []
    if role == "assistant" and message.get("reasoning_content") is not None:
        blocks.append(
            {"type": "thinking", "thinking": message["reasoning_content"], "signature": ""}
        )
    content = _content(message.get("content"))
    if role == "system":
        content = [{"type": "text", "text": f"<system>\n{_text(content)}\n</system>"}]
    blocks.extend(content)
    for call in message.get("tool_calls") or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": call["function"]["name"],
                "input": _arguments(call["function"]["arguments"]),
            }
        )
    return blocks


def _text(blocks: list[dict[str, Any]]) -> str:
    return "\n\n".join(b["text"] for b in blocks if b["type"] == "text")


def _content(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out: list[dict[str, Any]] = []
    for part in content:
        if part["type"] == "text":
            out.append({"type": "text", "text": part["text"]})
        else:
            out.append(_image(part["image_url"]["url"]))
    return out


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        media_type, data = split_data_url(url)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _arguments(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        raise ValidationError(
            f"tool call arguments are not valid JSON ({arguments[:60]!r}); the Anthropic "
            "format needs a JSON object as tool input"
        ) from None
    if not isinstance(value, dict):
        return {"value": value}
    return value
