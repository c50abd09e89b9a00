"""`Thread`: one conversation's handle: append, read, delete; every query scoped by owner."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from attrs import define, field
from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from contextkit._validators import check_int
from contextkit.errors import NotFound, PermissionDenied, ValidationError
from contextkit.store import blobs, ledger
from contextkit.store import engine as db
from contextkit.store.codec import MESSAGE_COLUMNS, message_from_row, message_to_row
from contextkit.store.schema import (
    CallRow,
    MessageRow,
    SummaryRow,
    ThreadRow,
    ToolCallRow,
    utcnow,
)
from contextkit.types import Message, Role, ThreadInfo, check_id

if TYPE_CHECKING:
    from contextkit.compaction import CompactionPolicy, Summarizer, Summary
    from contextkit.store.store import Store
    from contextkit.usage import Stats
    from contextkit.window import Prompt

__all__ = ["Thread"]

_COLUMNS = [getattr(MessageRow, c) for c in MESSAGE_COLUMNS]
_PAGE = 500


@define
class _Pending:
    message: Message
    key: str | None
    row: dict[str, Any] = field(factory=dict)


def pending(message: object, key: object, pinned: object) -> _Pending:
    """A message checked for storing: parsed, pinned only if pinnable, with a valid key."""
    if not isinstance(pinned, bool):
        raise ValidationError(f"pinned must be True or False, got {pinned!r:.40}")
    parsed = Message.parse(message)
    if pinned and not parsed.pinned:
        parsed = _evolve(parsed, pinned=True)
    if parsed.pinned and (parsed.role is Role.TOOL or parsed.tool_calls):
        raise ValidationError(
            "tool calls and tool results cannot be pinned: a call and its results must "
            "stay together in the window; pin a plain user, system or assistant message"
        )
    if key is not None:
        key = check_id(key, "idempotency_key")
    return _Pending(parsed, key, message_to_row(parsed))


class Thread:
    """A handle on a stored thread, bound to its owner.

    Obtained from `Store.thread()`; cheap to create, holds no connection. Messages are
    append-only: seqs are 1, 2, 3, … with no gaps, assigned under the thread's write lock.
    """

    def __init__(self, store: Store, pk: int, info: ThreadInfo) -> None:
        self._store = store
        self._pk = pk
        self._info = info
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

    def info(self) -> ThreadInfo:
        """A fresh snapshot of the thread's settings and size."""
        self._info = db.read(self._store.engine, self._locked_info)
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
                self._store.engine, partial(self._page, after=last, before=before, limit=page_size)
            )
            yield from page
            if len(page) < page_size:
                return
            last = page[-1].seq or last

    def prepare(self, *, max_tokens: int, extra: object = None, **options: Any) -> Prompt:
        """The next call's prompt with its exact token count and window facts.

        Options: `tools`, `thinking`, `reasoning_effort`, `low_water` (see `window.prepare`).
        """
        from contextkit.window import prepare

        prompt = prepare(self, max_tokens=max_tokens, extra=extra, **options)
        self._last_prompt = prompt
        return prompt

    def build(
        self, *, max_tokens: int, extra: object = None, format: str = "openai", **options: Any
    ) -> Any:
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

        Idempotent per response id. `prompt` defaults to this handle's last `prepare()`.
        """
        from contextkit.usage import record

        return record(
            self,
            response,
            prompt=prompt,
            latency_ms=latency_ms,
            predicted_cache_hit_tokens=predicted_cache_hit_tokens,
        )

    def stats(self) -> Stats:
        """Messages, tokens, calls, cache hit/miss, cost in USD."""
        from contextkit.usage import stats

        return stats(self)

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
        from contextkit.compaction import compact

        return compact(
            self,
            summarizer=summarizer or self._store.summarizer,
            policy=policy or self._store.compaction,
            max_tokens=max_tokens,
            force=True,
        )

    def summaries(self) -> list[Summary]:
        """The thread's summaries, oldest first (each covers messages 1..upto_seq)."""
        from contextkit.compaction import summaries

        return summaries(self)

    def get(self, seq: int) -> Message:
        """The message with this seq, or `NotFound`."""
        check_int(seq, "seq", 1)
        page = db.read(self._store.engine, lambda c: self._page(c, seq - 1, seq + 1, 1))
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
        values = self._store._settings(
            model=model, system=system, max_context_tokens=max_context_tokens, metadata=metadata
        )

        def txn(conn: Connection) -> ThreadInfo:
            row = self._store._apply(conn, self._locked_row(conn), values)
            return self._store._info_from_row(row)

        self._info = db.write(self._store.engine, txn)
        return self._info

    def delete(self) -> None:
        """Delete the thread and all its messages. Further use of this handle: `NotFound`."""

        def txn(conn: Connection) -> None:
            self._locked_info(conn)
            for table in (ToolCallRow, CallRow, SummaryRow, MessageRow):
                conn.execute(delete(table).where(table.thread_pk == self._pk))
            conn.execute(delete(ThreadRow).where(ThreadRow.pk == self._pk))

        db.write(self._store.engine, txn)

    def _locked_row(self, conn: Connection) -> RowMapping:
        """Re-read the thread row (locking it in a write transaction), checking the owner."""
        stmt = select(ThreadRow).where(ThreadRow.pk == self._pk)
        if conn.get_execution_options().get("contextkit_write"):
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().one_or_none()
        if row is None or row["id"] != self.id:  # a reused primary key is another thread
            raise NotFound(f"thread {self.id!r} was deleted")
        if row["owner"] != self.owner:
            raise PermissionDenied(f"thread {self.id!r} belongs to another owner")
        return row

    def _locked_info(self, conn: Connection) -> ThreadInfo:
        return self._store._info_from_row(self._locked_row(conn))

    def _page(self, conn: Connection, after: int, before: int | None, limit: int) -> list[Message]:
        self._locked_info(conn)
        stmt = (
            select(*_COLUMNS)
            .where(MessageRow.thread_pk == self._pk, MessageRow.seq > after)
            .order_by(MessageRow.seq)
            .limit(limit)
        )
        if before is not None:
            stmt = stmt.where(MessageRow.seq < before)
        return [message_from_row(r) for r in blobs.fetch(conn, stmt)]

    def _write(self, items: list[_Pending]) -> list[Message]:
        if not items:
            return []
        return db.write(self._store.engine, lambda conn: self._insert(conn, items))

    def _insert(self, conn: Connection, items: list[_Pending]) -> list[Message]:
        thread = self._locked_row(conn)
        seq = thread["last_seq"]
        spec = ledger.spec_for(thread["model"])
        state = ledger.TurnState(
            cum=thread["cum_weight"],
            turn_seq=thread["turn_seq"],
            turn_tool_calls=thread["turn_tool_calls"],
            pending=thread["pending_calls"],
            total=thread["total_tokens"],
        )
        flip: tuple[int, int] | None = None
        images: list[dict[str, Any]] = []
        now = utcnow()
        out: list[Message] = []
        rows: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        answered: list[tuple[int, str, int]] = []
        by_key: dict[str, Message] = {}
        pending = _PendingCalls(conn, self._pk)
        for item in items:
            if item.key is not None:
                existing = by_key.get(item.key) or self._by_key(conn, item.key)
                if existing is not None:
                    if message_to_row(existing) != item.row:
                        raise ValidationError(
                            f"idempotency_key {item.key!r} was already used for a different "
                            f"message (seq {existing.seq}); use a new key for a new message"
                        )
                    out.append(existing)
                    continue
            seq += 1
            msg = item.message
            if msg.role is Role.TOOL:
                assert msg.tool_call_id is not None
                answered.append((pending.answer(msg.tool_call_id), msg.tool_call_id, seq))
            for call in msg.tool_calls:
                pending.add(call.id, seq)
                calls.append({"thread_pk": self._pk, "call_seq": seq, "call_id": call.id})
            if flip is None and ledger.needs_flip(msg, state):
                flip = (max(state.turn_seq, 1), seq)
            entry = ledger.account(msg, spec, state, seq)
            parts, found = blobs.extract(item.row.get("parts"), spec.image_limits)
            images.extend(found)
            row = {
                **item.row,
                **entry.columns(),
                "parts": parts,
                "thread_pk": self._pk,
                "seq": seq,
                "idempotency_key": item.key,
                "created_at": msg.created_at or now,
            }
            rows.append(row)
            stored = _evolve(
                msg, seq=seq, created_at=msg.created_at or now, token_count=entry.token_count
            )
            if item.key is not None:
                by_key[item.key] = stored
            out.append(stored)
        if rows:
            blobs.save(conn, images)
            conn.execute(insert(MessageRow), rows)
            if calls:
                conn.execute(insert(ToolCallRow), calls)
            for call_seq, call_id, answer_seq in answered:
                conn.execute(
                    update(ToolCallRow)
                    .where(
                        ToolCallRow.thread_pk == self._pk,
                        ToolCallRow.call_seq == call_seq,
                        ToolCallRow.call_id == call_id,
                    )
                    .values(answer_seq=answer_seq)
                )
            conn.execute(
                update(ThreadRow)
                .where(ThreadRow.pk == self._pk)
                .values(
                    last_seq=seq,
                    updated_at=now,
                    cum_weight=state.cum,
                    turn_seq=state.turn_seq,
                    turn_tool_calls=state.turn_tool_calls,
                    pending_calls=state.pending,
                    total_tokens=state.total,
                )
            )
            if flip is not None and self._stripped_in(conn, *flip):
                ledger.recount(conn, self._pk, spec, from_seq=flip[0])
                counts = self._token_counts(conn, [m.seq for m in out if m.seq])
                out = [_evolve(m, token_count=counts.get(m.seq or 0)) for m in out]
        return out

    def _stripped_in(self, conn: Connection, start: int, stop: int) -> bool:
        """Whether an assistant message in [start, stop) has reasoning its prompt omits."""
        return bool(
            conn.execute(
                select(func.count())
                .select_from(MessageRow)
                .where(
                    MessageRow.thread_pk == self._pk,
                    MessageRow.seq >= start,
                    MessageRow.seq < stop,
                    MessageRow.role == "assistant",
                    MessageRow.reasoning_content.is_not(None),
                    MessageRow.reasoning_kept.is_(False),
                    MessageRow.pinned.is_(False),
                )
            ).scalar_one()
        )

    def _token_counts(self, conn: Connection, seqs: list[int]) -> dict[int, int | None]:
        rows = conn.execute(
            select(MessageRow.seq, MessageRow.token_count).where(
                MessageRow.thread_pk == self._pk, MessageRow.seq.in_(seqs)
            )
        ).all()
        return {seq: count for seq, count in rows}

    def _by_key(self, conn: Connection, key: str) -> Message | None:
        found = blobs.fetch(
            conn,
            select(*_COLUMNS).where(
                MessageRow.thread_pk == self._pk, MessageRow.idempotency_key == key
            ),
        )
        row = found[0] if found else None
        return None if row is None else message_from_row(row)


class _PendingCalls:
    """Tool calls awaiting an answer, read from the database on demand and kept current."""

    def __init__(self, conn: Connection, thread_pk: int) -> None:
        self._conn = conn
        self._pk = thread_pk
        self._open: dict[str, int | None] = {}

    def _lookup(self, call_id: str) -> int | None:
        if call_id not in self._open:
            self._open[call_id] = self._conn.execute(
                select(ToolCallRow.call_seq)
                .where(
                    ToolCallRow.thread_pk == self._pk,
                    ToolCallRow.call_id == call_id,
                    ToolCallRow.answer_seq.is_(None),
                )
                .order_by(ToolCallRow.call_seq.desc())
                .limit(1)
            ).scalar_one_or_none()
        return self._open[call_id]

    def add(self, call_id: str, seq: int) -> None:
        if self._lookup(call_id) is not None:
            raise ValidationError(
                f"tool call id {call_id!r} is already pending an answer in this thread; "
                "tool call ids must be unique among unanswered calls"
            )
        self._open[call_id] = seq

    def answer(self, call_id: str) -> int:
        call_seq = self._lookup(call_id)
        if call_seq is None:
            raise ValidationError(
                f"tool message answers tool_call_id {call_id!r}, but no unanswered tool call "
                "with that id exists in this thread; append the assistant message with its "
                "tool_calls first, and answer each call once"
            )
        self._open[call_id] = None
        return call_seq


def _evolve(message: Message, **changes: Any) -> Message:
    import attrs

    return attrs.evolve(message, **changes)
