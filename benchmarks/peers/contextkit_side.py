"""contextkit's side of the comparison: `Thread.append`/`extend`, `build()`, the agent loop.

(The replay strategy is `bench_compaction.run_contextkit`, shared with that benchmark.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import contextkit
from contextkit.errors import ContextOverflowError

from .common import (
    BUILD_BUDGET,
    MAX_TOKENS,
    MODEL,
    SYSTEM,
    BuildCase,
    Msg,
    Target,
    chunks,
    engine_settings,
)
from .loop_script import TOOLS, LoopStrategy


def append_target(tmp: Path) -> Target:
    store = contextkit.open(f"sqlite:///{tmp / 'contextkit.db'}")
    thread = store.thread("bench", model=MODEL, system=SYSTEM, max_context_tokens=BUILD_BUDGET)

    def append(items: list[Any], batch: int) -> None:
        if batch == 1:
            for m in items:
                thread.append(m)
        else:
            for i in range(0, len(items), batch):
                thread.extend(items[i : i + batch])

    return Target(
        "contextkit Thread.append", list, append, store.close, lambda: engine_settings(store.engine)
    )


def build_case(tmp: Path, history: list[Msg]) -> BuildCase:
    store = contextkit.open(f"sqlite:///{tmp / 'contextkit.db'}")
    thread = store.thread("bench", model=MODEL, system=SYSTEM, max_context_tokens=BUILD_BUDGET)
    for chunk in chunks(history, 1_000):
        thread.extend(chunk)
    thread.build(max_tokens=MAX_TOKENS)  # the first build after the fill compacts once

    def call() -> list[Any]:
        result: list[Any] = thread.build(max_tokens=MAX_TOKENS)
        return result

    return BuildCase("contextkit build()", call, list, store.close)


class ContextkitLoop(LoopStrategy):
    def __init__(self, store: contextkit.Store, thread_id: str, budget: int) -> None:
        self.thread = store.thread(thread_id, model=MODEL, system=SYSTEM, max_context_tokens=budget)

    def add(self, message: Msg) -> None:
        self.thread.append(message)

    def prompt(self) -> list[Msg] | None:
        try:
            built: list[Msg] = self.thread.build(max_tokens=MAX_TOKENS, tools=TOOLS, thinking=True)
        except ContextOverflowError:
            return None
        return built
