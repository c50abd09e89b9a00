"""What the model "generates" for a validated request, billed as DeepSeek bills it.

A reply (scripted or the deterministic echo) is cut to the token budget (`_draft`), given
its usage by the model's prefix cache (`_bill`), and written out as a chat completion
(`_completion_json`) or as the SSE chunks of a stream (`_chunks`).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from contextkit.cache import PrefixCacheModel
from contextkit.testing.server.script import ScriptedReply, ScriptedToolCall
from contextkit.testing.server.validation import _Request
from contextkit.tokens.deepseek_v4 import generated_text
from contextkit.tokens.encoding import decode, encode

_PIECE = re.compile(r"\S*\s*")


@frozen
class _Draft:
    """A reply cut to the token budget, before its calls get ids and it is billed."""

    reasoning: str | None
    content: str
    tool_calls: tuple[ScriptedToolCall, ...]
    finish_reason: str
    reasoning_ended: bool
    truncated: bool
    reasoning_tokens: int
    completion_tokens: int


@frozen
class _Completion:
    """What the model "generated" for one request, with its usage."""

    reasoning: str | None
    content: str
    tool_calls: tuple[ScriptedToolCall, ...]
    finish_reason: str
    usage: dict[str, Any]


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = [
            p.get("text", "") if p.get("type") == "text" else "[image]"
            for p in content
            if isinstance(p, Mapping)
        ]
        return "\n".join(str(p) for p in parts)
    return ""


def _last_user_text(request: _Request) -> tuple[str, str]:
    last = next(
        (_text_of(m.get("content")) for m in reversed(request.messages) if m["role"] == "user"),
        "",
    )
    return last, hashlib.sha256(last.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _default_reasoning(request: _Request) -> str:
    last, digest = _last_user_text(request)
    return f"The user sent {len(last)} characters (digest {digest}). I will echo them."


def _default_reply(request: _Request) -> ScriptedReply:
    """A deterministic answer: a digest and the start of the last user message."""
    last, digest = _last_user_text(request)
    words = " ".join(last.split())
    snippet = words if len(words) <= 60 else words[:60] + "…"
    return ScriptedReply(content=f"Echo {digest}: {snippet}", reasoning=_default_reasoning(request))


def _dsml(calls: Sequence[ScriptedToolCall]) -> str:
    """The tool-call text the model writes after its content (DeepSeek's DSML block)."""
    return generated_text(None, "", _wire_calls(calls), finished=False)


def _wire_calls(calls: Sequence[ScriptedToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def _draft(request: _Request, reply: ScriptedReply | None) -> _Draft:
    """The reply (the default one for None), cut to `max_tokens` and the context window."""
    if reply is None:
        reply = _default_reply(request)
    reasoning: str | None = None
    if request.thinking:
        reasoning = reply.reasoning
        if reasoning is None:
            reasoning = _default_reasoning(request)
    spec = request.spec
    budget = min(
        request.max_tokens or spec.max_output_tokens,
        spec.context_window - len(request.prompt_ids),
    )
    r_ids = encode(reasoning) if reasoning is not None else []
    c_ids = encode(reply.content)
    calls = reply.tool_calls
    t_ids = encode(_dsml(calls)) if calls else []
    content = reply.content
    truncated = False
    reasoning_ended = len(r_ids) <= budget
    if not reasoning_ended:
        r_ids, c_ids, t_ids, calls, truncated = r_ids[:budget], [], [], (), True
        reasoning, content = decode(r_ids), ""
    elif len(r_ids) + len(c_ids) > budget:
        c_ids, t_ids, calls, truncated = c_ids[: budget - len(r_ids)], [], (), True
        content = decode(c_ids)
    elif len(r_ids) + len(c_ids) + len(t_ids) > budget:
        t_ids, calls, truncated = [], (), True
    finish = "length" if truncated else reply.finish_reason or ("tool_calls" if calls else "stop")
    return _Draft(
        reasoning,
        content,
        calls,
        finish,
        reasoning_ended=reasoning_ended,
        truncated=truncated,
        reasoning_tokens=len(r_ids),
        completion_tokens=len(r_ids) + len(c_ids) + len(t_ids),
    )


def _generated(draft: _Draft, calls: Sequence[ScriptedToolCall]) -> str:
    """The draft as the model's output text (with the calls' final ids), as the cache sees it."""
    return generated_text(
        draft.reasoning,
        draft.content,
        _wire_calls(calls),
        reasoning_ended=draft.reasoning_ended,
        finished=not draft.truncated,
    )


def _bill(
    cache: PrefixCacheModel, request: _Request, draft: _Draft, generated: str
) -> dict[str, Any]:
    """Serve the prompt from `cache`, persist prompt + `generated`; DeepSeek's usage object."""
    hit = cache.request(request.prompt_ids, completion=encode(generated))
    return {
        "prompt_tokens": hit.prompt_tokens,
        "completion_tokens": draft.completion_tokens,
        "total_tokens": hit.prompt_tokens + draft.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": hit.hit_tokens},
        "prompt_cache_hit_tokens": hit.hit_tokens,
        "prompt_cache_miss_tokens": hit.miss_tokens,
        "completion_tokens_details": {"reasoning_tokens": draft.reasoning_tokens},
    }


def _pieces(text: str) -> list[str]:
    """Streaming deltas: one word with its trailing whitespace each, joining back to `text`."""
    return [p for p in _PIECE.findall(text) if p]


def _completion_json(cid: str, request: _Request, completion: _Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.reasoning is not None:
        message["reasoning_content"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = _wire_calls(completion.tool_calls)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": completion.usage,
        "system_fingerprint": "fp_contextkit_local",
    }


def _chunks(cid: str, request: _Request, completion: _Completion) -> list[dict[str, Any]]:
    """The SSE events of a streamed completion, as DeepSeek sends them (without [DONE])."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": "fp_contextkit_local",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    thinking = completion.reasoning is not None
    first: dict[str, Any] = {"role": "assistant", "content": None if thinking else ""}
    if thinking:
        first["reasoning_content"] = ""
    events = [chunk(first)]
    for piece in _pieces(completion.reasoning or ""):
        events.append(chunk({"content": None, "reasoning_content": piece}))
    for piece in _pieces(completion.content):
        delta: dict[str, Any] = {"content": piece}
        if thinking:
            delta["reasoning_content"] = None
        events.append(chunk(delta))
    for index, call in enumerate(completion.tool_calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [opening]}))
        half = len(call.arguments) // 2
        for part in (call.arguments[:half], call.arguments[half:]):
            if part:
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                )
    events.append(chunk({"content": ""}, completion.finish_reason))
    if request.include_usage:
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = completion.usage
        events.append(usage_chunk)
    return events
