"""The oracle: a seeded store, the database checksum, and the verdict on each case."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import inspect
import os
import traceback
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from conftest import Database

import contextkit
from contextkit import ContextKitError, images
from contextkit.db import transfer
from contextkit.db.schema import Base

from .data import (
    ALICE,
    BOB,
    MODEL,
    PNG64,
    SEED_RESPONSE,
    SQL_THREADS,
    data_url,
    short_repr,
    tool_call,
)

COLLECT = os.environ.get("CONTEXTKIT_FUZZ_COLLECT")
"""A file that every violation is also appended to (a survey of new bugs)."""

INVALID, READ, ANY = "invalid", "read", "any"
FULL_EVERY = int(os.environ.get("CONTEXTKIT_FUZZ_FULL_EVERY", "25"))
"""Recompute the checksum at least this often (1: after every call, for debugging)."""


FILLER = (
    "We talked about the weather and the general mood of the week. It was fine overall. "
    "Nothing much happened beyond the usual routine and a bit of reading in the evening."
)


def seed(store: contextkit.Store) -> None:
    a = store.thread(ALICE, model=MODEL, owner="alice", system="Be brief.", metadata={"t": 1})
    a.append({"role": "user", "content": "Remember: my name is Alice."}, pinned=True)
    a.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": data_url(PNG64)}},
            ],
        }
    )
    a.append(
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Look it up.",
            "tool_calls": [tool_call("call_a1")],
        }
    )
    a.append({"role": "tool", "tool_call_id": "call_a1", "content": "sunny"})
    a.append({"role": "assistant", "content": "A red square; it is sunny in Paris."})
    a.append({"role": "user", "content": "Thanks"}, idempotency_key="key-1")
    a.prepare(max_tokens=1_000)
    a.record(SEED_RESPONSE, latency_ms=12.5)
    b = store.thread(BOB, model=MODEL, owner="bob")
    b.append({"role": "user", "content": "Weather in Oslo?"})
    b.append({"role": "assistant", "content": None, "tool_calls": [tool_call("call_b1")]})
    for tid, owner in SQL_THREADS:
        store.thread(tid, model=MODEL, owner=owner).append({"role": "user", "content": tid})
    c = store.thread("carol-1", model=MODEL, owner="carol", max_context_tokens=3_000)
    c.extend(
        m
        for i in range(12)
        for m in (
            {"role": "user", "content": f"Turn {i}. {FILLER}"},
            {"role": "assistant", "content": f"Reply {i}. {FILLER}"},
        )
    )
    assert c.compact() is not None


def checksum(store: contextkit.Store) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every contextkit table's rows, in primary-key order.

    SQLite: sha256 over the rows as Python reads them. PostgreSQL: md5 over each row's text
    form, computed by the server in one round trip (7 queries a call would double the run).
    """
    tables = [(t.name, ", ".join(c.name for c in t.primary_key.columns)) for t in TABLES]
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            parts = [
                f"(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' "
                f"ORDER BY {order}), '')) FROM {name} t)"
                for name, order in tables
            ]
            row = conn.execute(sa.text(f"SELECT {', '.join(parts)}")).one()
            return {
                name: (int(value.split(":")[0]), value.split(":")[1][:16])
                for (name, _), value in zip(tables, row, strict=True)
            }
        out = {}
        for name, order in tables:
            rows = conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY {order}")).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
            out[name] = (len(rows), digest[:16])
        return out


TABLES = Base.metadata.sorted_tables
assert {t.name for t in TABLES} >= {
    "threads",
    "messages",
    "tool_calls",
    "calls",
    "calibrations",
    "summaries",
    "blobs",
}


@dataclasses.dataclass(eq=False)
class Case:
    """One call: `op` names the target (see `Env.target`), `tags` the input's defects."""

    op: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    expect: str = INVALID
    want: type[ContextKitError] = ContextKitError
    post: Callable[[Any], None] | None = None
    """For a call that returned: a check of its result."""

    def __repr__(self) -> str:
        parts = [short_repr(a) for a in self.args]
        parts += [f"{k}={short_repr(v)}" for k, v in self.kwargs.items()]
        tags = ",".join(sorted(self.tags)) or "-"
        return f"{self.op}({', '.join(parts)}) [{self.expect}; {tags}]"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis: never recurse into a 5,000-deep list


def case(op: str, *args: Any, tags: Any = (), expect: str = INVALID, **kwargs: Any) -> Case:
    want = kwargs.pop("want", ContextKitError)
    post = kwargs.pop("post", None)
    tags = frozenset([tags] if isinstance(tags, str) else tags)
    return Case(op, args, kwargs, tags, expect, want, post)


class Env:
    """A seeded store, the handles the cases call, and the database's expected checksum."""

    def __init__(self, database: Database, family: str, twin: str = "sync") -> None:
        self.kind = database.kind if twin == "sync" else f"{database.kind}/async"
        self.family = family
        self.store = contextkit.open(database.url)
        seed(self.store)
        self.alice: Any = self.store.get_thread(ALICE, owner="alice")
        self.target_store: Any = self.store
        self.loop: asyncio.AbstractEventLoop | None = None
        if twin == "async":  # the same cases on the awaited twins; the oracle stays sync
            self.loop = asyncio.new_event_loop()
            self.target_store = self.loop.run_until_complete(contextkit.open_async(database.url))
            self.alice = self.loop.run_until_complete(
                self.target_store.get_thread(ALICE, owner="alice")
            )
            sa.event.listen(
                self.target_store.engine.sync_engine, "before_cursor_execute", self._statement
            )
        self.baseline = checksum(self.store)
        self.examples = 0
        self.checksums = 0
        self.touched = False
        sa.event.listen(self.store.engine, "before_cursor_execute", self._statement)
        self.outcomes: Counter[str] = Counter()
        self.violations: list[str] = []

    def close(self) -> None:
        self.store.close()
        if self.loop is not None:
            self.loop.run_until_complete(self.target_store.close())
            self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(...)`, awaited on the async twin; iterators (sync or async) collected."""
        result = fn(*args, **kwargs)
        if self.loop is not None and inspect.isawaitable(result):
            result = self.loop.run_until_complete(result)
        if self.loop is not None and isinstance(result, AsyncIterator):
            result = self.loop.run_until_complete(_collect(result))
        if isinstance(result, Iterator):
            result = list(result)
        return result

    def _statement(self, conn: sa.Connection, _c: Any, statement: str, *_: Any) -> None:
        """Note any statement that could change the database (all but plain reads)."""
        head = statement.lstrip()[:6].upper()
        if (
            conn.get_execution_options().get("contextkit_write")
            or head not in ("SELECT", "BEGIN")
            or "FOR UPDATE" in statement
        ):
            self.touched = True

    def checksum(self) -> dict[str, tuple[int, str]]:
        """The database's checksum after a call: recomputed if the call sent anything but
        plain reads (or every FULL_EVERY calls, to be safe), else the unchanged baseline."""
        if not self.touched and self.examples % FULL_EVERY:
            return self.baseline
        self.checksums += 1
        return checksum(self.store)

    def target(self, op: str) -> Callable[..., Any]:
        owner, *path = op.split(".")
        objects: dict[str, Any] = {
            "store": self.target_store,
            "alice": self.alice,
            "contextkit": contextkit,
            "images": images,
            "transfer": transfer,
            "recall": contextkit.recall_tool(self.alice),
            "alice_recall_tool": functools.partial(contextkit.recall_tool, self.alice),
        }
        if op == "transfer.import_records":
            return self.target_store.import_records  # type: ignore[no-any-return]
        fn = functools.reduce(getattr, path, objects[owner])
        return fn  # type: ignore[no-any-return]

    def run(self, c: Case) -> None:
        """Call `c` and judge it (see the package docstring); fails the test on a violation."""
        self.examples += 1
        self.touched = False
        fn = self.target(c.op)
        raised: BaseException | None = None
        result: Any = None
        problem = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = self.call(fn, *c.args, **c.kwargs)
        except ContextKitError as exc:
            raised = exc
            if not isinstance(exc, c.want):
                problem = f"raised {type(exc).__name__}, expected {c.want.__name__}: {exc}"
        except Exception as exc:
            raised = exc
            tb = "".join(traceback.format_exception(exc)[-6:])
            problem = f"raised a non-ContextKitError {type(exc).__name__}:\n{tb}"
        finally:
            if c.op == "contextkit.open" and isinstance(result, contextkit.Store):
                result.close()
            if isinstance(result, contextkit.AsyncStore) and self.loop is not None:
                self.loop.run_until_complete(result.close())
        self.outcomes[type(raised).__name__ if raised else "returned"] += 1
        after = self.checksum()
        if raised is not None and after != self.baseline:
            problem = f"{problem or ''}\n  raised {raised!r:.300} but changed {self.diff(after)}"
        elif raised is None and c.expect == INVALID:
            problem = f"accepted invalid input (returned {short_repr(result)})"
            if after != self.baseline:
                problem += f" and changed {self.diff(after)}"
        elif raised is None and c.expect == READ and after != self.baseline:
            problem = f"a read-only call changed {self.diff(after)}"
        if problem is None and raised is None and c.post is not None:
            try:
                c.post(result)
            except AssertionError as exc:
                problem = f"returned a wrong result: {exc}"
        if problem is not None:
            self.fail(c, problem)
        self.baseline = after

    def diff(self, after: Mapping[str, tuple[int, str]]) -> str:
        changed = {t: (self.baseline.get(t), v) for t, v in after.items() if self.baseline[t] != v}
        return f"the database: {changed}"

    def fail(self, c: Case, what: str) -> None:
        message = f"[{self.kind}] {c!r}\n  {what}"
        self.violations.append(message)
        if COLLECT:
            with open(COLLECT, "a", encoding="utf-8", errors="backslashreplace") as log:
                log.write(message + "\n")

    def report(self) -> str:
        outcomes = ", ".join(f"{k}={n}" for k, n in self.outcomes.most_common())
        return (
            f"{self.kind} {self.family}: {self.examples} examples ({self.checksums} checksums); "
            f"{outcomes}"
        )


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]
