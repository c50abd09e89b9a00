"""`CacheHit`: how one prompt's tokens split between cache hit and miss, predicted or reported.

Reported usage is read by `contextkit._sdk.cache_figures`, the one parser of usage figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import field, frozen

from contextkit._sdk import cache_figures
from contextkit._validators import non_negative_int
from contextkit.errors import ValidationError

__all__ = ["CacheHit", "total"]

_USAGE_FIELDS = (
    "prompt_tokens",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "prompt_tokens_details",
)


@frozen
class CacheHit:
    """How one prompt's tokens split between cache hit and miss; hit + miss = prompt."""

    hit_tokens: int = field(validator=non_negative_int)
    miss_tokens: int = field(validator=non_negative_int)
    prompt_tokens: int = field(validator=non_negative_int)

    def __attrs_post_init__(self) -> None:
        if self.hit_tokens + self.miss_tokens != self.prompt_tokens:
            raise ValidationError(
                f"hit ({self.hit_tokens}) + miss ({self.miss_tokens}) must equal "
                f"prompt tokens ({self.prompt_tokens})"
            )

    @property
    def hit_ratio(self) -> float:
        """Share of the prompt served from cache; 0.0 for an empty prompt."""
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @classmethod
    def from_usage(cls, usage: object) -> CacheHit:
        """Read a reported `usage` (dict or SDK object); a `CacheHit` passes through.

        Uses `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`, falling back to
        `prompt_tokens_details.cached_tokens`; a missing figure is derived from the others.
        """
        if isinstance(usage, CacheHit):
            return usage
        prompt, hit, miss = cache_figures(_readable(usage, _USAGE_FIELDS))
        if hit is not None and miss is not None:
            return cls(hit, miss, hit + miss if prompt is None else prompt)
        if prompt is None:
            raise ValidationError("usage reports neither prompt_tokens nor both cache figures")
        if hit is not None:
            return cls(hit, prompt - hit, prompt)
        if miss is not None:
            return cls(prompt - miss, miss, prompt)
        raise ValidationError(
            "usage reports no cache figures: expected prompt_cache_hit_tokens or "
            "prompt_cache_miss_tokens"
        )


def _readable(value: object, names: tuple[str, ...]) -> object:
    """`value` as `cache_figures` takes it: None as no figures, and a plain object with
    attributes (not a mapping or SDK object, e.g. a test double) as a mapping of `names`."""
    if value is None:
        return {}
    if isinstance(value, Mapping) or callable(getattr(value, "model_dump", None)):
        return value
    view = {name: getattr(value, name, None) for name in names}
    if view.get("prompt_tokens_details") is not None:
        view["prompt_tokens_details"] = _readable(view["prompt_tokens_details"], ("cached_tokens",))
    return view


def total(hits: Iterable[CacheHit]) -> CacheHit:
    """The sum of `hits`, as one `CacheHit`."""
    hit = miss = 0
    for h in hits:
        hit += h.hit_tokens
        miss += h.miss_tokens
    return CacheHit(hit, miss, hit + miss)
