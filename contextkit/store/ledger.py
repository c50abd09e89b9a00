"""Kept for one release: the bookkeeping moved to `contextkit.accounting` (pure) and
`contextkit.db.recount` (its SQL); `spec_for` to `contextkit.models`."""

from contextkit.accounting import PAD, Entry, TurnState, account, measure, needs_flip
from contextkit.db.recount import recount, recount_all
from contextkit.models import spec_for
from contextkit.types import Message


def replay_form(message: Message, kept: bool) -> dict[str, object]:
    """The message as prompts carry it (kept for one release)."""
    return message.to_openai(reasoning=kept)


__all__ = [
    "PAD",
    "Entry",
    "TurnState",
    "account",
    "measure",
    "needs_flip",
    "recount",
    "recount_all",
    "replay_form",
    "spec_for",
]
