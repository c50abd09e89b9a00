"""Kept for one release: the bookkeeping moved to `contextkit.accounting` (pure) and
`contextkit.db.recount` (its SQL); `spec_for` to `contextkit.models`."""

from contextkit.accounting import PAD, Entry, TurnState, account, measure, needs_flip
from contextkit.db.recount import recount, recount_all
from contextkit.models import spec_for

__all__ = [
    "PAD",
    "Entry",
    "TurnState",
    "account",
    "measure",
    "needs_flip",
    "recount",
    "recount_all",
    "spec_for",
]
