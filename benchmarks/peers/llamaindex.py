"""LlamaIndex: `Memory` (its SQL chat store, token limit, FIFO archive).

The only module that imports `llama_index`, always inside the functions that use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from bench_compaction import CacheLedger, Conversation, PromptTokens, Run, Settings, _serve

from .common import (
    BUILD_BUDGET,
    MAX_TOKENS,
    SYSTEM,
    BuildCase,
    Msg,
    Target,
    async_engine_settings,
    async_sqlite_engine,
    check_prompt,
    chunks,
)
from .loop_script import LoopStrategy


def preload() -> None:
    """Import LlamaIndex's memory and build its tokenizer (before forking)."""
    import llama_index.core.memory  # noqa: F401

    _cl100k()


def llama_message(m: Msg) -> Any:
    """The same as a LlamaIndex `ChatMessage` (tool data in `additional_kwargs`, as its
    OpenAI integration keeps it)."""
    from llama_index.core.llms import ChatMessage

    extra = {
        k: m[k] for k in ("tool_calls", "tool_call_id", "reasoning_content") if m.get(k) is not None
    }
    return ChatMessage(role=m["role"], content=m.get("content") or "", additional_kwargs=extra)


def llama_dict(m: Any) -> Msg:
    return {"role": m.role.value, "content": m.content or "", **m.additional_kwargs}


@cache
def _cl100k() -> Callable[[str], list[int]]:
    """LlamaIndex's default tokenizer (tiktoken cl100k_base, shipped in its package)."""
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer()


@cache
def _cl100k_memo(text: str) -> list[int]:
    """`_cl100k()` memoized: the same counts, without re-encoding the window every call."""
    return _cl100k()(text)


# --- 1. append ---------------------------------------------------------------------------------


def append_target(tmp: Path) -> Target:
    from llama_index.core.memory import Memory

    loop = asyncio.new_event_loop()
    engine = async_sqlite_engine(tmp / "llamaindex.db")
    memory = Memory.from_defaults(
        session_id="bench", token_limit=BUILD_BUDGET - MAX_TOKENS, async_engine=engine
    )

    async def put(items: list[Any], batch: int) -> None:
        if batch == 1:
            for m in items:
                await memory.aput(m)
        else:
            for i in range(0, len(items), batch):
                await memory.aput_messages(items[i : i + batch])

    def load(msgs: list[Msg]) -> list[Any]:
        return [llama_message(m) for m in msgs]

    def close() -> None:
        loop.run_until_complete(engine.dispose())
        loop.close()

    return Target(
        "LlamaIndex Memory.aput",
        load,
        lambda i, b: loop.run_until_complete(put(i, b)),
        close,
        lambda: loop.run_until_complete(async_engine_settings(engine)),
    )


# --- 2. build ----------------------------------------------------------------------------------


def build_case(tmp: Path, history: list[Msg]) -> BuildCase:
    from llama_index.core.memory import Memory
    from llama_index.core.storage.chat_store.base_db import MessageStatus

    loop = asyncio.new_event_loop()
    engine = async_sqlite_engine(tmp / "llamaindex.db")
    memory = Memory.from_defaults(
        session_id="bench", token_limit=BUILD_BUDGET - MAX_TOKENS, async_engine=engine
    )
    # The state `put()` one message at a time would leave: all but the newest archived by its
    # FIFO (putting 100,000 messages one by one takes hours), the newest put as usual.
    tail = min(len(history), 200)

    async def fill() -> None:
        for chunk in chunks(history[: len(history) - tail], 1_000):
            await memory.sql_store.add_messages(
                "bench", [llama_message(m) for m in chunk], status=MessageStatus.ARCHIVED
            )
        await memory.aput_messages([llama_message(m) for m in history[-tail:]])

    loop.run_until_complete(fill())

    def call() -> list[Any]:
        got: list[Any] = loop.run_until_complete(memory.aget())
        return got

    def prompt(result: list[Any]) -> list[Msg]:
        return [{"role": "system", "content": SYSTEM}, *(llama_dict(m) for m in result)]

    def close() -> None:
        loop.run_until_complete(engine.dispose())
        loop.close()

    return BuildCase("LlamaIndex Memory.get()", call, prompt, close)


# --- 4. replay ---------------------------------------------------------------------------------


def run_llamaindex(conv: Conversation, tokens: PromptTokens, cfg: Settings) -> Run:
    """LlamaIndex `Memory` (its SQL store, in memory), `token_limit` = budget - max_tokens."""
    from llama_index.core.llms import ChatMessage
    from llama_index.core.memory import Memory

    run, ledger = Run(len(conv.turns)), CacheLedger()
    loop = asyncio.new_event_loop()
    memory = Memory.from_defaults(
        session_id=conv.id, token_limit=cfg.budget - cfg.max_tokens, tokenizer_fn=_cl100k_memo
    )
    system: Msg = {"role": "system", "content": SYSTEM}
    try:
        for user, reply in conv.turns:
            loop.run_until_complete(memory.aput(ChatMessage(role="user", content=user)))
            got = loop.run_until_complete(memory.aget())
            msgs = [system, *(llama_dict(m) for m in got)]
            ids, _ = tokens.prompt(msgs)
            check_prompt(run, ids, cfg, user, msgs[-1])
            _serve(run, ledger, tokens, ids, reply)
            loop.run_until_complete(memory.aput(ChatMessage(role="assistant", content=reply)))
    finally:
        engine = getattr(memory.sql_store, "_async_engine", None)
        if engine is not None:
            loop.run_until_complete(engine.dispose())
        loop.close()
    run.report = ledger.report()
    return run


# --- agent loops -------------------------------------------------------------------------------


class LlamaIndexLoop(LoopStrategy):
    def __init__(self, budget: int, session: str) -> None:
        from llama_index.core.memory import Memory

        self.loop = asyncio.new_event_loop()
        self.memory = Memory.from_defaults(
            session_id=session, token_limit=budget - MAX_TOKENS, tokenizer_fn=_cl100k_memo
        )

    def add(self, message: Msg) -> None:
        self.loop.run_until_complete(self.memory.aput(llama_message(message)))

    def prompt(self) -> list[Msg] | None:
        got = self.loop.run_until_complete(self.memory.aget())
        return [{"role": "system", "content": SYSTEM}, *(llama_dict(m) for m in got)]

    def close(self) -> None:
        engine = getattr(self.memory.sql_store, "_async_engine", None)
        if engine is not None:
            self.loop.run_until_complete(engine.dispose())
        self.loop.close()
