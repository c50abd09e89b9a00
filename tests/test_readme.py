"""Every ```python block of the README runs as written, on its own.

Each block runs in a fresh interpreter with an empty temporary directory as its working
directory (so `contextkit.open()` makes a new `./contextkit.db`), with DeepSeek's base URL
replaced by the local DeepSeek-compatible server's, which answers with the replies scripted
for that block. A block never relies on another block having run. A new block without an
entry in `CASES` fails `test_every_python_block_has_a_case`, so none goes unrun.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import contextkit
from contextkit.testing.server import ScriptedReply, ScriptedToolCall

README = Path(__file__).resolve().parent.parent / "README.md"
DEEPSEEK = "https://api.deepseek.com"


def python_blocks(text: str) -> dict[str, str]:
    """Every ```python block, named by its `## section` (and its number there after the
    first: "Quickstart", "Quickstart 2")."""
    out: dict[str, str] = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        heading = section.split("\n", 1)[0].strip()
        for n, code in enumerate(re.findall(r"^```python\n(.*?)^```", section, re.S | re.M), 1):
            out[heading if n == 1 else f"{heading} {n}"] = code
    return out


def _python_block(heading: str, index: int = 0) -> str:
    """The `index`th ```python block under the `## heading` section of the README."""
    return BLOCKS[heading if index == 0 else f"{heading} {index + 1}"]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def _stored(tmp: Path, thread_id: str) -> contextkit.Thread:
    store = contextkit.open(f"sqlite:///{tmp / 'contextkit.db'}")
    return store.get_thread(thread_id, owner="alice")


def _quickstart(out: str, tmp: Path, server: Any) -> None:
    lines = out.splitlines()
    assert lines[0].startswith("Order 5512 shipped yesterday. ")  # content, cache hits, cost
    reasoning = lines.index("[reasoning] Shipped yesterday, two days.")
    assert lines[reasoning + 1] == "[content] It arrives on Friday."
    # `print(thread.stats())`, as the block's comment promises
    stats = next(line for line in lines if line.startswith("Stats("))
    for field in ("calls=2", "tokens=", "cache_hit_ratio=", "cost_usd=", "compactions="):
        assert field in stats, (field, stats)
    assert len(_stored(tmp, "support-42")) == 4


def _own_client(out: str, tmp: Path, server: Any) -> None:
    thread = _stored(tmp, "support-43")
    stored = list(thread.messages())
    assert [(m.role.value, m.content) for m in stored] == [("user", "hi"), ("assistant", "Hello!")]
    assert thread.stats().calls == 1


def _streaming(out: str, tmp: Path, server: Any) -> None:
    assert "Once upon a time." in out
    assert out.splitlines()[-1] == "complete 2 messages stored"
    assert _stored(tmp, "story-1").stats().calls == 1


def _agent_loop(out: str, tmp: Path, server: Any) -> None:
    assert out.strip() == "Yes: order 5512 shipped."
    sent = server.requests[-1].body["messages"]
    result = next(m for m in sent if m["role"] == "tool")
    assert '"status": "shipped"' in result["content"]
    assert len(_stored(tmp, "orders-7")) == 4  # user, call, result, answer


def _testing(out: str, tmp: Path, server: Any) -> None:
    store = contextkit.open(f"sqlite:///{tmp / 'test.db'}")
    assert [m.role.value for m in store.get_thread("t1").messages()] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def _recall(out: str, tmp: Path, server: Any) -> None:
    lines = out.splitlines()
    assert lines[0].startswith("1 user ") and "**order number**" in lines[0]
    assert lines[1] == "1"  # store.search found the refund
    assert lines[-1] == "recall Your order number is QX-58213-K."
    store = contextkit.open(f"sqlite:///{tmp / 'recall.db'}")
    assert store.get_thread("support-7", owner="alice").get(1).pinned


Check = Callable[[str, Path, Any], None]
CASES: dict[str, tuple[list[ScriptedReply], Check]] = {
    "Quickstart": (
        [
            ScriptedReply("Order 5512 shipped yesterday."),
            ScriptedReply("It arrives on Friday.", reasoning="Shipped yesterday, two days."),
        ],
        _quickstart,
    ),
    "Quickstart 2": ([ScriptedReply("Hello!")], _own_client),
    "Streaming": ([ScriptedReply("Once upon a time.", reasoning="A story.")], _streaming),
    "Agent loops": (
        [
            ScriptedReply(
                reasoning="Look it up.",
                tool_calls=[ScriptedToolCall("lookup_order", '{"order": 5512}')],
            ),
            ScriptedReply("Yes: order 5512 shipped.", reasoning="It did."),
        ],
        _agent_loop,
    ),
    "Recall and search": (
        [
            ScriptedReply(
                reasoning="Search.",
                tool_calls=[ScriptedToolCall("recall", '{"query": "order number"}')],
            ),
            ScriptedReply("Your order number is QX-58213-K.", reasoning="Found it."),
        ],
        _recall,
    ),
    # starts its own server: nothing is scripted on the shared one
    "Testing your app without an API key": ([], _testing),
}


SEPARATE = {
    "LangChain": "test_langchain_sync_form_runs below (a fake chat model for DeepSeek's)",
    "LangChain 2": "test_langchain_async_form_runs below (a fake chat model for DeepSeek's)",
    "Async": "test_async.py::test_the_readme_async_block_runs_as_written (a FastAPI client)",
}
"""Blocks run by a test of their own, which needs more than the local server."""


def test_every_python_block_has_a_case() -> None:
    assert len(BLOCKS) >= 5, sorted(BLOCKS)
    assert sorted(BLOCKS) == sorted({*CASES, *SEPARATE}), (
        "a README python block without a case (or a stale case)"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_block_runs_on_its_own(name: str, tmp_path: Path, deepseek: Any) -> None:
    replies, check = CASES[name]
    code = BLOCKS[name]
    assert (DEEPSEEK in code) == bool(replies), "scripted replies only for blocks that call"
    deepseek.script(*replies)
    env = {k: v for k, v in os.environ.items() if k not in ("CONTEXTKIT_URL", "DEEPSEEK_API_KEY")}
    out = subprocess.run(
        [sys.executable, "-c", code.replace(DEEPSEEK, deepseek.base_url)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert deepseek.pending_replies == 0  # every scripted reply was asked for
    check(out.stdout, tmp_path, deepseek)


def _with_fake_model(code: str) -> str:
    fake = {
        "from langchain_deepseek import ChatDeepSeek": (
            "from langchain_core.language_models.fake_chat_models import GenericFakeChatModel"
        ),
        'model = ChatDeepSeek(model="deepseek-v4-flash")': (
            'model = GenericFakeChatModel(messages=iter(["It shipped.", "On Friday."]))'
        ),
    }
    for line, replacement in fake.items():
        assert line in code
        code = code.replace(line, replacement)
    return code


def test_langchain_sync_form_runs(tmp_path: Path) -> None:
    """The LangChain section's sync block, with a fake chat model for DeepSeek's."""
    code = _with_fake_model(_python_block("LangChain"))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["It shipped.", "On Friday."]
    store = contextkit.open(f"sqlite:///{tmp_path / 'chat.db'}")
    try:
        thread = store.thread("support-42", owner="alice")
        assert [m.role.value for m in thread.history()] == ["user", "assistant"] * 2
    finally:
        store.close()


def test_langchain_async_form_runs(tmp_path: Path) -> None:
    """The LangChain section's async block, with a fake chat model for DeepSeek's."""
    code = _with_fake_model(_python_block("LangChain", 1))
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "It shipped."
    answer, tokens = second.rsplit(" ", 1)
    assert answer == "On Friday." and int(tokens) > 0
    store = contextkit.open(f"sqlite:///{tmp_path / 'chat.db'}")
    try:
        thread = store.thread("support-42", owner="alice")
        assert [m.text for m in thread.history()] == [
            "Where is my order 5512?",
            "It shipped.",
            "And when will it arrive?",
            "On Friday.",
        ]
    finally:
        store.close()
