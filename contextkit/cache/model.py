"""A model of the provider's prefix cache: which prefixes it persists, what a prompt hits.

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

_Prefixes are named by chained digests of unit-sized token blocks (or of per-message
segments), so a lookup costs O(prompt length / unit) dictionary probes whatever the history.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from hashlib import blake2b
from typing import TypeAlias

from attrs import field, frozen
from attrs.validators import optional

from contextkit._validators import check_count, positive_int
from contextkit.cache.hits import CacheHit
from contextkit.errors import ValidationError

__all__ = [
    "EVERY_PREFIX",
    "SAVED_PREFIXES",
    "UNIT",
    "BoundaryPolicy",
    "CacheRequest",
    "PrefixCacheModel",
    "Segment",
    "SegmentRequest",
]

UNIT = 64
"""DeepSeek's cache storage unit, in tokens."""

Segment: TypeAlias = tuple[str | bytes, int]
"""One serialized message as `(digest, token count)`: enough to reason about prefixes."""


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _opt_ints(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def _segments(value: Iterable[Segment]) -> tuple[Segment, ...]:
    return tuple(value)


def _opt_segments(value: Iterable[Segment] | None) -> tuple[Segment, ...] | None:
    return None if value is None else tuple(value)


@frozen
class BoundaryPolicy:
    """Which prefixes the provider persists after serving a request.

    The default follows the provider's current documentation (see the module docstring);
    `every_prefix=True` is the older, looser rule that any shared prefix hits, which is
    also the best any prompt layout could get (see `upper_bound_hits`).
    """

    every_prefix: bool = False
    common_prefix: bool = True
    interval: int | None = field(default=None, validator=optional(positive_int))


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
        check_count(n_tokens, f"segment {i} token count")
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
        check_count(unit, "unit", positive=True)
        if max_entries is not None:
            check_count(max_entries, "max_entries", positive=True)
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
