"""Checks of the harness itself, run beside langchain-core's tests (see peer_conftest.py):
the tests really get the adapter, async-backed in coroutines, and blockbuster really is on."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from blockbuster import BlockingError
from langchain_core.chat_history import InMemoryChatMessageHistory  # swapped by the conftest
from langchain_core.messages import AIMessage, HumanMessage

from contextkit.integrations.langchain import ContextKitChatMessageHistory

BLOCKBUSTER = json.loads(Path(os.environ["CONTEXTKIT_PEER_PLAN"]).read_text())["blockbuster"]


def test_sync_tests_get_the_adapter_on_the_sync_store() -> None:
    history = InMemoryChatMessageHistory(messages=[HumanMessage("a")])
    assert isinstance(history, ContextKitChatMessageHistory)
    assert not history.is_async
    history.add_ai_message("b")
    assert history.messages == [HumanMessage("a"), AIMessage("b")]
    assert history == InMemoryChatMessageHistory(messages=[HumanMessage("a"), AIMessage("b")])


async def test_coroutine_tests_get_the_adapter_on_the_async_store() -> None:
    history = InMemoryChatMessageHistory()
    assert isinstance(history, ContextKitChatMessageHistory)
    assert history.is_async
    await history.aadd_messages([HumanMessage("b")])
    assert await history.aget_messages() == [HumanMessage("b")]
    assert history == InMemoryChatMessageHistory(messages=[HumanMessage("b")])
    assert history != InMemoryChatMessageHistory(messages=[HumanMessage("c")])


@pytest.mark.skipif(not BLOCKBUSTER, reason="the plan turned blockbuster off")
async def test_blockbuster_is_on_in_coroutine_tests() -> None:
    with pytest.raises(BlockingError):
        time.sleep(0.001)
