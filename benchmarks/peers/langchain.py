"""LangChain: `SQLChatMessageHistory` for storage, `trim_messages` for the window.

The only module that imports `langchain_core` / `langchain_community` (and the HF
`tokenizers` counter given to `trim_messages`), always inside the functions that use them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from bench_compaction import CacheLedger, Conversation, PromptTokens, Run, Settings, _serve

from .common import (
    BUILD_BUDGET,
    MAX_TOKENS,
    MODEL,
    SYSTEM,
    BuildCase,
    Msg,
    Target,
    check_prompt,
    chunks,
    engine_settings,
    quiet,
    sqlite_engine,
)
from .loop_script import LoopStrategy


def preload() -> None:
    """Import LangChain's messages and build the DeepSeek tokenizer (before forking)."""
    import langchain_core.messages  # noqa: F401

    _hf_tokenizer()
    _deepseek_chat()


@cache
def _deepseek_chat() -> Any:
    """langchain-deepseek's chat model, only to build request bodies (never called)."""
    from langchain_deepseek import ChatDeepSeek

    return ChatDeepSeek(model=MODEL, api_key="unused", base_url="http://127.0.0.1:9/v1")


def deepseek_request(messages: list[Any]) -> list[Msg]:
    """The `messages` of the request body `ChatDeepSeek` sends for these LangChain messages:
    LangChain's DeepSeek path (langchain-deepseek's conversion, as `invoke` builds it)."""
    payload = _deepseek_chat()._get_request_payload(messages)
    converted: list[Msg] = payload["messages"]
    return converted


def lc_message(m: Msg) -> Any:
    """An OpenAI-format message as the LangChain message a LangChain app would hold."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    role, content = m["role"], m.get("content") or ""
    if role == "system":
        return SystemMessage(content)
    if role == "user":
        return HumanMessage(content)
    if role == "tool":
        return ToolMessage(content, tool_call_id=m["tool_call_id"])
    calls = [
        {
            "name": c["function"]["name"],
            "args": json.loads(c["function"]["arguments"]),
            "id": c["id"],
            "type": "tool_call",
        }
        for c in m.get("tool_calls") or ()
    ]
    extra = (
        {} if m.get("reasoning_content") is None else {"reasoning_content": m["reasoning_content"]}
    )
    return AIMessage(content, tool_calls=calls, additional_kwargs=extra)


@cache
def _hf_tokenizer() -> Any:
    from bench_tokens import tokenizer_json
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_json()))


@cache
def _hf_count(text: str) -> int:
    return len(_hf_tokenizer().encode(text, add_special_tokens=False).ids)


def lc_deepseek_counter(messages: list[Any]) -> int:
    """A LangChain `token_counter`: DeepSeek's tokenizer (HF `tokenizers`) on each content."""
    return sum(
        _hf_count(m.content if isinstance(m.content, str) else str(m.content)) for m in messages
    )


# --- 1. append ---------------------------------------------------------------------------------


def append_target(tmp: Path) -> Target:
    quiet()
    from langchain_community.chat_message_histories import SQLChatMessageHistory

    engine = sqlite_engine(tmp / "langchain.db")
    history = SQLChatMessageHistory(session_id="bench", connection=engine)

    def append(items: list[Any], batch: int) -> None:
        if batch == 1:
            for m in items:
                history.add_message(m)
        else:
            for i in range(0, len(items), batch):
                history.add_messages(items[i : i + batch])

    def load(msgs: list[Msg]) -> list[Any]:
        return [lc_message(m) for m in msgs]

    return Target(
        "LangChain SQLChatMessageHistory.add_message",
        load,
        append,
        engine.dispose,
        lambda: engine_settings(engine),
    )


# --- 2. build ----------------------------------------------------------------------------------


def build_case(tmp: Path, history: list[Msg]) -> BuildCase:
    quiet()
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langchain_core.messages import SystemMessage, trim_messages

    engine = sqlite_engine(tmp / "langchain.db")
    store = SQLChatMessageHistory(session_id="bench", connection=engine)
    for chunk in chunks(history, 1_000):
        store.add_messages([lc_message(m) for m in chunk])
    system = SystemMessage(SYSTEM)

    def call() -> list[Any]:
        return trim_messages(
            [system, *store.messages],
            max_tokens=BUILD_BUDGET - MAX_TOKENS,
            token_counter="approximate",
            strategy="last",
            start_on="human",
            include_system=True,
        )

    def prompt(result: list[Any]) -> list[Msg]:
        return deepseek_request(result)

    return BuildCase("LangChain .messages + trim_messages", call, prompt, engine.dispose)


# --- 4. replay ---------------------------------------------------------------------------------


def run_langchain(conv: Conversation, tokens: PromptTokens, cfg: Settings, counter: Any) -> Run:
    """LangChain's documented chat trimming, recomputed every call over the whole history."""
    quiet()
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages

    run, ledger = Run(len(conv.turns)), CacheLedger()
    history: list[Any] = [SystemMessage(SYSTEM)]
    for user, reply in conv.turns:
        history.append(HumanMessage(user))
        kept = trim_messages(
            history,
            max_tokens=cfg.budget - cfg.max_tokens,
            token_counter=counter,
            strategy="last",
            start_on="human",
            include_system=True,
        )
        msgs = deepseek_request(kept)
        ids, _ = tokens.prompt(msgs)
        check_prompt(run, ids, cfg, user, msgs[-1])
        _serve(run, ledger, tokens, ids, reply)
        history.append(AIMessage(reply))
    run.report = ledger.report()
    return run


# --- agent loops -------------------------------------------------------------------------------


class LangChainLoop(LoopStrategy):
    """`trim_messages` with the settings LangChain's docs recommend for chat models, sent
    through langchain-deepseek (`ChatDeepSeek`'s request body)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.history: list[Any] = [lc_message({"role": "system", "content": SYSTEM})]

    def add(self, message: Msg) -> None:
        self.history.append(lc_message(message))

    def prompt(self) -> list[Msg] | None:
        from langchain_core.messages import trim_messages

        kept = trim_messages(
            self.history,
            max_tokens=self.budget - MAX_TOKENS,
            token_counter="approximate",
            strategy="last",
            start_on="human",
            end_on=("human", "tool"),
            include_system=True,
        )
        return deepseek_request(kept)
