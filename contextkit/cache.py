"""A model of the provider's prefix cache: predict, check and bound cache hits.

DeepSeek caches automatically: a prompt's leading tokens bill at the cache-hit price when
they match a prefix persisted from an earlier request. Knowing which prefixes get persisted
lets us predict `prompt_cache_hit_tokens` before sending, check reported usage against the
prediction, and say how much of the possible reuse a prompt layout actually got.

The documented rules modelled here:

* only a prefix shared from the first token can hit, and hits count whole 64-token storage
  units (a remainder shorter than a unit is not cached);
* each request persists a prefix at the end of its user input (the prompt) and at the end
  of the model output (prompt + completion), kept in whole units; a later request hits a
  persisted prefix only if it contains all of it, and the hit is the longest such prefix;
* when requests share a prefix that was never persisted, the provider persists that common
  prefix, so the *next* request sharing it hits (the request that revealed it misses);
* long inputs and outputs are also persisted at a fixed token interval, which the docs do
  not give, so that rule is off unless an interval is configured.

Prefixes are named by chained digests of unit-sized token blocks (or of per-message
segments), so a lookup costs O(prompt length / unit) dictionary probes whatever the history.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from hashlib import blake2b
from typing import TypeAlias

from attrs import Attribute, field, frozen

from contextkit.errors import ValidationError

__all__ = [
    "EVERY_PREFIX",
    "SAVED_PREFIXES",
    "UNIT",
    "BoundaryPolicy",
    "CacheComparison",
    "CacheHit",
    "CacheReport",
    "CacheRequest",
    "PrefixCacheModel",
    "Segment",
    "SegmentRequest",
    "compare",
    "replay",
    "upper_bound_hits",
]

UNIT = 64
"""DeepSeek's cache storage unit, in tokens."""

Segment: TypeAlias = tuple[str | bytes, int]
"""One serialized message as `(digest, token count)`: enough to reason about prefixes."""


def _check_int(value: object, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ValidationError(f"{name} must be {kind} integer, got {value!r:.40}")
    return value


def _non_negative(_: object, attribute: Attribute[int], value: object) -> None:
    _check_int(value, attribute.name, 0)


def _positive_or_none(_: object, attribute: Attribute[int | None], value: int | None) -> None:
    if value is not None:
        _check_int(value, attribute.name, 1)


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _opt_ints(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def _segments(value: Iterable[Segment]) -> tuple[Segment, ...]:
    return tuple(value)


def _opt_segments(value: Iterable[Segment] | None) -> tuple[Segment, ...] | None:
    return None if value is None else tuple(value)


@frozen
class CacheHit:
    """How one prompt's tokens split between cache hit and miss; hit + miss = prompt."""

    hit_tokens: int = field(validator=_non_negative)
    miss_tokens: int = field(validator=_non_negative)
    prompt_tokens: int = field(validator=_non_negative)

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
        prompt = _usage_int(usage, "prompt_tokens")
        hit = _usage_int(usage, "prompt_cache_hit_tokens")
        miss = _usage_int(usage, "prompt_cache_miss_tokens")
        if hit is None:
            hit = _usage_int(_usage_get(usage, "prompt_tokens_details"), "cached_tokens")
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


def _usage_get(usage: object, name: str) -> object:
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        return usage.get(name)
    return getattr(usage, name, None)


def _usage_int(usage: object, name: str) -> int | None:
    value = _usage_get(usage, name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"usage.{name} must be an integer, got {value!r:.40}")
    return value


def _total(hits: Iterable[CacheHit]) -> CacheHit:
    hit = miss = 0
    for h in hits:
        hit += h.hit_tokens
        miss += h.miss_tokens
    return CacheHit(hit, miss, hit + miss)


@frozen
class BoundaryPolicy:
    """Which prefixes the provider persists after serving a request.

    The default follows the provider's current documentation (see the module docstring);
    `every_prefix=True` is the older, looser rule that any shared prefix hits, which is
    also the best any prompt layout could get (see `upper_bound_hits`).
    """

    every_prefix: bool = False
    common_prefix: bool = True
    interval: int | None = field(default=None, validator=_positive_or_none)


SAVED_PREFIXES = BoundaryPolicy()
"""Documented behaviour: hits only on persisted prefixes (ends of input/output, detected
common prefixes)."""

EVERY_PREFIX = BoundaryPolicy(every_prefix=True)
"""Every unit-aligned prefix of everything served is reusable: the upper bound."""


@frozen
class CacheRequest:
    """One request as token ids, with the offsets the provider persisted inside its prompt.

    `boundaries` defaults to the prompt end; the completion end is persisted when given.
    """

    prompt: tuple[int, ...] = field(converter=_ints)
    boundaries: tuple[int, ...] | None = field(default=None, converter=_opt_ints)
    completion: tuple[int, ...] | None = field(default=None, converter=_opt_ints)


@frozen
class SegmentRequest:
    """One request as per-message `(digest, token count)` segments; see `CacheRequest`."""

    prompt: tuple[Segment, ...] = field(converter=_segments)
    boundaries: tuple[int, ...] | None = field(default=None, converter=_opt_ints)
    completion: tuple[Segment, ...] | None = field(default=None, converter=_opt_segments)


@frozen
class _Prefixes:
    """Checkpoints of one sequence: `keys[i]` names its first `offsets[i]` tokens.

    Keys are chained digests, so equal keys mean equal prefixes, and a key present in an
    index implies every earlier key of the same sequence was once present too.
    """

    offsets: tuple[int, ...]
    keys: tuple[bytes, ...]
    length: int

    def head(self, count: int, length: int) -> _Prefixes:
        return _Prefixes(self.offsets[:count], self.keys[:count], length)


def _token_prefixes(tokens: Sequence[int], unit: int) -> _Prefixes:
    try:
        data = array("q", tokens).tobytes()
    except (TypeError, OverflowError) as exc:
        raise ValidationError(f"token ids must be integers that fit in 64 bits: {exc}") from None
    step = unit * 8
    key = b"tokens"
    offsets: list[int] = []
    keys: list[bytes] = []
    view = memoryview(data)
    for end in range(step, len(data) + 1, step):
        key = blake2b(key + view[end - step : end], digest_size=16).digest()
        offsets.append(end // 8)
        keys.append(key)
    return _Prefixes(tuple(offsets), tuple(keys), len(data) // 8)


def _segment_prefixes(segments: Sequence[Segment]) -> _Prefixes:
    key = b"segments"
    offset = 0
    offsets: list[int] = []
    keys: list[bytes] = []
    for i, segment in enumerate(segments):
        try:
            digest, n_tokens = segment
        except (TypeError, ValueError):
            raise ValidationError(
                f"segment {i} must be a (digest, token count) pair, got {segment!r:.60}"
            ) from None
        if isinstance(digest, str):
            raw = b"s" + digest.encode("utf-8", "surrogatepass")
        elif isinstance(digest, bytes):
            raw = b"b" + digest
        else:
            raise ValidationError(f"segment {i} digest must be str or bytes, got {digest!r:.40}")
        if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 0:
            raise ValidationError(
                f"segment {i} token count must be a non-negative integer, got {n_tokens!r:.40}"
            )
        size = len(raw).to_bytes(8, "little")
        key = blake2b(key + size + raw + n_tokens.to_bytes(8, "little"), digest_size=16).digest()
        offset += n_tokens
        offsets.append(offset)
        keys.append(key)
    return _Prefixes(tuple(offsets), tuple(keys), offset)


class PrefixCacheModel:
    """The provider's prefix cache for one account: feed it requests in the order sent.

    `request` predicts a prompt's hit, then records what the provider would persist from
    it. With `max_entries`, each index keeps that many prefixes, least recently used out.
    """

    __slots__ = ("_max_entries", "_policy", "_saved", "_seen", "_unit")

    def __init__(
        self,
        unit: int = UNIT,
        policy: BoundaryPolicy = SAVED_PREFIXES,
        *,
        max_entries: int | None = None,
    ) -> None:
        _check_int(unit, "unit", 1)
        if max_entries is not None:
            _check_int(max_entries, "max_entries", 1)
        if not isinstance(policy, BoundaryPolicy):
            raise ValidationError(f"policy must be a BoundaryPolicy, got {policy!r:.60}")
        self._unit = unit
        self._policy = policy
        self._max_entries = max_entries
        self._saved: OrderedDict[bytes, int] = OrderedDict()
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    @property
    def unit(self) -> int:
        return self._unit

    @property
    def policy(self) -> BoundaryPolicy:
        return self._policy

    def __len__(self) -> int:
        """Number of persisted prefixes currently held."""
        return len(self._saved)

    def clear(self) -> None:
        """Forget everything, as after the provider evicted the account's cache."""
        self._saved.clear()
        self._seen.clear()

    def request(
        self,
        prompt: Sequence[int],
        *,
        boundaries: Sequence[int] | None = None,
        completion: Sequence[int] | None = None,
    ) -> CacheHit:
        """Serve a prompt given as token ids: its predicted hit, then persist its prefixes.

        `boundaries` are the offsets in the prompt where the provider persists a prefix
        (ends of user inputs and model outputs); given, they replace the default, the
        prompt end. The end of `completion`, when given, is always persisted.
        """
        content = list(prompt)
        if completion is not None:
            content.extend(completion)
        prefixes = _token_prefixes(content, self._unit)
        n = len(prompt)
        head = prefixes.head(n // self._unit, n)
        return self._serve(prefixes, head, boundaries, completion is not None)

    def request_segments(
        self,
        prompt: Sequence[Segment],
        *,
        boundaries: Sequence[int] | None = None,
        completion: Sequence[Segment] | None = None,
    ) -> CacheHit:
        """`request` for per-message segments, without the token ids.

        Two prompts are taken to diverge at the start of the first segment that differs
        (conservative); `boundaries` are token offsets, as in `request`.
        """
        content = list(prompt)
        if completion is not None:
            content.extend(completion)
        prefixes = _segment_prefixes(content)
        head = prefixes.head(len(prompt), prefixes.offsets[len(prompt) - 1] if prompt else 0)
        return self._serve(prefixes, head, boundaries, completion is not None)

    def submit(self, request: CacheRequest | SegmentRequest) -> CacheHit:
        """Serve a `CacheRequest` or `SegmentRequest`."""
        if isinstance(request, SegmentRequest):
            return self.request_segments(
                request.prompt, boundaries=request.boundaries, completion=request.completion
            )
        if isinstance(request, CacheRequest):
            return self.request(
                request.prompt, boundaries=request.boundaries, completion=request.completion
            )
        raise ValidationError(f"expected a CacheRequest or SegmentRequest, got {request!r:.60}")

    def lookup(self, prompt: Sequence[int]) -> CacheHit:
        """The hit `request` would predict now, changing nothing."""
        n = len(prompt)
        return self._hit(_token_prefixes(prompt, self._unit).head(n // self._unit, n), touch=False)

    def lookup_segments(self, prompt: Sequence[Segment]) -> CacheHit:
        """The hit `request_segments` would predict now, changing nothing."""
        return self._hit(_segment_prefixes(prompt), touch=False)

    def _serve(
        self,
        content: _Prefixes,
        prompt: _Prefixes,
        boundaries: Sequence[int] | None,
        completed: bool,
    ) -> CacheHit:
        offsets = _check_boundaries(boundaries, prompt.length)
        result = self._hit(prompt, touch=True)
        policy = self._policy
        if policy.every_prefix:
            for offset in content.offsets:
                self._save(content, offset)
            return result
        shared = self._shared(prompt) if policy.common_prefix else 0
        for offset in offsets:
            self._save(prompt, offset)
        if completed:
            self._save(content, content.length)
        if shared:
            self._save(prompt, shared)
        if policy.interval is not None:
            for offset in range(policy.interval, content.length + 1, policy.interval):
                self._save(content, offset)
        if policy.common_prefix:
            self._remember(content)
        return result

    def _hit(self, prompt: _Prefixes, *, touch: bool) -> CacheHit:
        best, best_key = 0, b""
        saved = self._saved
        for key in prompt.keys:
            tokens = saved.get(key)
            if tokens is not None and tokens > best:
                best, best_key = tokens, key
        if touch and best:
            saved.move_to_end(best_key)
        return CacheHit(best, prompt.length - best, prompt.length)

    def _save(self, prefixes: _Prefixes, boundary: int) -> None:
        """Persist the unit-aligned prefix ending at or before `boundary`.

        It is filed under the first checkpoint that covers it, so a prompt that contains
        that checkpoint contains the prefix (exact for tokens, conservative for segments).
        """
        aligned = boundary // self._unit * self._unit
        if aligned == 0:
            return
        key = prefixes.keys[bisect_left(prefixes.offsets, aligned)]
        saved = self._saved
        if saved.get(key, 0) < aligned:
            saved[key] = aligned
        saved.move_to_end(key)
        _trim(saved, self._max_entries)

    def _shared(self, prompt: _Prefixes) -> int:
        """Longest checkpoint of `prompt` that an earlier request also had, in tokens."""
        seen = self._seen
        for offset, key in zip(reversed(prompt.offsets), reversed(prompt.keys), strict=True):
            if key in seen:
                seen.move_to_end(key)
                return offset
        return 0

    def _remember(self, content: _Prefixes) -> None:
        seen = self._seen
        for key in content.keys:
            seen[key] = None
            seen.move_to_end(key)
        _trim(seen, self._max_entries)


def _check_boundaries(boundaries: Sequence[int] | None, length: int) -> Sequence[int]:
    if boundaries is None:
        return (length,)
    for offset in boundaries:
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= length:
            raise ValidationError(
                f"boundary {offset!r:.40} must be an integer offset within the prompt (0..{length})"
            )
    return boundaries


def _trim(index: OrderedDict[bytes, int] | OrderedDict[bytes, None], limit: int | None) -> None:
    if limit is not None:
        while len(index) > limit:
            index.popitem(last=False)


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
        return _total(self.results)

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
        return _total(self.predicted)

    @property
    def reported_total(self) -> CacheHit:
        return _total(self.reported)

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
