"""kill -9 of writers mid-append and mid-compaction leaves a clean, working database.

Writer processes append in a loop (single messages with idempotency keys, `extend` batches,
tool calls and their results in separate appends, images) to one shared thread or to a
thread each, and are SIGKILLed at random moments once they write; a compacting process is
killed inside a slow summarizer, right as its summarizer returns (during the commit), and at
random moments of a build-and-compact loop. After every round, on SQLite and PostgreSQL:

- `transfer.check(store)` reports nothing and every thread's seqs are exactly 1..last_seq;
- every write a worker saw commit is stored exactly once, and a write in flight at the kill
  is stored whole or not at all (an `extend` batch is never torn);
- retrying an in-flight append with its idempotency key stores it exactly once;
- the database takes further work: tool calls left open get their results, and append,
  build and compact succeed (then `check` is still clean).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Database

import contextkit
from contextkit.store.transfer import check

MODEL = "deepseek-v4-flash"
OWNER = "crash"
ROUNDS = int(os.environ.get("CONTEXTKIT_CRASH_ROUNDS", "3"))
"""Kill rounds per test (each starts fresh worker processes: ~2 s of imports each)."""

COMMON = r"""
import json, os, pathlib, random, struct, sys, time, zlib
import contextkit

def png(seed):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rgb = bytes([seed % 256, (seed * 7) % 256, (seed * 13) % 256])
    raw = b"".join(b"\x00" + rgb * 32 for _ in range(32))
    ihdr = struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))

def data_url(seed):
    import base64
    return "data:image/png;base64," + base64.b64encode(png(seed)).decode()

class Log:
    # intent before a write, ack after it returned: the parent's record of what committed
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    def intent(self, key, messages, keyed):
        os.write(self.fd, (json.dumps(["intent", key, messages, keyed]) + "\n").encode())
    def ack(self, key):
        os.write(self.fd, (json.dumps(["ack", key]) + "\n").encode())
"""

WRITER = (
    COMMON
    + r"""
url, tid, name, started, log_path, tools = sys.argv[1:7]
store = contextkit.open(url)
thread = store.thread(tid, model="deepseek-v4-flash", owner="crash")
rng = random.Random(name)
log = Log(log_path)
i = 0
while True:
    i += 1
    key = f"{name}-{i}"
    r = rng.random()
    if r < 0.4:
        msg = {"role": "user", "content": f"{key} single " + "words " * rng.randint(0, 200)}
        log.intent(key, [msg], True)
        thread.append(msg, idempotency_key=key)
    elif r < 0.6:
        n = rng.randint(5, 40)
        batch = [
            {"role": "user" if k % 2 == 0 else "assistant", "content": f"{key} batch {k}/{n}"}
            for k in range(n)
        ]
        log.intent(key, batch, False)
        thread.extend(batch)
    elif r < 0.8 and tools == "1":
        fn = {"name": "lookup", "arguments": json.dumps({"q": key})}
        call = {"role": "assistant", "content": None,
                "tool_calls": [{"id": key, "type": "function", "function": fn}]}
        log.intent(key, [call], False)
        thread.append(call)
        log.ack(key)
        key += "/answer"
        answer = {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"],
                  "content": f"{key} result"}
        log.intent(key, [answer], False)
        thread.append(answer)
    else:
        msg = {"role": "user", "content": [
            {"type": "text", "text": f"{key} image"},
            {"type": "image_url", "image_url": {"url": data_url(i)}},
        ]}
        log.intent(key, [msg], True)
        thread.append(msg, idempotency_key=key)
    log.ack(key)
    if i == 1:
        pathlib.Path(started).touch()
"""
)


def _awaited(script: str) -> str:
    """The writer on the async store: the same loop inside `async def main()`, awaited."""
    head, body = script.split("store = contextkit.open(url)\n", 1)
    body = body.replace("thread = store.thread(", "thread = await store.thread(")
    body = body.replace("thread.append(", "await thread.append(")
    body = body.replace("thread.extend(", "await thread.extend(")
    indented = "".join(f"    {line}\n" if line else "\n" for line in body.splitlines())
    return (
        f"{head}import asyncio\nasync def main():\n    store = await contextkit.open_async(url)\n"
        f"{indented}asyncio.run(main())\n"
    )


ASYNC_WRITER = _awaited(WRITER)

COMPACTOR = (
    COMMON
    + r"""
from contextkit.compaction import ExtractiveSummarizer
url, tid, name, marker, mode, log_path = sys.argv[1:7]

class Marked(ExtractiveSummarizer):
    def summarize(self, messages, **kw):
        if mode == "inside":  # the parent kills us while we sleep here
            pathlib.Path(marker).touch()
            time.sleep(120)
        result = super().summarize(messages, **kw)
        if mode == "commit":  # the parent kills us as soon as it sees this: mid-commit
            pathlib.Path(marker).touch()
        return result

store = contextkit.open(url, summarizer=Marked())
thread = store.thread(tid, owner="crash")
log = Log(log_path)
filler = ("We talked about the weather and the mood of the week; my name is Ada and "
          "I prefer tea. Nothing much happened beyond the usual routine.")
i = 0
while True:
    i += 1
    key = f"{name}-{i}"
    turn = [{"role": "user", "content": f"{key} user {filler}"},
            {"role": "assistant", "content": f"{key} reply {filler}"}]
    log.intent(key, turn, False)
    thread.extend(turn)
    log.ack(key)
    try:
        thread.build(max_tokens=300)
    except (contextkit.ValidationError, contextkit.ContextOverflowError):
        pass  # an open tool call of another writer; a turn too large for the window
    if i == 1 and mode == "random":
        pathlib.Path(marker).touch()
"""
)


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(
    paths: list[Path], procs: list[subprocess.Popen[str]], timeout: float = 90, poll: float = 0.005
) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"a worker died before it was killed (rc {proc.returncode}):\n{err}")
        assert time.monotonic() < deadline, "workers did not start writing in time"
        time.sleep(poll)


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"worker exited on its own:\n{err}"


class Ledger:
    """What the workers logged: writes they began (intents) and saw commit (acks)."""

    def __init__(self, logs: list[Path]) -> None:
        self.intents: dict[str, tuple[list[dict[str, Any]], bool]] = {}
        self.acked: set[str] = set()
        for path in logs:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut by the kill
                    continue
                if entry[0] == "intent":
                    self.intents[entry[1]] = (entry[2], entry[3])
                else:
                    self.acked.add(entry[1])

    def in_flight(self) -> list[str]:
        return [k for k in self.intents if k not in self.acked]


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if p.get("type") == "text")
    if content is None:  # a tool call: identified by its id
        return f"<call {message['tool_calls'][0]['id']}>"
    return str(content)


def stored_texts(store: contextkit.Store) -> Counter[str]:
    texts: Counter[str] = Counter()
    for thread in store.threads(owner=OWNER):
        for m in thread.messages():
            texts[f"<call {m.tool_calls[0].id}>" if m.tool_calls else m.text] += 1
    return texts


def assert_clean(store: contextkit.Store) -> None:
    """`check` is clean and every thread's seqs are exactly 1..last_seq."""
    assert check(store) == []
    with store.engine.connect() as conn:
        threads = conn.execute(sa.text("SELECT pk, id, last_seq FROM threads")).all()
        for pk, tid, last_seq in threads:
            seqs = conn.execute(
                sa.text("SELECT seq FROM messages WHERE thread_pk = :pk ORDER BY seq"), {"pk": pk}
            ).scalars()
            assert list(seqs) == list(range(1, last_seq + 1)), tid


def verify(store: contextkit.Store, ledger: Ledger, seen: set[str]) -> dict[str, int]:
    """Clean database; acked writes stored once; in-flight ones whole or absent; retries of
    in-flight keyed appends store them exactly once. `seen`: in-flight keys already judged."""
    assert_clean(store)
    texts = stored_texts(store)
    duplicated = [t for t, n in texts.items() if n > 1]
    assert not duplicated, f"stored more than once: {duplicated[:5]}"
    torn, landed, retried, new = [], 0, 0, 0
    for key, (messages, keyed) in ledger.intents.items():
        present = [texts[text_of(m)] for m in messages]
        if key in ledger.acked:
            assert all(present), f"acknowledged write {key} is missing"
            continue
        if any(present) and not all(present):
            torn.append(key)
        if key in seen:
            continue
        seen.add(key)
        new += 1
        landed += all(present) and bool(present)
        if keyed:  # retry the in-flight append with its key: exactly once afterwards
            thread = store.get_thread(owner_thread(store, key), owner=OWNER)
            thread.append(messages[0], idempotency_key=key)
            retried += 1
    assert not torn, f"writes stored in part: {torn}"
    if retried:
        texts = stored_texts(store)
        for key in ledger.in_flight():
            messages, keyed = ledger.intents[key]
            if keyed:
                assert texts[text_of(messages[0])] == 1, key
        assert_clean(store)
    return {"in_flight": new, "landed": landed, "retried": retried}


_OWNERS: dict[str, str] = {}
"""Worker name prefix -> the thread it writes to (keys are '<worker>-<n>')."""


def owner_thread(store: contextkit.Store, key: str) -> str:
    return _OWNERS[key.rsplit("-", 1)[0]]


def further_work(store: contextkit.Store) -> None:
    """Answer tool calls left open, then append, build and compact every thread."""
    for thread in store.threads(owner=OWNER):
        with store.engine.connect() as conn:
            open_calls = conn.execute(
                sa.text(
                    "SELECT call_id FROM tool_calls c JOIN threads t ON t.pk = c.thread_pk "
                    "WHERE t.id = :id AND c.answer_seq IS NULL ORDER BY c.call_seq"
                ),
                {"id": thread.id},
            ).scalars()
            calls = list(open_calls)
        thread.extend({"role": "tool", "tool_call_id": c, "content": "late"} for c in calls)
        before = len(thread)
        stored = thread.append({"role": "user", "content": "after the crash"})
        assert stored.seq == before + 1
        prompt = thread.prepare(max_tokens=300)
        assert prompt.messages[-1]["content"] == "after the crash"
        thread.compact()
        assert thread.build(max_tokens=300)[-1]["content"] == "after the crash"
    assert_clean(store)


@pytest.mark.parametrize("twin", ["sync", "async"])
@pytest.mark.parametrize("layout", ["one-thread", "thread-each"])
def test_kill_9_mid_append(database: Database, tmp_path: Path, layout: str, twin: str) -> None:
    store = contextkit.open(database.url)
    script = WRITER if twin == "sync" else ASYNC_WRITER
    rng = random.Random(f"{database.kind}-{layout}-{twin}")
    logs: list[Path] = []
    stats: Counter[str] = Counter()
    seen: set[str] = set()
    writers = 3
    for round_ in range(ROUNDS):
        procs, started = [], []
        for w in range(writers):
            name = f"r{round_}w{w}"
            tid = "shared" if layout == "one-thread" else f"own-{w}"
            _OWNERS[name] = tid
            started.append(tmp_path / f"{name}.started")
            logs.append(tmp_path / f"{name}.log")
            procs.append(spawn(script, database.url, tid, name, started[-1], logs[-1], 1))
        try:
            wait_for(started, procs)
            for proc in procs:  # staggered: each dies at its own random moment
                time.sleep(rng.uniform(0.0, 0.4))
                kill(proc)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    kill(proc)
        stats.update(verify(store, Ledger(logs), seen))
    # the kills landed mid-write: most killed writers had a write begun and not acknowledged,
    # and `verify` judged each of those (stored whole or not at all; keyed ones retried)
    kills = ROUNDS * writers
    assert stats["in_flight"] >= kills // 2, (stats, kills)
    further_work(store)
    total = sum(len(t) for t in store.threads(owner=OWNER))
    print(
        f"\n{database.kind} {layout} {twin}: {ROUNDS} rounds x {writers} writers killed, "
        f"{total} msgs; "
        f"writes in flight at the kill: {stats['in_flight']} ({stats['landed']} had landed, "
        f"{stats['retried']} keyed appends retried)"
    )
    store.close()


def test_kill_9_mid_compaction(database: Database, tmp_path: Path) -> None:
    store = contextkit.open(database.url)
    thread = store.thread("squeezed", model=MODEL, owner=OWNER, max_context_tokens=3_000)
    filler = "We talked about the weather. My name is Ada and I prefer tea. " * 3
    thread.extend(
        {"role": role, "content": f"warmup {i} {role} {filler}"}
        for i in range(20)
        for role in ("user", "assistant")
    )
    rng = random.Random(database.kind)
    logs: list[Path] = []
    stats: Counter[str] = Counter()
    seen: set[str] = set()
    modes = ["inside", "commit", "commit", "random"] * max(1, ROUNDS // 3)
    for round_, mode in enumerate(modes):
        summaries_before = len(thread.summaries())
        name = f"c{round_}"
        _OWNERS[name] = "squeezed"
        marker = tmp_path / f"{name}.marker"
        logs.append(tmp_path / f"{name}.log")
        compactor = spawn(COMPACTOR, database.url, "squeezed", name, marker, mode, logs[-1])
        appenders, started = [], []
        for w in range(1):
            wname = f"c{round_}a{w}"
            _OWNERS[wname] = "squeezed"
            started.append(tmp_path / f"{wname}.started")
            logs.append(tmp_path / f"{wname}.log")
            appenders.append(
                spawn(WRITER, database.url, "squeezed", wname, started[-1], logs[-1], 0)
            )
        procs = [compactor, *appenders]
        try:
            wait_for([marker, *started], procs)
            if mode == "commit":  # the next summarizer return, then at once: mid-commit
                marker.unlink()
                wait_for([marker], procs, poll=0.0005)
            if mode == "random":
                time.sleep(rng.uniform(0.2, 1.5))
            kill(compactor)
            for proc in appenders:
                time.sleep(rng.uniform(0.0, 0.2))
                kill(proc)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    kill(proc)
        stats.update(verify(store, Ledger(logs), seen))
        summaries = thread.summaries()
        assert [s.n for s in summaries] == list(range(1, len(summaries) + 1))
        if mode == "inside":  # killed inside its first summarizer call: nothing committed
            assert len(summaries) == summaries_before
        stats["summaries"] = len(summaries)
    # each round kills an appender (nearly always mid-write) and the compactor
    assert stats["in_flight"] >= len(modes) // 2, stats
    further_work(store)
    print(
        f"\n{database.kind} compaction: {len(modes)} rounds killed "
        f"({', '.join(modes)}); {stats['summaries']} summaries, {len(thread)} msgs; "
        f"writes in flight at the kill: {stats['in_flight']} ({stats['landed']} landed)"
    )
    store.close()
