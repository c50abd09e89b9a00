"""`Thread`: one conversation's handle: append, read, build, record, compact, delete.

A facade: every decision lives in `BaseThread` and the layers below; this class runs each
operation's plan on the store's sync engine (`AsyncThread` is its awaited twin).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from contextkit import usage
from contextkit._sdk import Usage
from contextkit.db import engine as db
from contextkit.db.steps import Steps
from contextkit.db.threads import ThreadState
from contextkit.policy import CompactionPolicy
from contextkit.prompt import Prompt
from contextkit.recall import SearchHit
from contextkit.summarizers import Summarizer, Summary
from contextkit.thread._base import PAGE, BaseThread
from contextkit.types import Message, ThreadInfo, ToolCall
from contextkit.usage import Stats

if TYPE_CHECKING:
    from contextkit.store.store import Store

__all__ = ["Thread"]

T = TypeVar("T")


class Thread(BaseThread):
    """A handle on a stored thread, bound to its owner.

    Obtained from `Store.thread()`; cheap to create, holds no connection. Messages are
    append-only: seqs are 1, 2, 3, … with no gaps, assigned under the thread's write lock.
    """

    def __init__(self, store: Store, state: ThreadState) -> None:
        super().__init__(store, store.engine, state)
        self._store = store

    @property
    def store(self) -> Store:
        return self._store

    def _run(self, plan: Steps[T]) -> T:
        return db.drive(self._ref.engine, plan)

    def info(self) -> ThreadInfo:
        """A fresh snapshot of the thread's settings and size."""
        return self._run(self._info_plan())

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
        return self._run(self._append_plan(message, idempotency_key, pinned))

    def extend(self, messages: Iterable[object]) -> list[Message]:
        """Append several messages in one transaction: all are stored, or none."""
        return self._run(self._extend_plan(messages))

    def messages(
        self, *, after: int = 0, before: int | None = None, page_size: int = PAGE
    ) -> Iterator[Message]:
        """Iterate stored messages in seq order, `after < seq < before`, a page at a time.

        Never loads the whole thread: each page is one indexed range query.
        """
        self._check_page(after, before, page_size)
        return self._pages(after, before, page_size)

    def _pages(self, after: int, before: int | None, page_size: int) -> Iterator[Message]:
        last = after
        while True:
            page = self._run(self._page_plan(last, before, page_size))
            yield from page
            if len(page) < page_size:
                return
            last = page[-1].seq or last

    def prepare(self, *, max_tokens: int, extra: object = None, **options: Any) -> Prompt:
        """The next call's prompt with its exact token count and window facts.

        Options: `tools`, `thinking`, `reasoning_effort`, `low_water`, `compaction`,
        `summarizer` (see `contextkit.window.prepare`).
        """
        return self._run(self._prepare_plan(max_tokens, extra, options))

    def check_turn(self, message: object, *, max_tokens: int, **options: Any) -> Message:
        """Check that `message` can open the next turn; returns it parsed, writes nothing.

        Raises what `prepare(max_tokens=..., **options)` would raise once it is appended (a
        tool call still waiting for its result, `max_tokens` against the window, the message
        too large beside the fixed part, invalid options), so a send can fail before it
        stores anything. Options as for `prepare`, but `compaction`/`summarizer`.
        """
        return self._run(self._check_turn_plan(message, max_tokens, options))

    def answered(
        self, message: object, idempotency_key: str, *, final: bool = False
    ) -> tuple[Message, usage.Recorded | None] | None:
        """The message stored under `idempotency_key` and its recorded reply, if any (see
        `contextkit.usage.answered`): how a retried keyed send finds that it already ran."""
        return self._run(self._answered_plan(message, idempotency_key, final))

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
        self._check_format(format)
        prompt = self._run(self._prepare_plan(max_tokens, extra, options))
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
        return self._run(
            self._record_plan(response, prompt, latency_ms, predicted_cache_hit_tokens)
        )

    def record_usage(self, recorded: Usage, **options: Any) -> float | None:
        """Store a call that delivered no message (a stream cut before any text), billed all
        the same; returns its cost. Options as for `contextkit.usage.record_usage`."""
        return self._run(self._record_usage_plan(recorded, options))

    def stats(self) -> Stats:
        """Messages, tokens, calls, cache hit/miss, cost in USD."""
        return self._run(self._stats_plan())

    def history(self, *, page_size: int = PAGE) -> Iterator[Message]:
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
        return self._run(self._compact_plan(summarizer, policy, max_tokens))

    def summaries(self) -> list[Summary]:
        """The thread's summaries, oldest first (each covers messages 1..upto_seq)."""
        return self._run(self._summaries_plan())

    def pending_tool_calls(self) -> list[ToolCall]:
        """Tool calls the thread made that have no result yet (after a crash mid-loop, say),
        in call order: append a `tool` message for each before the next `build()`."""
        return self._run(self._pending_calls_plan())

    def get(self, seq: int) -> Message:
        """The message with this seq, or `NotFound`."""
        return self._run(self._get_plan(seq))

    def update(
        self,
        *,
        model: str | None = None,
        system: str | None = None,
        max_context_tokens: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ThreadInfo:
        """Change the thread's settings; arguments left at None keep their value."""
        return self._run(self._update_plan(model, system, max_context_tokens, metadata))

    def delete(self) -> None:
        """Delete the thread, its messages, calls and summaries, and its images no other thread
        shows. Further use of this handle: `NotFound`."""
        self._run(self._delete_plan())

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
        return self._run(self._search_plan(query, limit, roles, before_seq))

    def pin(self, seq: int) -> Message:
        """Pin the stored message `seq`: from now on it is in every prompt, right after the
        system prompt, and counts in the budget (as `append(..., pinned=True)` would have).

        Tool calls and tool results cannot be pinned (`ValidationError`); a missing message
        is `NotFound`; pinned messages that would fill the budget, `ContextOverflowError`.
        """
        return self._run(self._pin_plan(seq, True))

    def unpin(self, seq: int) -> Message:
        """Return the pinned message `seq` to its place in the conversation: it leaves the
        prompt once the window moves past it (it stays stored and searchable)."""
        return self._run(self._pin_plan(seq, False))
