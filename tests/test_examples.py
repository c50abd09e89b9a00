"""The examples run as a newcomer runs them: `python examples/X.py`, no API key, no network.

Each runs in a subprocess with `DEEPSEEK_API_KEY` removed, so it starts the local
DeepSeek-compatible server; the output's key lines and the database it leaves are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import contextkit

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LOCAL_NOTICE = "No DEEPSEEK_API_KEY"


def run_example(name: str, *args: str, timeout: float = 60) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_every_example_is_tested():
    tested = {"quickstart.py", "chatbot.py", "agent_async.py", "long_session.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart(tmp_path):
    out = run_example("quickstart.py", str(tmp_path / "q.db"))
    assert "append -> seq 4" in out
    assert "retry with the same idempotency key -> seq 4 (no new row)" in out
    assert "4 messages stored in" in out


def test_chatbot(tmp_path):
    db = tmp_path / "chat.db"
    out = run_example("chatbot.py", "--db", str(db))
    lines = out.splitlines()
    assert lines[0].startswith(LOCAL_NOTICE)
    users = ("alice", "bob", "carol")
    asked = [line.split("]")[0][1:] for line in lines if line.startswith("[")]
    assert asked == list(users) * 4  # interleaved: every user once per round
    assert sum(line.startswith("    bot: ") for line in lines) == 12
    assert "bob asking for alice's thread id -> NotFound: no thread 'alice-conv-1' of owner" in out
    assert "bob's threads: ['bob-conv-1']" in out
    for user in users:
        stats = next(line for line in lines if line.startswith(f"  {user:<6} calls="))
        assert "calls=4 messages=8" in stats and "cache hit ratio=" in stats and "$" in stats
    with contextkit.open(f"sqlite:///{db}") as store:
        assert {t.owner for t in store.threads(all_owners=True)} == set(users)
        thread = store.thread("carol-conv-1", owner="carol")
        assert len(thread) == 8 and thread.stats().cache_hit_tokens > 0
        with pytest.raises(contextkit.NotFound):  # ids are per owner
            store.get_thread("carol-conv-1", owner="alice")


def test_agent_async(tmp_path):
    db = tmp_path / "agent.db"
    out = run_example("agent_async.py", "--db", str(db))
    assert out.startswith(LOCAL_NOTICE)
    assert 'calls:   check_inventory({"sku": "TENT-2P"})' in out
    assert 'calls:   check_inventory({"sku": "PACK-40"})' in out
    assert '"stock": 0' in out  # the async tool's result reached the thread
    assert "result:  378.0" in out and "result:  527" in out  # the plain tool's results
    assert "thinks:  " in out
    assert out.count("(3 model calls)") == 2
    assert "answer:  2 tents + 1 pair of BOOT-46: 527.00 EUR" in out
    assert "6 calls, cache hit ratio" in out
    with contextkit.open(f"sqlite:///{db}") as store:
        thread = store.thread("shop-agent-1")
        messages = list(thread.messages())
        tool_turns = [m for m in messages if m.tool_calls]
        assert len(tool_turns) == 4 and all(m.reasoning_content for m in tool_turns)
        assert sum(m.role.value == "tool" for m in messages) == 5


def test_long_session_resumes_across_processes(tmp_path):
    db = tmp_path / "session.db"
    out = run_example("long_session.py", "--db", str(db))
    assert out.startswith(LOCAL_NOTICE)
    phases = [line for line in out.splitlines() if line.startswith("phase ")]
    assert len(phases) == 3
    assert [p.split(": ")[1] for p in phases] == [
        "thread has 0 messages",
        "thread has 12 messages",
        "thread has 24 messages",
    ]
    pids = {p.split("pid ")[1].split(")")[0] for p in phases}
    assert len(pids) == 3 and str(os.getpid()) not in pids  # three separate processes
    assert "window moved (compacted)" in out
    assert "messages stored:  36" in out
    assert "history readable: 36 messages" in out
    assert "model calls:      18, cache hit ratio" in out
    summaries = int(out.split("summaries:")[1].split()[0])
    window_start = int(out.split("window starts at: message")[1].split()[0])
    assert summaries >= 1 and window_start > 1
    with contextkit.open(f"sqlite:///{db}") as store:
        thread = store.thread("trip-planner", owner="dana")
        stats = thread.stats()
        assert stats.messages == 36 and stats.calls == 18
        assert stats.compactions == summaries and stats.window_start == window_start
        assert stats.cache_hit_ratio > 0.5
        assert len(thread.summaries()) == summaries
