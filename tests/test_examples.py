"""The examples run as a newcomer runs them: `python examples/X.py`, no API key, no network.

Each runs in a subprocess with `DEEPSEEK_API_KEY` removed, so it starts the local
DeepSeek-compatible server; the output's key lines and the database it leaves are checked.
The subprocesses import the installed contextkit (no PYTHONPATH is set for them), on SQLite
and, through the `database` fixture, on PostgreSQL.

Nothing here waits a fixed time: servers are polled on their health endpoint, and a run is
only cut off after `TIMEOUT` seconds (5 minutes times `CONTEXTKIT_TEST_TIMEOUT_SCALE`), far
beyond the seconds each example takes, so that a loaded machine is slow, not failing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

import contextkit

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LOCAL_NOTICE = "No DEEPSEEK_API_KEY"
TIMEOUT = 300.0 * float(os.environ.get("CONTEXTKIT_TEST_TIMEOUT_SCALE") or 1)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DEEPSEEK_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(name: str, *args: str, out: Any) -> subprocess.Popen[bytes]:
    """Start an example in its own process group (its children die with it on a timeout)."""
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=ROOT,
        env=_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read(out: Any) -> str:
    out.seek(0)
    return out.read().decode("utf-8", "replace")


def run_example(name: str, *args: str) -> str:
    """Run an example to its end; its output (stdout and stderr), checked for success."""
    with tempfile.TemporaryFile() as out:  # a file, not a pipe: nothing blocks on a full pipe
        proc = _start(name, *args, out=out)
        try:
            code = proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(proc)
            pytest.fail(f"{name} still running after {TIMEOUT:.0f} s\n{_read(out)}")
        output = _read(out)
    assert code == 0, f"{name} exited {code}\n{output}"
    assert "Traceback" not in output, output
    return output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def example_server(name: str, *args: str) -> Iterator[str]:
    """Start an example web server on a free port; its base URL once /health answers ok.

    Stopped with SIGTERM (a graceful shutdown) when the block ends; it must exit cleanly.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as out:
        proc = _start(name, *args, "--port", str(port), out=out)
        try:
            deadline = time.monotonic() + TIMEOUT
            with httpx.Client(timeout=TIMEOUT) as http:
                while True:
                    if proc.poll() is not None:
                        pytest.fail(f"{name} exited {proc.returncode} before ready\n{_read(out)}")
                    try:
                        if http.get(f"{base}/health").json().get("ok"):
                            break
                    except httpx.TransportError:
                        pass  # not listening yet
                    if time.monotonic() > deadline:
                        pytest.fail(f"{name} not ready after {TIMEOUT:.0f} s\n{_read(out)}")
                    time.sleep(0.05)  # the poll interval
            yield base
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill(proc)
                code = None
            output = _read(out)
    assert code == 0, f"{name} exited {code} on SIGTERM\n{output}"
    assert "Traceback" not in output, output
    assert output.startswith(LOCAL_NOTICE), output


def test_every_example_is_tested():
    tested = {
        "quickstart.py",
        "chatbot.py",
        "chatbot_server.py",
        "agent_async.py",
        "long_session.py",
    }
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


# --- the streaming chatbot server -------------------------------------------------------

USERS = [f"user{i:02d}" for i in range(20)]
TURNS = 3


def conversation_of(user: str) -> str:
    return f"conv-{user[4:]}"


def question(user: str, turn: int) -> str:
    return f"{user} asking, turn {turn}: where is my order {5000 + USERS.index(user)}?"


async def stream_turn(http: httpx.AsyncClient, base: str, user: str, text: str) -> dict[str, Any]:
    """POST one message; the reply's server-sent events, parsed."""
    deltas: list[dict[str, Any]] = []
    done = None
    url = f"{base}/chat/{conversation_of(user)}"
    async with http.stream("POST", url, headers={"X-User": user}, json={"message": text}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert event in ("delta", "done"), (event, data)
                if event == "delta":
                    deltas.append(data)
                else:
                    done = data
    assert done is not None, f"{user}: the stream ended without a done event"
    text_deltas = [d["text"] for d in deltas if d["kind"] == "content"]
    return {"chunks": len(text_deltas), "text": "".join(text_deltas), **done}


async def drive_users(base: str) -> dict[str, list[dict[str, Any]]]:
    """Every user's turns, users concurrently, each user's turns in order (as a chat UI)."""
    limits = httpx.Limits(max_connections=len(USERS) * 2)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:

        async def user_session(user: str) -> list[dict[str, Any]]:
            return [await stream_turn(http, base, user, question(user, t)) for t in range(TURNS)]

        replies = await asyncio.gather(*(user_session(u) for u in USERS))
    return dict(zip(USERS, replies, strict=True))


@contextmanager
def first_replies_collide(database: Any) -> Iterator[None]:
    """On PostgreSQL, make the users' first replies record at the same moment.

    Each reply's record updates the model's calibration row, inserting it when there is none
    yet, so the concurrent first replies on a fresh database race to insert it. To make that
    race certain rather than likely, the calibrations table is locked until two records wait
    on it (at most 10 s), then released for all of them at once. SQLite writers queue
    anyway: nothing to do there.
    """
    if database.kind != "postgresql":
        yield
        return
    engine = database.engine()
    lock, watch = engine.connect(), engine.connect()
    lock.exec_driver_sql("LOCK TABLE calibrations IN SHARE ROW EXCLUSIVE MODE")
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE relation = 'calibrations'::regclass AND NOT granted"
    )

    def release() -> None:
        deadline = time.monotonic() + 10
        while watch.exec_driver_sql(waiting).scalar_one() < 2 and time.monotonic() < deadline:
            watch.rollback()
            time.sleep(0.01)  # the poll interval
        lock.commit()

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        yield
    finally:
        releaser.join()
        lock.close()
        watch.close()
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_chatbot_server(database):
    with example_server("chatbot_server.py", "--db", database.url) as base:
        with first_replies_collide(database):
            replies = asyncio.run(drive_users(base))
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            for i, user in enumerate(USERS):
                other = USERS[(i + 1) % len(USERS)]
                mine, theirs = conversation_of(user), conversation_of(other)
                # Conversation ids are per user: another user's id names nothing of this one
                assert (
                    http.get(f"/conversations/{theirs}", headers={"X-User": user}).status_code
                    == 404
                )
                assert http.get(f"/conversations/{mine}").status_code == 401  # no user
                listed = http.get("/conversations", headers={"X-User": user}).json()
                assert listed == [{"id": mine, "messages": 2 * TURNS}]

                got = http.get(f"/conversations/{mine}", headers={"X-User": user})
                assert got.status_code == 200
                conv = got.json()
                assert conv["owner"] == user
                messages = conv["messages"]
                assert [m["seq"] for m in messages] == list(range(1, 2 * TURNS + 1))
                assert [m["role"] for m in messages] == ["user", "assistant"] * TURNS
                assert [m["content"] for m in messages[::2]] == [
                    question(user, t) for t in range(TURNS)
                ]
                streamed = replies[user]
                assert [r["seq"] for r in streamed] == list(range(2, 2 * TURNS + 1, 2))
                for reply, stored in zip(streamed, messages[1::2], strict=True):
                    assert reply["chunks"] > 1  # streamed in pieces, not in one block
                    assert reply["finish_reason"] == "stop"
                    assert reply["text"] == stored["content"] and user in reply["text"]
                texts = " ".join(m["content"] for m in messages)
                assert not [u for u in USERS if u != user and u in texts]  # no cross-user leak
                stats = conv["stats"]
                assert stats["calls"] == TURNS and stats["messages"] == 2 * TURNS
                assert stats["cache_hit_tokens"] > 0 and stats["cache_hit_ratio"] > 0
                assert stats["cost_usd"] > 0
            assert http.get("/conversations/conv-99", headers={"X-User": "x"}).status_code == 404
            # posting to another user's id starts one's own conversation; theirs is untouched
            theirs = conversation_of(USERS[1])
            r = http.post(f"/chat/{theirs}", headers={"X-User": USERS[0]}, json={"message": "hi"})
            assert r.status_code == 200
            other = http.get(f"/conversations/{theirs}", headers={"X-User": USERS[1]}).json()
            assert len(other["messages"]) == 2 * TURNS and other["owner"] == USERS[1]
            mine = http.get(f"/conversations/{theirs}", headers={"X-User": USERS[0]}).json()
            assert mine["owner"] == USERS[0] and len(mine["messages"]) == 2

    with contextkit.open(database.url) as store:
        assert store.check() == []
        threads = {t.id: t for t in store.threads(all_owners=True)}
        assert {tid: t.owner for tid, t in threads.items()} == {
            conversation_of(u): u for u in USERS
        }
        assert all(len(t) == 2 * TURNS for t in threads.values())  # the refused POSTs wrote nothing


# --- the async agent, resumed across processes ------------------------------------------


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


@pytest.mark.parametrize(
    ("crash_after", "pending"),
    [(1, ['check_inventory({"sku": "PACK-40"})']), (3, ['check_inventory({"sku": "BOOT-46"})'])],
    ids=["mid-step", "second-question"],
)
def test_agent_resumes_across_processes(database, crash_after, pending):
    out = run_example("agent_async.py", "--db", database.url, "--crash-after", str(crash_after))
    assert out.startswith(LOCAL_NOTICE)
    first = out.split("process 1 (pid ")[1].split(")")[0]
    second = out.split("process 2 (pid ")[1].split(")")[0]
    assert first != second and str(os.getpid()) not in (first, second)
    assert f"process {first} dies before running check_inventory" in out
    assert "process 1 exited with code 3 (died mid-loop)" in out
    assert f"{len(pending)} unanswered tool call(s)" in out
    assert [line.split("pending: ")[1] for line in out.splitlines() if "pending: " in line] == (
        pending
    )
    assert "resuming the interrupted turn" in out
    assert "answer:  2 tents + 1 pair of BOOT-46: 527.00 EUR" in out
    assert "6 calls, cache hit ratio" in out

    with contextkit.open(database.url) as store:
        assert store.check() == []
        thread = store.thread("shop-agent-1")
        assert thread.pending_tool_calls() == []
        messages = list(thread.messages())
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        calls = [c.id for m in messages for c in m.tool_calls]
        answers = [m.tool_call_id for m in messages if m.role.value == "tool"]
        assert len(calls) == 5 and sorted(answers) == sorted(calls)  # each answered once
        for m in messages:  # and after its call, before the next model step
            for c in m.tool_calls:
                answer = next(a for a in messages if a.tool_call_id == c.id)
                assert m.seq < answer.seq
        assert [m.role.value for m in messages].count("user") == 2
        assert all(m.reasoning_content for m in messages if m.tool_calls)
        assert messages[-1].text == "2 tents + 1 pair of BOOT-46: 527.00 EUR, in stock."
        assert thread.stats().calls == 6


# --- the long session: a bulk import, compaction, three processes -----------------------

IMPORTED = 3_600


def test_long_session_resumes_across_processes(database):
    out = run_example("long_session.py", "--db", database.url, "--import", str(IMPORTED))
    assert out.startswith(LOCAL_NOTICE)
    phases = [line for line in out.splitlines() if line.startswith("phase ")]
    assert [p.split(": ")[1] for p in phases] == [
        "thread has 0 messages",
        f"thread has {IMPORTED + 12} messages",
        f"thread has {IMPORTED + 24} messages",
    ]
    pids = {p.split("pid ")[1].split(")")[0] for p in phases}
    assert len(pids) == 3 and str(os.getpid()) not in pids  # three separate processes
    assert f"imported {IMPORTED:,} earlier messages with extend()" in out
    assert "window moved (compacted)" in out
    total = IMPORTED + 36
    assert f"messages stored:  {total}" in out
    assert f"history readable: {total} messages" in out
    assert "model calls:      18, cache hit ratio" in out
    summaries = int(out.split("summaries:")[1].split()[0])
    window_start = int(out.split("window starts at: message")[1].split()[0])
    assert summaries >= 1 and window_start > IMPORTED // 2
    with contextkit.open(database.url) as store:
        assert store.check() == []
        thread = store.thread("trip-planner", owner="dana")
        stats = thread.stats()
        assert stats.messages == total and stats.calls == 18
        assert stats.compactions == summaries and stats.window_start == window_start
        assert stats.cache_hit_ratio > 0.5
        stored = thread.summaries()
        assert len(stored) == summaries and stored[-1].upto_seq == window_start - 1
        for s in stored:
            assert f"summary {s.n}: folded in messages {s.from_seq}..{s.upto_seq}" in out
        prompt = thread.build(max_tokens=200)  # what the next turn would send fits the budget
        assert prompt[0]["role"] == "system" and len(prompt) < total


def test_long_session_summaries_cover_the_import(database):
    run_example("long_session.py", "--db", database.url, "--import", str(IMPORTED), "--phases", "1")
    with contextkit.open(database.url) as store:
        summaries = store.thread("trip-planner", owner="dana").summaries()
        assert summaries and summaries[0].from_seq == 1
