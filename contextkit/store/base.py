"""`BaseStore`: the decisions `Store` and `AsyncStore` share (arguments, owners, plans)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from contextkit import recall
from contextkit._validators import check_int
from contextkit.db import calls, search, steps, threads
from contextkit.db.steps import Steps
from contextkit.db.threads import ThreadState
from contextkit.errors import NotFound, UnknownModelError, ValidationError
from contextkit.models import spec_for
from contextkit.policy import CompactionPolicy
from contextkit.recall import SearchHit
from contextkit.settings import check_owner, thread_settings
from contextkit.summarizers import ExtractiveSummarizer, Summarizer
from contextkit.tokens.calibration import Calibration
from contextkit.types import check_id

__all__ = ["THREADS_PAGE", "BaseStore"]

THREADS_PAGE = 200


class BaseStore:
    """A store's defaults and the plans of its operations; the twins run them."""

    def __init__(
        self,
        *,
        compaction: CompactionPolicy | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.compaction: CompactionPolicy = compaction or CompactionPolicy()
        """Default compaction policy of `build()` on this store's threads."""
        self.summarizer: Summarizer = summarizer or ExtractiveSummarizer()
        """Default summarizer (offline and deterministic unless one is given)."""

    def _thread_plan(
        self,
        id: str,
        model: str | None,
        owner: str,
        system: str | None,
        max_context_tokens: int | None,
        metadata: Mapping[str, Any] | None,
    ) -> Steps[ThreadState]:
        check_id(id, "thread id")
        owner = check_owner(owner)
        values = thread_settings(
            model=model, system=system, max_context_tokens=max_context_tokens, metadata=metadata
        )
        return (yield from steps.write(lambda conn: threads.get_or_create(conn, id, owner, values)))

    def _get_thread_plan(self, id: str, owner: str) -> Steps[ThreadState]:
        check_id(id, "thread id")
        owner = check_owner(owner)
        state = yield from steps.read(partial(threads.by_id, id=id, owner=owner))
        if state is None:
            raise NotFound(
                f"no thread {id!r} of owner {owner!r}; create it with "
                "store.thread(id, model=..., owner=...), or list the owner's threads"
            )
        return state

    def _admin_thread_plan(self, id: str, owner: str | None) -> Steps[ThreadState | None]:
        check_id(id, "thread id")
        if owner is not None:
            owner = check_owner(owner)
            return (yield from steps.read(partial(threads.by_id, id=id, owner=owner)))
        found = yield from steps.read(partial(threads.by_id_any_owner, id=id))
        if len(found) > 1:
            owners = ", ".join(repr(s.owner) for s in found[:5])
            raise ValidationError(
                f"{len(found)} owners have a thread {id!r} ({owners}); name the owner "
                "(owner=..., or --owner on the command line)"
            )
        return found[0] if found else None

    @staticmethod
    def _threads_args(owner: str, page_size: int) -> str:
        check_int(page_size, "page_size", 1, 100_000)
        return check_owner(owner)

    @staticmethod
    def _threads_page_plan(
        owner: str | None, cursor: tuple[Any, int] | None, limit: int
    ) -> Steps[list[ThreadState]]:
        return steps.read(partial(threads.page, owner=owner, cursor=cursor, limit=limit))

    @staticmethod
    def _calibration_plan(model: str) -> Steps[Calibration]:
        try:
            name = spec_for(model).name
        except UnknownModelError:  # a model this process has not registered: as stored
            name = model
        return steps.read(partial(calls.calibration, model=name))

    @staticmethod
    def _search_plan(
        query: str, owner: str, limit: int, roles: Iterable[str] | None
    ) -> Steps[list[SearchHit]]:
        parsed = recall.parse_query(query)
        found = yield from steps.read(
            partial(
                search.search_owner,
                owner=check_owner(owner),
                match=parsed.match(),
                limit=recall.check_limit(limit),
                roles=recall.check_roles(roles),
            )
        )
        return recall.hits(found, parsed)
