"""A model of the provider's prefix cache: predict, check and bound cache hits.

`PrefixCacheModel` (in `contextkit.cache.model`, with the rules it follows) predicts what
each request hits; `contextkit.cache.report` replays sequences, bounds them and compares
predictions with reported usage; `CacheHit` (`contextkit.cache.hits`) is one prompt's split.
"""

from __future__ import annotations

from contextkit.cache.hits import CacheHit
from contextkit.cache.model import (
    EVERY_PREFIX,
    SAVED_PREFIXES,
    UNIT,
    BoundaryPolicy,
    CacheRequest,
    PrefixCacheModel,
    Segment,
    SegmentRequest,
)
from contextkit.cache.report import (
    CacheComparison,
    CacheReport,
    compare,
    replay,
    upper_bound_hits,
)

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
