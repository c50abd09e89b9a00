"""The `contextkit` command, run for real in a subprocess."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import contextkit

COMMANDS = [
    [],
    ["threads"],
    ["threads", "ls"],
    ["threads", "show"],
    ["threads", "delete"],
    ["stats"],
    ["export"],
    ["import"],
    ["db"],
    ["db", "upgrade"],
    ["db", "current"],
    ["db", "check"],
    ["search"],
    ["demo"],
    ["chat"],
    ["serve-fake"],
]


def run(*args: str, url: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if url:
        env["CONTEXTKIT_URL"] = url
    out = subprocess.run(
        [sys.executable, "-m", "contextkit", *args], capture_output=True, text=True, env=env
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help(command):
    out = run(*command, "--help")
    assert "Usage:" in out.stdout


def populate(url: str) -> None:
    store = contextkit.open(url)
    t = store.thread(
        "full",
        model="deepseek-v4-pro",
        owner="alice",
        system="sys",
        max_context_tokens=2_000,
        metadata={"plan": "pro", "n": [1, 2]},
    )
    t.append({"role": "user", "content": "remember: blue"}, pinned=True)
    for i in range(25):
        t.append(
            {"role": "user", "content": f"question {i} about the weather and more " * 3},
            idempotency_key=f"k{i}",
        )
        t.append(
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": f"think {i}",
                "tool_calls": [
                    {
                        "id": f"c{i}",
                        "type": "function",
                        "function": {"name": "wx", "arguments": '{"d":1}'},
                    }
                ],
            }
        )
        t.append({"role": "tool", "tool_call_id": f"c{i}", "content": "sunny " * 10})
        p = t.prepare(max_tokens=200)
        t.record(
            {
                "id": f"resp-{i}",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": f"answer {i} ☀️",
                            "reasoning_content": "ok",
                        },
                    }
                ],
                "usage": {
                    "prompt_tokens": p.prompt_tokens,
                    "completion_tokens": 9,
                    "prompt_cache_hit_tokens": 64,
                    "prompt_cache_miss_tokens": p.prompt_tokens - 64,
                },
            },
            prompt=p,
        )
    store.thread("bob-thread", model="deepseek-v4-flash", owner="bob").append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        }
    )
    assert t.summaries(), "the fixture should have compacted"
    store.close()


def test_export_import_export_is_byte_identical(tmp_path: Path):
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    populate(a)
    first = run("export", "--all", url=a).stdout
    (tmp_path / "dump.jsonl").write_text(first, encoding="utf-8")
    assert run("import", str(tmp_path / "dump.jsonl"), url=b).stdout.startswith("imported 2")
    second = run("export", "--all", url=b).stdout
    assert second == first
    kinds = [json.loads(line)["type"] for line in first.splitlines()]
    assert {"thread", "message", "summary", "call"} <= set(kinds)
    # importing again is refused, and writes nothing
    again = run("import", str(tmp_path / "dump.jsonl"), url=b, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert run("export", "--all", url=b).stdout == first
    # the imported thread builds the same prompt
    s1, s2 = contextkit.open(a), contextkit.open(b)
    p1 = s1.get_thread("full", owner="alice").build(max_tokens=200)
    p2 = s2.get_thread("full", owner="alice").build(max_tokens=200)
    assert json.dumps(p1) == json.dumps(p2)


def test_read_commands_json(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    populate(url)
    listed = json.loads(run("threads", "ls", "--json", url=url).stdout)
    assert {r["id"] for r in listed} == {"full", "bob-thread"}
    shown = json.loads(run("threads", "show", "full", "--json", url=url).stdout)
    assert shown["owner"] == "alice" and shown["messages"] == 101
    stats = json.loads(run("stats", "full", "--json", url=url).stdout)
    assert stats["calls"] == 25 and stats["compactions"] >= 1 and stats["cost_usd"] > 0
    table = run("stats", url=url).stdout
    assert "full" in table and "bob-thread" in table
    missing = run("threads", "show", "nope", url=url, check=False)
    assert missing.returncode == 1 and "no thread 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_db_check_detects_a_broken_database(tmp_path: Path):
    path = tmp_path / "a.db"
    url = f"sqlite:///{path}"
    populate(url)
    assert run("db", "check", url=url).stdout.startswith("ok")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM messages WHERE seq = 7 AND thread_pk = 1")
        conn.execute("UPDATE summaries SET upto_seq = 10000")
    out = run("db", "check", "--json", url=url, check=False)
    assert out.returncode == 1
    problems = json.loads(out.stdout)["problems"]
    assert any("seqs are not" in p for p in problems)
    assert any("summary covers" in p for p in problems)


def test_delete(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    populate(url)
    run("threads", "delete", "bob-thread", "--yes", url=url)
    assert [r["id"] for r in json.loads(run("threads", "ls", "--json", url=url).stdout)] == ["full"]
    assert run("db", "check", url=url).stdout.startswith("ok")


def test_demo_runs_offline(tmp_path: Path):
    env_url = f"sqlite:///{tmp_path / 'demo.db'}"
    out = run("demo", "--json", "--db", env_url)
    result = json.loads(out.stdout)
    assert result["stats"]["compactions"] >= 1
    assert result["stats"]["cache_hit_ratio"] > 0.5
    kinds = {c["kind"] for c in result["calls"]}
    assert {"chat", "chat + image", "tool call", "tool answer"} <= kinds
    assert run("db", "check", url=env_url).stdout.startswith("ok")


def test_chat_repl_against_the_local_server(tmp_path: Path, deepseek):
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    env = {**os.environ, "CONTEXTKIT_URL": url, "DEEPSEEK_API_KEY": "test", "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "contextkit", "chat", "t1", "--base-url", deepseek.base_url],
        input="hello there\n/stats\n/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Echo" in out.stdout and '"calls": 1' in out.stdout
    store = contextkit.open(url)
    assert len(store.get_thread("t1")) == 2
    store.close()


def test_stats_shows_the_learned_correction_per_prompt_structure(tmp_path: Path):
    """A provider adding a constant preamble (as a newer encoder generation does) shows up
    as a learned correction for that prompt structure, and the next budget includes it."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = contextkit.open(url)
    thread = store.thread("cal", model="deepseek-v4-flash", system="Be brief.")
    thread.append({"role": "user", "content": "hi"})
    prompt = thread.prepare(max_tokens=100)
    thread.record(
        {
            "id": "r1",
            "choices": [{"message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": prompt.prompt_tokens + 79, "completion_tokens": 2},
        }
    )
    store.close()
    stats = json.loads(run("stats", "cal", "--json", url=url).stdout)
    assert stats["calibration"] == {prompt.structure: 79}
    table = run("stats", url=url).stdout
    assert "learned correction" in table and prompt.structure in table and "+79" in table
    thread = contextkit.open(url).thread("cal")
    thread.append({"role": "user", "content": "and?"})
    nxt = thread.prepare(max_tokens=100)
    assert nxt.structure == prompt.structure and nxt.calibrated_tokens == nxt.prompt_tokens + 79


def test_stats_of_a_thread_whose_model_this_process_does_not_know(tmp_path: Path):
    """The CLI is another process: a model registered by the app is unknown to it."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    spec = contextkit.get_model("deepseek-v4-flash")
    contextkit.register_model(
        attrs.evolve(spec, name="app-only-model", api_model="app-only-model"), replace=True
    )
    store = contextkit.open(url)
    store.thread("mine", model="app-only-model").append({"role": "user", "content": "hi"})
    store.close()
    stats = json.loads(run("stats", "mine", "--json", url=url).stdout)
    assert stats["messages"] == 1 and stats["calibration"] == {}
    assert "mine" in run("stats", url=url).stdout


def _chat(
    tmp_path: Path, stdin: str, *args: str, key: str | None = "test"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTEXTKIT_URL": f"sqlite:///{tmp_path / 'chat.db'}", "COLUMNS": "200"}
    env.pop("DEEPSEEK_API_KEY", None)
    if key is not None:
        env["DEEPSEEK_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "contextkit", "chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_chat_reports_a_bad_image_and_stays_in_the_repl(tmp_path: Path, deepseek):
    """A missing file or a file that is no image is an error line, not the end of the chat,
    and nothing of it reaches the thread; the next message is answered."""
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("just text, not pixels\n")
    stdin = (
        f"/image {tmp_path / 'missing.png'}\n/image {not_an_image}\nhello there\n/stats\n/quit\n"
    )
    out = _chat(tmp_path, stdin, "t1", "--base-url", deepseek.base_url)
    assert out.returncode == 0, out.stderr
    assert "missing.png" in out.stdout and "notes.txt" in out.stdout
    assert out.stdout.count("error:") == 2
    assert "Echo" in out.stdout and '"calls": 1' in out.stdout
    store = contextkit.open(f"sqlite:///{tmp_path / 'chat.db'}")
    thread = store.get_thread("t1")
    messages = list(thread.messages())
    assert [m.role.value for m in messages] == ["user", "assistant"]
    assert messages[0].content == "hello there"
    store.close()


def test_chat_with_another_base_url_needs_no_api_key(tmp_path: Path, deepseek):
    out = _chat(tmp_path, "hello there\n/quit\n", "t1", "--base-url", deepseek.base_url, key=None)
    assert out.returncode == 0, out.stderr
    assert "Echo" in out.stdout
    assert deepseek.requests[-1].status == 200


@pytest.mark.parametrize("base_url", [None, "https://api.deepseek.com/v1"])
def test_chat_with_deepseeks_url_requires_the_api_key(tmp_path: Path, base_url):
    args = ["t1"] + (["--base-url", base_url] if base_url else [])
    out = _chat(tmp_path, "hello\n/quit\n", *args, key=None)
    assert out.returncode == 2
    assert "DEEPSEEK_API_KEY" in out.stderr and "api.deepseek.com" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "chat.db").exists()  # refused before anything was written


def test_chat_opens_an_existing_thread_with_its_own_settings(tmp_path: Path, deepseek):
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    store = contextkit.open(url)
    store.thread("pro", model="deepseek-v4-pro", owner="ann", system="Be brief.")
    store.close()
    out = _chat(
        tmp_path, "hello\n/quit\n", "pro", "--owner", "ann", "--base-url", deepseek.base_url
    )
    assert out.returncode == 0, out.stderr
    assert deepseek.requests[-1].body["model"] == "deepseek-v4-pro"
    changed = _chat(tmp_path, "/quit\n", "pro", "--owner", "ann", "--system", "Other.")
    assert changed.returncode == 1 and "thread.update" in changed.stderr
    store = contextkit.open(url)
    thread = store.get_thread("pro", owner="ann")
    assert (thread.model, thread.system, len(thread)) == ("deepseek-v4-pro", "Be brief.", 2)
    store.close()


def test_threads_are_named_by_owner_and_id(tmp_path: Path):
    """Two owners' threads of one id: commands need --owner, export/import keeps both."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = contextkit.open(url)
    for owner in ("alice", "bob"):
        store.thread("t", model="deepseek-v4-flash", owner=owner).append(
            {"role": "user", "content": f"{owner} wrote this"}
        )
    store.close()
    ambiguous = run("threads", "show", "t", url=url, check=False)
    assert ambiguous.returncode == 1 and "--owner" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr
    shown = json.loads(run("threads", "show", "t", "--owner", "bob", "--json", url=url).stdout)
    assert shown["owner"] == "bob" and shown["last"][0]["content"] == "bob wrote this"
    assert (
        json.loads(run("stats", "t", "--owner", "alice", "--json", url=url).stdout)["messages"] == 1
    )
    dump = tmp_path / "dump.jsonl"
    run("export", "--all", "-o", str(dump), url=url)
    only_bob = run("export", "t", "--owner", "bob", url=url).stdout
    assert '"owner":"bob"' in only_bob.replace(" ", "") and "alice" not in only_bob
    other = f"sqlite:///{tmp_path / 'b.db'}"
    assert "imported 2 thread(s)" in run("import", str(dump), url=other).stdout
    again = run("import", str(dump), url=other, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    run("threads", "delete", "t", "--owner", "alice", "--yes", url=other)
    store = contextkit.open(other)
    assert [(t.owner, len(t)) for t in store.threads(all_owners=True)] == [("bob", 1)]
    store.close()


def _serve_fake(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "contextkit", "serve-fake", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise AssertionError(f"no base URL: {line!r} {proc.communicate()[1]}")
    return proc, line


def test_serve_fake_plays_a_script_file_and_takes_more_over_http(tmp_path: Path):
    """Replies, tool calls and faults from a JSONL file, then more queued by POST /_script,
    as the real openai SDK sees them."""
    import httpx
    import openai

    script = tmp_path / "script.jsonl"
    script.write_text(
        "\n".join(
            json.dumps(entry)
            for entry in [
                {"fault": {"status": 503, "message": "busy now"}},
                {"content": "Paris.", "reasoning": "The capital of France."},
                {"tool_calls": [{"name": "lookup", "arguments": {"order": 7}}]},
            ]
        )
        + "\n"
    )
    proc, base_url = _serve_fake("--script", str(script))
    try:
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        ask = [{"role": "user", "content": "capital of France?"}]
        with pytest.raises(openai.InternalServerError, match="busy now") as err:
            client.chat.completions.create(model="deepseek-v4-flash", messages=ask)
        assert err.value.status_code == 503
        first = client.chat.completions.create(model="deepseek-v4-flash", messages=ask)
        assert first.choices[0].message.content == "Paris."
        assert first.choices[0].message.reasoning_content == "The capital of France."  # type: ignore[attr-defined]
        second = client.chat.completions.create(model="deepseek-v4-flash", messages=ask)
        (call,) = second.choices[0].message.tool_calls or []
        assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"order": 7})
        assert second.choices[0].finish_reason == "tool_calls"
        queued = httpx.post(
            f"{base_url}/_script",
            json=[{"content": "Queued over HTTP."}, {"fault": {"status": 429, "times": 1}}],
        )
        assert queued.status_code == 200 and queued.json() == {"replies": 1, "faults": 1}
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="deepseek-v4-flash", messages=ask)
        third = client.chat.completions.create(model="deepseek-v4-flash", messages=ask)
        assert third.choices[0].message.content == "Queued over HTTP."
        bad = httpx.post(f"{base_url}/_script", json=[{"content": 5}])
        assert bad.status_code == 400 and "content" in bad.json()["error"]["message"]
        fourth = client.chat.completions.create(model="deepseek-v4-flash", messages=ask)
        assert fourth.choices[0].message.content.startswith("Echo")  # nothing of the bad one
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.parametrize(
    "text",
    ['{"content": "ok"}\n{"fault": {"status": 200}}\n', "not json\n", '[{"reply": "?"}]'],
)
def test_serve_fake_refuses_a_bad_script_file(tmp_path: Path, text: str):
    script = tmp_path / "bad.json"
    script.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "contextkit", "serve-fake", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "bad.json" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_demo_table_keeps_every_figure_at_any_width(tmp_path: Path, columns: int):
    """Narrow terminals get a compact table, never truncated figures (rich's "…")."""
    calls = json.loads(run("demo", "--json", "--db", f"sqlite:///{tmp_path / 'j.db'}").stdout)[
        "calls"
    ]
    env = {**os.environ, "COLUMNS": str(columns)}
    out = subprocess.run(
        [sys.executable, "-m", "contextkit", "demo", "--db", f"sqlite:///{tmp_path / 't.db'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "…" not in out.stdout
    assert max(len(line) for line in lines) <= columns
    cost = re.compile(r"^\d+\.\d{6}$")
    rows = [line.replace("│", " ").split() for line in lines]
    rows = [r for r in rows if r and r[0].isdigit() and any(cost.match(t) for t in r)]
    assert len(rows) == len(calls)
    for row, call in zip(rows, calls, strict=True):
        assert row[0] == str(call["n"])
        assert f"{call['prompt_tokens']:,}" in row and f"{call['cost_usd']:.6f}" in row
        assert f"{call['completion_tokens']:,}" in row or columns < 64
    compacted = [c["n"] for c in calls if c["compacted"]]
    assert compacted and all(
        "compacted" in " ".join(rows[n - 1]) or "*" in " ".join(rows[n - 1]) for n in compacted
    )


def test_db_commands_honour_the_global_url_and_refuse_going_back(tmp_path: Path, monkeypatch):
    """`--url` reaches `db current`/`db upgrade` (they used to act on ./contextkit.db); an
    upgrade to an older revision says so instead of printing a move that did not happen."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'given.db'}"
    env = {k: v for k, v in os.environ.items() if k != "CONTEXTKIT_URL"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "contextkit", *args], capture_output=True, text=True, env=env
        )

    up = cli("--url", url, "db", "upgrade", "--revision", "0004")
    assert up.returncode == 0 and "-> 0004" in up.stdout, up.stderr
    current = cli("--url", url, "db", "current", "--json")
    assert current.returncode == 0, current.stderr
    assert json.loads(current.stdout)["current"] == "0004"
    assert not (tmp_path / "contextkit.db").exists()  # nothing made in the working directory
    back = cli("--url", url, "db", "upgrade", "--revision", "0002")
    assert back.returncode == 1 and "0004" in back.stderr and "0002" in back.stderr
    assert "upgraded" not in back.stdout
    unknown = cli("--url", url, "db", "upgrade", "--revision", "9999")
    assert unknown.returncode == 1 and "9999" in unknown.stderr
    assert "Traceback" not in back.stderr + unknown.stderr
    assert json.loads(cli("--url", url, "db", "current", "--json").stdout)["current"] == "0004"


def test_threads_ls_limit(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with contextkit.open(url) as store:
        for i in range(3):
            store.thread(f"t{i}", model="deepseek-v4-flash")
    assert json.loads(run("threads", "ls", "--limit", "0", "--json", url=url).stdout) == []
    assert len(json.loads(run("threads", "ls", "--limit", "2", "--json", url=url).stdout)) == 2
    bad = run("threads", "ls", "--limit", "-1", url=url, check=False)
    assert bad.returncode == 2 and "limit" in bad.stderr.lower()


def _table_counts_at(url: str) -> dict[str, int]:
    from conftest import table_counts

    store = contextkit.open(url)
    try:
        return table_counts(store)
    finally:
        store.close()


def test_import_is_all_or_nothing_when_a_later_thread_exists(tmp_path: Path):
    """An export whose third thread already exists in the target imports none of them: the
    file is one transaction, and the error says what to do."""
    from conftest import export_header, export_message

    dump = tmp_path / "dump.jsonl"
    records = []
    for tid in ("first", "second", "third"):
        records += [export_header(tid), export_message(tid, 1), export_message(tid, 2)]
    dump.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'target.db'}"
    store = contextkit.open(url)
    store.thread("third", model="deepseek-v4-flash", owner="importer").append(
        {"role": "user", "content": "already here"}
    )
    store.close()
    before = _table_counts_at(url)
    out = run("import", str(dump), url=url, check=False)
    assert out.returncode == 1, out.stdout
    assert _table_counts_at(url) == before  # not 'first' nor 'second'
    assert "'third'" in out.stderr and "already exists" in out.stderr
    assert "nothing was imported" in out.stderr
    assert "contextkit threads delete third --owner importer" in out.stderr
    assert "Traceback" not in out.stderr
    listed = json.loads(run("threads", "ls", "--json", url=url).stdout)
    assert [r["id"] for r in listed] == ["third"]


def test_import_with_a_bad_record_late_in_the_file_writes_nothing(tmp_path: Path):
    from conftest import export_header, export_message

    dump = tmp_path / "dump.jsonl"
    good = [export_header("a"), export_message("a", 1)]
    bad = [export_header("b"), {**export_message("b", 1), "seq": 5}]
    dump.write_text("".join(json.dumps(r) + "\n" for r in good + bad), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'target.db'}"
    before = _table_counts_at(url)
    out = run("import", str(dump), url=url, check=False)
    assert out.returncode == 1 and "seqs" in out.stderr
    assert _table_counts_at(url) == before
    assert "nothing was imported" in out.stderr


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["threads", "show", "nope"], "contextkit threads ls"),
        (["threads", "delete", "nope", "--yes"], "contextkit threads ls"),
        (["stats", "nope"], "contextkit threads ls"),
        (["export", "nope"], "contextkit threads ls"),
        (["threads", "show", "t", "--owner", "carol"], "--owner"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_a_missing_thread_says_how_to_find_one(tmp_path: Path, args: list[str], hint: str):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = contextkit.open(url)
    store.thread("t", model="deepseek-v4-flash", owner="alice").append(
        {"role": "user", "content": "x"}
    )
    store.close()
    out = run(*args, url=url, check=False)
    assert out.returncode == 1 and "no thread" in out.stderr, out.stderr
    assert hint in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_search(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    populate(url)
    hits = json.loads(
        run("search", "weather question", "--owner", "alice", "--json", url=url).stdout
    )
    assert hits and all(h["thread_id"] == "full" and h["owner"] == "alice" for h in hits)
    assert "**weather**" in hits[0]["snippet"] and hits[0]["role"] in ("user", "summary")
    only = json.loads(
        run("search", "sunny", "--thread", "full", "--role", "tool", "--json", url=url).stdout
    )
    assert only and {h["role"] for h in only} == {"tool"}
    assert (
        len(
            json.loads(
                run("search", "sunny", "--owner", "alice", "--limit", "3", "--json", url=url).stdout
            )
        )
        == 3
    )
    # never another owner's: bob's thread holds "see"
    assert json.loads(run("search", "see", "--owner", "alice", "--json", url=url).stdout) == []
    assert [
        h["thread_id"]
        for h in json.loads(run("search", "see", "--owner", "bob", "--json", url=url).stdout)
    ] == ["bob-thread"]
    table = run("search", "remember blue", "--owner", "alice", url=url).stdout
    assert "remember: blue" in table and "full" in table
    assert run("search", "zebra", "--owner", "alice", url=url).stdout.strip() == "no matches"
    bad = run("search", '"', "--owner", "alice", url=url, check=False)
    assert bad.returncode == 1 and "no words to search for" in bad.stderr
    assert "Traceback" not in bad.stderr
