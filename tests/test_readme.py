"""The README's code runs as written (against the local server instead of DeepSeek's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import contextkit
from contextkit.testing.server import ScriptedReply

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_block(heading: str, index: int = 0) -> str:
    """The `index`th ```python block under the `## heading` section of the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) > index, f"no python block {index} under {heading!r}"
    return str(blocks[index])


def test_quickstart_streams_reasoning_and_answer_apart(tmp_path: Path, deepseek) -> None:
    code = _python_block("Quickstart").replace("https://api.deepseek.com", deepseek.base_url)
    deepseek.script(
        ScriptedReply("Order 5512 shipped yesterday."),
        ScriptedReply("It arrives on Friday.", reasoning="Shipped yesterday, two days."),
    )
    env = {k: v for k, v in os.environ.items() if k != "CONTEXTKIT_URL"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    reasoning = lines.index("[reasoning] Shipped yesterday, two days.")
    assert lines[reasoning + 1] == "[content] It arrives on Friday."
    assert deepseek.pending_replies == 0
    # `print(thread.stats())`, as the block's comment promises: calls, tokens, cache hit
    # ratio, cost in USD, compactions
    stats = next(line for line in lines if line.startswith("Stats("))
    for field in ("calls=", "tokens=", "cache_hit_ratio=", "cost_usd=", "compactions="):
        assert field in stats, (field, stats)


def test_langchain_async_form_runs(tmp_path: Path) -> None:
    """The LangChain section's async block, with a fake chat model for DeepSeek's."""
    code = _python_block("LangChain", 1)
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
