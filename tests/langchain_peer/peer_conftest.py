"""conftest.py for langchain-core's own chat-history tests, run against contextkit.

`tests/test_langchain_peer_suite.py` extracts langchain-core's tests from its sdist and
installs this file as their `tests/unit_tests/conftest.py` (in place of langchain-core's,
which needs test-only plugins this project does not install). It:

- gives every test a fresh SQLite file, with a sync `Store` on it and, for a coroutine test,
  an `AsyncStore` opened on the test's own event loop;
- swaps the `InMemoryChatMessageHistory` the test modules use for `make_history`: a
  `ContextKitChatMessageHistory` on a new thread of that file, backed by the sync store in
  a sync test and by the async store in a coroutine test (so `ainvoke` & co. go through
  the awaited methods);
- runs each test with `blockbuster` on for every module (the plan can turn it off): a
  blocking call in the event loop (file, socket, sqlite3, sleep, contended lock) raises.
  Exempt: the harness's own helpers below that seed and read the database to arrange and
  check a test (`make_history` seeding, `stored_messages`), and what langchain-core's
  own conftest exempts in langchain-core/langsmith (deprecation-caller checks, `__repr__`,
  LangSmith's retry-config file read);
- deselects or marks as expected failures the tests the plan names, and writes what each
  test did with the adapter (histories made, sync or async, messages stored) to a report.

The plan is a JSON file named by `CONTEXTKIT_PEER_PLAN`:
`{"blockbuster": bool, "deselect": [name, ...], "refused": [name, ...], "report": path}`,
names being test function names; a "refused" test must fail with `AsyncOnlyError`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from blockbuster import blockbuster_ctx
from langchain_core.messages import BaseMessage

import contextkit
from contextkit.integrations.langchain import ContextKitChatMessageHistory, from_openai_message

PLAN: dict[str, Any] = json.loads(Path(os.environ["CONTEXTKIT_PEER_PLAN"]).read_text())
REPORT: dict[str, Any] = {"tests": {}, "deselected": []}


class PeerHistory(ContextKitChatMessageHistory):
    """The adapter, comparable with `==` by what the database holds for each history's thread
    (langchain-core's tests compare histories with `==`, which the in-memory class supports)."""

    peer_thread_id: str = ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerHistory):
            return NotImplemented
        return stored_messages(self) == stored_messages(other)

    __hash__ = None  # type: ignore[assignment]


class _Test:
    """The stores of the running test, and what it did with the adapter."""

    store: contextkit.Store
    astore: contextkit.AsyncStore | None = None
    record: dict[str, Any]


CURRENT = _Test()


def make_history(messages: Sequence[BaseMessage] | None = None) -> PeerHistory:
    """What the tests get for `InMemoryChatMessageHistory(messages=...)`: the adapter on a new
    thread, async-backed when called in a running event loop (a coroutine test)."""
    thread_id = f"peer-{uuid.uuid4().hex}"
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if in_loop:
        assert CURRENT.astore is not None, "a coroutine test without its AsyncStore"
        if messages:  # arranging the test: seeded with the sync store (exempt from blockbuster)
            seeded = PeerHistory.from_store(CURRENT.store, thread_id)
            seeded.add_messages(messages)
        history = PeerHistory.from_store(CURRENT.astore, thread_id)  # opens on first await
    else:
        history = PeerHistory.from_store(CURRENT.store, thread_id)
        if messages:
            history.add_messages(messages)
    history.peer_thread_id = thread_id
    CURRENT.record["async" if history.is_async else "sync"] += 1
    return history


def stored_messages(history: PeerHistory) -> list[BaseMessage]:
    """The check: the messages of the history's thread, read from the database (sync store)."""
    try:
        thread = CURRENT.store.get_thread(history.peer_thread_id)
    except contextkit.NotFound:  # an async-backed history no awaited call has opened yet
        return []
    return [from_openai_message(m) for m in thread.history()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect, refused = set(PLAN["deselect"]), set(PLAN["refused"])
    kept, dropped = [], []
    for item in items:
        name = getattr(item, "originalname", item.name)
        (dropped if name in deselect else kept).append(item)
        if name in refused:
            item.add_marker(
                pytest.mark.xfail(
                    raises=contextkit.AsyncOnlyError,
                    strict=True,
                    reason="reads a history synchronously in a coroutine",
                )
            )
    if dropped:
        REPORT["deselected"] += [item.nodeid for item in dropped]
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session) -> None:
    Path(PLAN["report"]).write_text(json.dumps(REPORT, indent=1, sort_keys=True))


@pytest.fixture(autouse=True)
def _contextkit_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A fresh SQLite file and its sync store; the in-memory history swapped for the adapter."""
    store = contextkit.open(f"sqlite:///{tmp_path / 'peer.db'}")
    CURRENT.store = store
    CURRENT.record = REPORT["tests"].setdefault(
        request.node.nodeid,
        {"coroutine": inspect.iscoroutinefunction(request.function), "sync": 0, "async": 0},
    )
    if hasattr(request.module, "InMemoryChatMessageHistory"):
        monkeypatch.setattr(request.module, "InMemoryChatMessageHistory", make_history)
    try:
        yield
        CURRENT.record["messages"] = sum(len(t) for t in store.threads())
    finally:
        store.close()


@pytest.fixture(autouse=True)
async def _contextkit_async_store(
    request: pytest.FixtureRequest, tmp_path: Path, _contextkit_store: None
) -> AsyncIterator[None]:
    """The async store on the same file, opened on a coroutine test's event loop."""
    if not inspect.iscoroutinefunction(request.function):
        yield
        return
    CURRENT.astore = await contextkit.open_async(f"sqlite:///{tmp_path / 'peer.db'}")
    try:
        yield
    finally:
        await CURRENT.astore.close()
        CURRENT.astore = None


@pytest.fixture(autouse=True)
def _blockbuster(_contextkit_async_store: None) -> Iterator[None]:
    """blockbuster on for every module while the test runs (after the stores are open)."""
    if not PLAN["blockbuster"]:
        yield
        return
    with blockbuster_ctx() as bb:
        for function in bb.functions.values():
            function.can_block_in("unit_tests/conftest.py", {"make_history", "stored_messages"})
        # what langchain-core's own conftest allows in langchain-core and langsmith
        for name in ("os.stat", "os.path.abspath"):
            bb.functions[name].can_block_in(
                "langchain_core/_api/internal.py", "is_caller_internal"
            ).can_block_in("langchain_core/runnables/base.py", "__repr__")
        for name in ("os.stat", "io.TextIOWrapper.read"):
            bb.functions[name].can_block_in("langsmith/client.py", "_default_retry_config")
        yield
