"""`BaseThread`: every decision a thread handle makes, shared by `Thread` and `AsyncThread`.

Each operation is a plan of steps (`contextkit.db.steps`) built from the layers below
(`window`, `compaction`, `usage`, the `db` package); `Thread` runs plans with the sync
driver, `AsyncThread` awaits them with the async one. Arguments are checked when a plan
starts, before its first step touches the database.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, Protocol

from contextkit import compaction, recall, usage, window
from contextkit._sdk import Usage
from contextkit._validators import check_int
from contextkit.db import cut, messages, pins, search, steps, threads
from contextkit.db.engine import Connection, Engine
from contextkit.db.messages import Pending, pending
from contextkit.db.steps import Steps
from contextkit.db.threads import ThreadRef, ThreadState
from contextkit.errors import CacheWarning, NotFound, ValidationError
from contextkit.policy import CompactionPolicy
from contextkit.prompt import Prompt
from contextkit.recall import SearchHit
from contextkit.settings import thread_settings
from contextkit.summarizers import Summarizer, Summary
from contextkit.types import Message, ThreadInfo, ToolCall, check_id
from contextkit.usage import Stats

__all__ = ["PAGE", "BaseThread", "Defaults"]

PAGE = 500


class Defaults(Protocol):
    """What a thread takes from its store: the default compaction policy and summarizer."""

    compaction: CompactionPolicy
    summarizer: Summarizer


_TOOL_WARNINGS: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()
"""Threads (by key) a store has warned about a changed tool set: once per thread."""


class BaseThread:
    """A handle on a stored thread, bound to its owner: the parts that do no I/O."""

    def __init__(self, defaults: Defaults, engine: Engine, state: ThreadState) -> None:
        self._defaults = defaults
        self._ref = ThreadRef(engine, state.pk, state.id, state.owner)
        self._info = state.info()
        self._last_prompt: Prompt | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r} owner={self.owner!r} model={self.model!r}>"

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def owner(self) -> str:
        return self._info.owner

    @property
    def model(self) -> str:
        return self._info.model

    @property
    def system(self) -> str | None:
        return self._info.system

    @property
    def max_context_tokens(self) -> int:
        return self._info.max_context_tokens

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self._info.metadata

    @property
    def ref(self) -> ThreadRef:
        """The thread's database, key and owner, for the operations in the layers below."""
        return self._ref

    @property
    def last_prompt(self) -> Prompt | None:
        """The prompt of this handle's last `prepare()`/`build()`, or None."""
        return self._last_prompt

    # -- plans: one per operation, run by the twins ------------------------------------

    def _info_plan(self) -> Steps[ThreadInfo]:
        state = yield from steps.read(partial(threads.locked, ref=self._ref))
        self._info = state.info()
        return self._info

    def _write_plan(self, items: list[Pending]) -> Steps[list[Message]]:
        if not items:
            return []

        def txn(conn: Connection) -> list[Message]:
            return messages.insert_messages(conn, threads.locked(conn, self._ref), items)

        return (yield from steps.write(txn))

    def _append_plan(
        self, message: object, idempotency_key: str | None, pinned: bool
    ) -> Steps[Message]:
        stored = yield from self._write_plan([pending(message, idempotency_key, pinned)])
        return stored[0]

    def _extend_plan(self, items: Iterable[object]) -> Steps[list[Message]]:
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise ValidationError(f"extend takes a list of messages, got {type(items).__name__}")
        return (yield from self._write_plan([pending(m, None, False) for m in items]))

    @staticmethod
    def _check_page(after: int, before: int | None, page_size: int) -> None:
        check_int(page_size, "page_size", 1, 100_000)
        check_int(after, "after", 0)
        if before is not None:
            check_int(before, "before", 0)

    def _page_plan(self, after: int, before: int | None, limit: int) -> Steps[list[Message]]:
        return steps.read(partial(self._page, after=after, before=before, limit=limit))

    def _prepare_plan(self, max_tokens: int, extra: object, options: Any) -> Steps[Prompt]:
        prompt = yield from window.prepare(
            self._ref,
            model=self.model,
            max_tokens=max_tokens,
            defaults=(self._defaults.compaction, self._defaults.summarizer),
            extra=extra,
            **options,
        )
        warned = _TOOL_WARNINGS.setdefault(self._defaults, set())
        if prompt.prefix_break == "tools" and self._ref.pk not in warned:
            warned.add(self._ref.pk)
            warnings.warn(
                f"the tool set of thread {self.id!r} differs from its last call's: DeepSeek "
                "renders tools into the system prompt, so every earlier turn renders anew and "
                "the provider's prefix cache misses; declare the same tools on every call of "
                "a thread",
                CacheWarning,
                stacklevel=6,
            )
        self._last_prompt = prompt
        return prompt

    def _check_turn_plan(self, message: object, max_tokens: int, options: Any) -> Steps[Message]:
        parsed = Message.parse(message)
        yield from window.check_turn(
            self._ref, parsed, model=self.model, max_tokens=max_tokens, **options
        )
        return parsed

    def _answered_plan(
        self, message: object, idempotency_key: str, final: bool
    ) -> Steps[tuple[Message, usage.Recorded | None] | None]:
        key = check_id(idempotency_key, "idempotency_key")
        return (yield from usage.answered(self._ref, Message.parse(message), key, final=final))

    @staticmethod
    def _check_format(format: str) -> None:
        if format not in ("openai", "anthropic"):  # before prepare, which may compact
            raise ValidationError(f"format must be 'openai' or 'anthropic', got {format!r:.40}")

    def _record_plan(
        self,
        response: object,
        prompt: Prompt | None,
        latency_ms: float | None,
        predicted_cache_hit_tokens: int | None,
    ) -> Steps[usage.Recorded]:
        return usage.record_call(
            self._ref,
            response,
            prompt=prompt if prompt is not None else self._last_prompt,
            latency_ms=latency_ms,
            predicted_cache_hit_tokens=predicted_cache_hit_tokens,
        )

    def _record_usage_plan(self, recorded: Usage, options: Any) -> Steps[float | None]:
        return usage.record_usage(self._ref, recorded, **options)

    def _stats_plan(self) -> Steps[Stats]:
        return usage.stats(self._ref)

    def _compact_plan(
        self,
        summarizer: Summarizer | None,
        policy: CompactionPolicy | None,
        max_tokens: int,
    ) -> Steps[Summary | None]:
        return compaction.compact(
            self._ref,
            summarizer=summarizer or self._defaults.summarizer,
            policy=policy or self._defaults.compaction,
            max_tokens=max_tokens,
            force=True,
        )

    def _summaries_plan(self) -> Steps[list[Summary]]:
        return compaction.summaries_of(self._ref)

    def _pending_calls_plan(self) -> Steps[list[ToolCall]]:
        def read(conn: Connection) -> list[ToolCall]:
            threads.locked(conn, self._ref)
            return cut.pending_calls(conn, self._ref.pk)

        return steps.read(read)

    def _get_plan(self, seq: int) -> Steps[Message]:
        check_int(seq, "seq", 1)
        page = yield from self._page_plan(seq - 1, seq + 1, 1)
        if not page:
            raise NotFound(f"thread {self.id!r} has no message {seq}")
        return page[0]

    def _update_plan(
        self,
        model: str | None,
        system: str | None,
        max_context_tokens: int | None,
        metadata: Mapping[str, Any] | None,
    ) -> Steps[ThreadInfo]:
        values = thread_settings(
            model=model, system=system, max_context_tokens=max_context_tokens, metadata=metadata
        )

        def txn(conn: Connection) -> ThreadInfo:
            return threads.update_settings(conn, threads.locked(conn, self._ref), values).info()

        self._info = yield from steps.write(txn)
        return self._info

    def _delete_plan(self) -> Steps[None]:
        return steps.write(partial(threads.delete_thread, ref=self._ref))

    def _search_plan(
        self, query: str, limit: int, roles: Iterable[str] | None, before_seq: int | None
    ) -> Steps[list[SearchHit]]:
        parsed = recall.parse_query(query)
        found = yield from steps.read(
            partial(
                search.search_thread,
                ref=self._ref,
                match=parsed.match(),
                limit=recall.check_limit(limit),
                roles=recall.check_roles(roles),
                before_seq=None if before_seq is None else check_int(before_seq, "before_seq", 1),
            )
        )
        return recall.hits(found, parsed)

    def _pin_plan(self, seq: int, pinned: bool) -> Steps[Message]:
        check_int(seq, "seq", 1)
        return steps.write(partial(pins.set_pinned, ref=self._ref, seq=seq, pinned=pinned))

    def _page(
        self, conn: Connection, *, after: int, before: int | None, limit: int
    ) -> list[Message]:
        threads.locked(conn, self._ref)
        return messages.page(conn, self._ref.pk, after, before, limit)
