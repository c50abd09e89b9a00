"""`Thread`: one conversation's handle: append, read, build, record, compact, delete.

A facade: every decision lives in the layers below (`window`, `compaction`, `usage`, the
`db` package); this class binds them to one thread and its owner.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, overload

from contextkit import compaction, recall, usage, window
from contextkit._validators import check_int
from contextkit.db import cut, messages, pins, search, threads
from contextkit.db import engine as db
from contextkit.db.messages import Pending, pending
from contextkit.db.threads import ThreadRef, ThreadState
from contextkit.errors import CacheWarning, NotFound, ValidationError
from contextkit.policy import CompactionPolicy
from contextkit.prompt import Prompt
from contextkit.recall import SearchHit
from contextkit.settings import thread_settings
from contextkit.summarizers import Summarizer, Summary
from contextkit.types import Message, ThreadInfo, ToolCall, check_id
from contextkit.usage import Stats

if TYPE_CHECKING:
    from contextkit.store.store import Store

__all__ = ["Thread"]

_PAGE = 500
_TOOL_WARNINGS: weakref.WeakKeyDictionary[Store, set[int]] = weakref.WeakKeyDictionary()
"""Threads (by key) a store has warned about a changed tool set: once per thread."""


class Thread:
    """A handle on a stored thread, bound to its owner.

    Obtained from `Store.thread()`; cheap to create, holds no connection. Messages are
    append-only: seqs are 1, 2, 3, … with no gaps, assigned under the thread's write lock.
    """

    def __init__(self, store: Store, state: ThreadState) -> None:
        self._store = store
        self._ref = ThreadRef(store.engine, state.pk, state.id, state.owner)
        self._info = state.info()
        self._last_prompt: Prompt | None = None

    def __repr__(self) -> str:
        return f"<Thread {self.id!r} owner={self.owner!r} model={self.model!r}>"

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
    def store(self) -> Store:
        return self._store

    @property
    def ref(self) -> ThreadRef:
        """The thread's database, key and owner, for the operations in the layers below."""
        return self._ref

    @property
    def last_prompt(self) -> Prompt | None:
        """The prompt of this handle's last `prepare()`/`build()`, or None."""
        return self._last_prompt

    def info(self) -> ThreadInfo:
        """A fresh snapshot of the thread's settings and size."""
        self._info = db.read(self._ref.engine, partial(threads.locked, ref=self._ref)).info()
        return self._info

    def __len__(self) -> int:
        return self.info().message_count

    def append(
        self, message: object, *, idempotency_key: str | None = None, pinned: bool = False
    ) -> Message:
        """Validate and store one message; returns it with its `seq`.

        `message` is an OpenAI-format dict, an openai SDK message object (e.g. a
        `ChatCompletionMessage`) or a `Message`. With an `idempotency_key`, a retry of the
        same append returns the stored message instead of adding a second row. `pinned`
        messages stay in every prompt, right after the system prompt. Invalid input raises
        `ValidationError` and writes nothing.
        """
        return self._write([pending(message, idempotency_key, pinned)])[0]

    def extend(self, messages: Iterable[object]) -> list[Message]:
        """Append several messages in one transaction: all are stored, or none."""
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
            raise ValidationError(f"extend takes a list of messages, got {type(messages).__name__}")
        return self._write([pending(m, None, False) for m in messages])

    def messages(
        self, *, after: int = 0, before: int | None = None, page_size: int = _PAGE
    ) -> Iterator[Message]:
        """Iterate stored messages in seq order, `after < seq < before`, a page at a time.

        Never loads the whole thread: each page is one indexed range query.
        """
        check_int(page_size, "page_size", 1, 100_000)
        check_int(after, "after", 0)
        if before is not None:
            check_int(before, "before", 0)
        last = after
        while True:
            page = db.read(
                self._ref.engine, partial(self._page, after=last, before=before, limit=page_size)
            )
            yield from page
            if len(page) < page_size:
                return
            last = page[-1].seq or last

    def prepare(self, *, max_tokens: int, extra: object = None, **options: Any) -> Prompt:
        """The next call's prompt with its exact token count and window facts.

        Options: `tools`, `thinking`, `reasoning_effort`, `low_water`, `compaction`,
        `summarizer` (see `contextkit.window.prepare`).
        """
        prompt = window.prepare(
            self._ref,
            model=self.model,
            max_tokens=max_tokens,
            defaults=(self._store.compaction, self._store.summarizer),
            extra=extra,
            **options,
        )
        warned = _TOOL_WARNINGS.setdefault(self._store, set())
        if prompt.prefix_break == "tools" and self._ref.pk not in warned:
            warned.add(self._ref.pk)
            warnings.warn(
                f"the tool set of thread {self.id!r} differs from its last call's: DeepSeek "
                "renders tools into the system prompt, so every earlier turn renders anew and "
                "the provider's prefix cache misses; declare the same tools on every call of "
                "a thread",
                CacheWarning,
                stacklevel=2,
            )
        self._last_prompt = prompt
        return prompt

    def check_turn(self, message: object, *, max_tokens: int, **options: Any) -> Message:
        """Check that `message` can open the next turn; returns it parsed, writes nothing.

        Raises what `prepare(max_tokens=..., **options)` would raise once it is appended (a
        tool call still waiting for its result, `max_tokens` against the window, the message
        too large beside the fixed part, invalid options), so a send can fail before it
        stores anything. Options as for `prepare`, but `compaction`/`summarizer`.
        """
        parsed = Message.parse(message)
        window.check_turn(self._ref, parsed, model=self.model, max_tokens=max_tokens, **options)
        return parsed

    def answered(
        self, message: object, idempotency_key: str, *, final: bool = False
    ) -> tuple[Message, usage.Recorded | None] | None:
        """The message stored under `idempotency_key` and its recorded reply, if any (see
        `contextkit.usage.answered`): how a retried keyed send finds that it already ran."""
        key = check_id(idempotency_key, "idempotency_key")
        return usage.answered(self._ref, Message.parse(message), key, final=final)

    @overload
    def build(
        self,
        *,
        max_tokens: int,
        extra: object = ...,
        format: Literal["openai"] = ...,
        **options: Any,
    ) -> list[dict[str, Any]]: ...

    @overload
    def build(
        self, *, max_tokens: int, extra: object = ..., format: Literal["anthropic"], **options: Any
    ) -> dict[str, Any]: ...

    def build(
        self, *, max_tokens: int, extra: object = None, format: str = "openai", **options: Any
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """The messages for the next call: a list of dicts for `chat.completions.create`.

        Layout: system prompt, pinned messages, live window, then `extra` (volatile context,
        never stored). Prompt tokens + `max_tokens` never exceed `max_context_tokens`.
        `format="anthropic"` returns `{"system": ..., "messages": [...]}` for the Anthropic
        Messages API instead.
        """
        if format not in ("openai", "anthropic"):  # before prepare, which may compact
            raise ValidationError(f"format must be 'openai' or 'anthropic', got {format!r:.40}")
        prompt = self.prepare(max_tokens=max_tokens, extra=extra, **options)
        return prompt.to_list() if format == "openai" else prompt.to_anthropic()

    def record(
        self,
        response: object,
        *,
        prompt: Prompt | None = None,
        latency_ms: float | None = None,
        predicted_cache_hit_tokens: int | None = None,
    ) -> Message:
        """Store a chat completion's assistant message and its usage (cost, cache hits).

        Idempotent per call: recording the reply to one `prepare()` twice stores it once
        (provider response ids are kept as data, not trusted as keys). `prompt` defaults to
        this handle's last `prepare()`.
        """
        return self.record_call(
            response,
            prompt=prompt,
            latency_ms=latency_ms,
            predicted_cache_hit_tokens=predicted_cache_hit_tokens,
        ).message

    def record_call(
        self,
        response: object,
        *,
        prompt: Prompt | None = None,
        latency_ms: float | None = None,
        predicted_cache_hit_tokens: int | None = None,
    ) -> usage.Recorded:
        """`record`, also returning the parsed usage, finish reason and cost it stored."""
        return usage.record_call(
            self._ref,
            response,
            prompt=prompt if prompt is not None else self._last_prompt,
            latency_ms=latency_ms,
            predicted_cache_hit_tokens=predicted_cache_hit_tokens,
        )

    def stats(self) -> Stats:
        """Messages, tokens, calls, cache hit/miss, cost in USD."""
        return usage.stats(self._ref)

    def history(self, *, page_size: int = _PAGE) -> Iterator[Message]:
        """Every stored message, oldest first, summarized or not (paged, never all at once)."""
        return self.messages(page_size=page_size)

    def compact(
        self,
        *,
        summarizer: Summarizer | None = None,
        policy: CompactionPolicy | None = None,
        max_tokens: int = 0,
    ) -> Summary | None:
        """Summarize the older part of the window now, whatever its size; see `compaction`.

        Returns the new summary, or None when there is nothing older than the recent turns
        to fold in (or another worker compacted first).
        """
        return compaction.compact(
            self._ref,
            summarizer=summarizer or self._store.summarizer,
            policy=policy or self._store.compaction,
            max_tokens=max_tokens,
            force=True,
        )

    def summaries(self) -> list[Summary]:
        """The thread's summaries, oldest first (each covers messages 1..upto_seq)."""
        return compaction.summaries_of(self._ref)

    def pending_tool_calls(self) -> list[ToolCall]:
        """Tool calls the thread made that have no result yet (after a crash mid-loop, say),
        in call order: append a `tool` message for each before the next `build()`."""

        def read(conn: db.Connection) -> list[ToolCall]:
            threads.locked(conn, self._ref)
            return cut.pending_calls(conn, self._ref.pk)

        return db.read(self._ref.engine, read)

    def get(self, seq: int) -> Message:
        """The message with this seq, or `NotFound`."""
        check_int(seq, "seq", 1)
        page = db.read(
            self._ref.engine, partial(self._page, after=seq - 1, before=seq + 1, limit=1)
        )
        if not page:
            raise NotFound(f"thread {self.id!r} has no message {seq}")
        return page[0]

    def update(
        self,
        *,
        model: str | None = None,
        system: str | None = None,
        max_context_tokens: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ThreadInfo:
        """Change the thread's settings; arguments left at None keep their value."""
        values = thread_settings(
            model=model, system=system, max_context_tokens=max_context_tokens, metadata=metadata
        )

        def txn(conn: db.Connection) -> ThreadInfo:
            return threads.update_settings(conn, threads.locked(conn, self._ref), values).info()

        self._info = db.write(self._ref.engine, txn)
        return self._info

    def delete(self) -> None:
        """Delete the thread, its messages, calls and summaries, and its images no other thread
        shows. Further use of this handle: `NotFound`."""
        db.write(self._ref.engine, partial(threads.delete_thread, ref=self._ref))

    def _page(
        self, conn: db.Connection, *, after: int, before: int | None, limit: int
    ) -> list[Message]:
        threads.locked(conn, self._ref)
        return messages.page(conn, self._ref.pk, after, before, limit)

    def _write(self, items: list[Pending]) -> list[Message]:
        if not items:
            return []

        def txn(conn: db.Connection) -> list[Message]:
            return messages.insert_messages(conn, threads.locked(conn, self._ref), items)

        return db.write(self._ref.engine, txn)

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        roles: Iterable[str] | None = None,
        before_seq: int | None = None,
    ) -> list[SearchHit]:
        """The messages of this thread that match `query`, best first (at most `limit`).

        Searches the whole history, summarized or not, tool results and the summary in
        force included. Syntax: words (all must match), `"a phrase"`, `prefix*`; case and accents
        do not matter (see `contextkit.recall`). `roles` keeps some roles only (message
        roles, or "summary"); `before_seq` only messages with a lower seq. Each hit has a
        snippet with the matches marked. Input that is no query raises `ValidationError`.
        """
        parsed = recall.parse_query(query)
        found = db.read(
            self._ref.engine,
            partial(
                search.search_thread,
                ref=self._ref,
                match=parsed.match(),
                limit=recall.check_limit(limit),
                roles=recall.check_roles(roles),
                before_seq=None if before_seq is None else check_int(before_seq, "before_seq", 1),
            ),
        )
        return recall.hits(found, parsed)

    def pin(self, seq: int) -> Message:
        """Pin the stored message `seq`: from now on it is in every prompt, right after the
        system prompt, and counts in the budget (as `append(..., pinned=True)` would have).

        Tool calls and tool results cannot be pinned (`ValidationError`); a missing message
        is `NotFound`; pinned messages that would fill the budget, `ContextOverflowError`.
        """
        check_int(seq, "seq", 1)
        return db.write(
            self._ref.engine, partial(pins.set_pinned, ref=self._ref, seq=seq, pinned=True)
        )

    def unpin(self, seq: int) -> Message:
        """Return the pinned message `seq` to its place in the conversation: it leaves the
        prompt once the window moves past it (it stays stored and searchable)."""
        check_int(seq, "seq", 1)
        return db.write(
            self._ref.engine, partial(pins.set_pinned, ref=self._ref, seq=seq, pinned=False)
        )
