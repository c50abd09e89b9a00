"""Predicted cache hits in bulk: replayed sequences, their upper bounds, and comparisons
with the hits the provider reported."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attrs import frozen

from contextkit.cache.hits import CacheHit, total
from contextkit.cache.model import (
    EVERY_PREFIX,
    SAVED_PREFIXES,
    UNIT,
    BoundaryPolicy,
    CacheRequest,
    PrefixCacheModel,
    SegmentRequest,
)
from contextkit.errors import ValidationError

__all__ = ["CacheComparison", "CacheReport", "compare", "replay", "upper_bound_hits"]


def _as_request(
    item: Sequence[int] | CacheRequest | SegmentRequest,
) -> CacheRequest | SegmentRequest:
    if isinstance(item, (CacheRequest, SegmentRequest)):
        return item
    return CacheRequest(item)


def upper_bound_hits(
    prompts: Iterable[Sequence[int] | CacheRequest | SegmentRequest], *, unit: int = UNIT
) -> list[int]:
    """For each prompt, the most any cache could serve: its longest prefix shared with
    anything earlier (prompts and given completions), rounded down to the unit.
    """
    bound = PrefixCacheModel(unit, EVERY_PREFIX)
    return [bound.submit(_as_request(p)).hit_tokens for p in prompts]


@frozen
class CacheReport:
    """Predicted hits of a replayed request sequence, with what was possible."""

    results: tuple[CacheHit, ...]
    upper_bounds: tuple[int, ...]

    def __attrs_post_init__(self) -> None:
        if len(self.results) != len(self.upper_bounds):
            raise ValidationError("a CacheReport needs one upper bound per result")

    @property
    def total(self) -> CacheHit:
        return total(self.results)

    @property
    def hit_tokens(self) -> int:
        return sum(r.hit_tokens for r in self.results)

    @property
    def miss_tokens(self) -> int:
        return sum(r.miss_tokens for r in self.results)

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.results)

    @property
    def hit_ratio(self) -> float:
        return self.total.hit_ratio

    @property
    def upper_bound_tokens(self) -> int:
        return sum(self.upper_bounds)

    @property
    def efficiency(self) -> float:
        """Hit tokens as a share of the possible ones; 1.0 when nothing could hit."""
        possible = self.upper_bound_tokens
        return self.hit_tokens / possible if possible else 1.0


def replay(
    requests: Iterable[CacheRequest | SegmentRequest],
    *,
    unit: int = UNIT,
    policy: BoundaryPolicy = SAVED_PREFIXES,
    max_entries: int | None = None,
) -> CacheReport:
    """Run requests through a fresh model and report hits next to their upper bounds."""
    model = PrefixCacheModel(unit, policy, max_entries=max_entries)
    bound = PrefixCacheModel(unit, EVERY_PREFIX)
    results: list[CacheHit] = []
    bounds: list[int] = []
    for request in requests:
        results.append(model.submit(request))
        bounds.append(bound.submit(request).hit_tokens)
    return CacheReport(tuple(results), tuple(bounds))


@frozen
class CacheComparison:
    """Predicted against reported cache figures, request by request."""

    predicted: tuple[CacheHit, ...]
    reported: tuple[CacheHit, ...]

    def __attrs_post_init__(self) -> None:
        if len(self.predicted) != len(self.reported):
            raise ValidationError(
                f"{len(self.predicted)} predictions but {len(self.reported)} reports; "
                "compare the same requests"
            )

    @property
    def predicted_total(self) -> CacheHit:
        return total(self.predicted)

    @property
    def reported_total(self) -> CacheHit:
        return total(self.reported)

    @property
    def hit_error(self) -> int:
        """Predicted minus reported hit tokens, over all requests."""
        return self.predicted_total.hit_tokens - self.reported_total.hit_tokens

    @property
    def mismatches(self) -> tuple[int, ...]:
        """Indices of requests whose predicted hit differs from the reported one."""
        return tuple(
            i
            for i, (p, r) in enumerate(zip(self.predicted, self.reported, strict=True))
            if p.hit_tokens != r.hit_tokens
        )

    @property
    def prompt_mismatches(self) -> tuple[int, ...]:
        """Indices where the prompt sizes differ: token counting, not caching, is off."""
        return tuple(
            i
            for i, (p, r) in enumerate(zip(self.predicted, self.reported, strict=True))
            if p.prompt_tokens != r.prompt_tokens
        )

    @property
    def exact(self) -> bool:
        return not self.mismatches and not self.prompt_mismatches


def compare(
    predicted: Iterable[CacheHit] | CacheReport, reported: Iterable[object]
) -> CacheComparison:
    """Pair predictions with reported usage (dicts, SDK usage objects or `CacheHit`s)."""
    hits = predicted.results if isinstance(predicted, CacheReport) else tuple(predicted)
    return CacheComparison(hits, tuple(CacheHit.from_usage(u) for u in reported))
