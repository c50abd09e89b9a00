"""`CompactionPolicy`: when a thread compacts and how much of its window it keeps.

Rare and large: nothing happens until the prompt passes the high-water mark; then
everything but the most recent share of the budget is folded into the rolling summary.
"""

from __future__ import annotations

from attrs import field, frozen

from contextkit._validators import at_least, fraction
from contextkit.errors import ValidationError

__all__ = ["LOW_WATER", "MAX_FOLD", "CompactionPolicy"]

LOW_WATER = 0.6
"""When the window must shrink without a summary, the live part drops to this share."""

MAX_FOLD = 4
"""A compaction reads at most this many budgets of the messages leaving the window."""


@frozen(kw_only=True)
class CompactionPolicy:
    """When to compact and how much to keep.

    `high_water`: compact once the prompt would pass this share of the budget.
    `keep_recent`: the live turns kept verbatim after a compaction, as a share of the budget.
    The summary gets `summary_share` of the budget, within [`min_summary_tokens`,
    `max_summary_tokens`] (chat summaries of 200-400 tokens; more for large windows).
    """

    high_water: float = field(default=0.8, validator=fraction)
    keep_recent: float = field(default=0.3, validator=fraction)
    summary_share: float = field(default=0.05, validator=fraction)
    min_summary_tokens: int = field(default=256, validator=at_least(16))
    max_summary_tokens: int = field(default=4_000, validator=at_least(16))
    enabled: bool = True

    def __attrs_post_init__(self) -> None:
        if self.keep_recent >= self.high_water:
            raise ValidationError(
                f"keep_recent ({self.keep_recent}) must be below high_water ({self.high_water})"
            )
        if self.min_summary_tokens > self.max_summary_tokens:
            raise ValidationError("min_summary_tokens must not exceed max_summary_tokens")

    def summary_tokens(self, budget: int) -> int:
        """The summary length target for a prompt budget."""
        scaled = int(budget * self.summary_share)
        return max(self.min_summary_tokens, min(self.max_summary_tokens, scaled))
