"""Tool turns without reasoning, as a plain-text transcript for thinking-mode prompts.

DeepSeek's thinking mode rejects (HTTP 400) a prompt in which a turn that made tool calls
has an assistant message without `reasoning_content`, and placeholder reasoning is refused
too on some models. History imported from other frameworks, or written with thinking off,
has such turns. While thinking is on, their tool calls are sent as assistant text and their
results as user messages, each naming the call, so nothing is dropped and the request is
valid; stored messages stay as they are, and thinking-off prompts send them natively. The
text form is a pure function of the stored messages: prompts stay byte-stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["needs_transcript", "transcribe", "transcribe_turns"]


def needs_transcript(turn: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a turn (its messages in OpenAI form) made tool calls without its reasoning."""
    assistants = [m for m in turn if m.get("role") == "assistant"]
    return any(m.get("tool_calls") for m in assistants) and any(
        m.get("reasoning_content") is None for m in assistants
    )


def transcribe(message: Mapping[str, Any]) -> dict[str, Any]:
    """One message of such a turn in text form: calls as assistant text, results as user
    text; other messages unchanged but for their reasoning, which the turn does not keep."""
    role = message.get("role")
    if role == "tool":
        return {
            "role": "user",
            "content": f"[tool result {message.get('tool_call_id')}]\n{_text(message)}",
        }
    if role != "assistant":
        return dict(message)
    calls = [_call_text(c) for c in message.get("tool_calls") or ()]
    text = "\n".join([t for t in (_text(message),) if t] + calls)
    out = {k: v for k, v in message.items() if k not in ("tool_calls", "reasoning_content")}
    out["content"] = text
    return out


def transcribe_turns(forms: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """`forms` with every turn from index `start` on that needs it in text form (a turn
    begins at a user message; the messages before the first one form a turn too)."""
    out = forms[:start]
    turn: list[dict[str, Any]] = []
    for form in forms[start:]:
        if form.get("role") == "user" and turn:
            out += [transcribe(m) for m in turn] if needs_transcript(turn) else turn
            turn = []
        turn.append(form)
    out += [transcribe(m) for m in turn] if needs_transcript(turn) else turn
    return out


def _call_text(call: Mapping[str, Any]) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments") or ""
    return f"[tool call {call.get('id')}: {function.get('name')}({arguments})]"


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""
