"""Reading what the openai SDK hands back: objects or dicts, and the usage they report.

One copy of each: an SDK (pydantic) object or a mapping as a mapping, and the prompt, cache
and completion figures of a `usage` in DeepSeek's and OpenAI's field names alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from contextkit._validators import check_int
from contextkit.errors import ValidationError

__all__ = ["MAX_TOKENS", "Usage", "as_mapping", "cache_figures"]

MAX_TOKENS = 2**53
"""Far above any real count, and safely inside every database's 64-bit integers."""


def as_mapping(value: object, what: str) -> Mapping[str, Any]:
    """`value` itself if it is a mapping, else an SDK object's `model_dump()`."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # openai SDK (pydantic) objects; DeepSeek's extra fields included
        data = dump(exclude_none=False, mode="python")
        if isinstance(data, Mapping):
            return data
    raise ValidationError(f"{what} must be a mapping or an SDK object, got {type(value).__name__}")


def _figure(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return None if value is None else check_int(value, f"usage.{key}", 0, MAX_TOKENS)


def cache_figures(usage: object) -> tuple[int | None, int | None, int | None]:
    """`(prompt_tokens, cache hit, cache miss)` as reported; None where a figure is absent.

    The hit falls back to OpenAI's `prompt_tokens_details.cached_tokens`.
    """
    data = as_mapping(usage, "usage")
    hit = _figure(data, "prompt_cache_hit_tokens")
    if hit is None:
        details = data.get("prompt_tokens_details")
        if details is not None:
            hit = _figure(as_mapping(details, "usage.prompt_tokens_details"), "cached_tokens")
    return _figure(data, "prompt_tokens"), hit, _figure(data, "prompt_cache_miss_tokens")


@frozen(kw_only=True)
class Usage:
    """Token usage one response reports (DeepSeek and OpenAI field names both understood)."""

    prompt_tokens: int
    completion_tokens: int
    cache_hit_tokens: int = 0
    cache_miss_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def parse(cls, usage: object) -> Usage:
        """Read a reported `usage` (dict or SDK object); `ValidationError` if malformed."""
        data = as_mapping(usage, "usage")
        prompt, hit, miss = cache_figures(data)
        prompt = check_int(prompt, "usage.prompt_tokens", 0, MAX_TOKENS)
        completion = check_int(
            data.get("completion_tokens"), "usage.completion_tokens", 0, MAX_TOKENS
        )
        hit = hit or 0
        miss = check_int(
            prompt - hit if miss is None else miss, "usage cache miss tokens", 0, MAX_TOKENS
        )
        details = as_mapping(data.get("completion_tokens_details") or {}, "details")
        reasoning = check_int(
            details.get("reasoning_tokens") or 0, "usage reasoning tokens", 0, MAX_TOKENS
        )
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cache_hit_tokens=hit,
            cache_miss_tokens=miss,
            reasoning_tokens=reasoning,
        )
