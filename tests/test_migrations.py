"""The schema comes only from Alembic migrations, which ship with the installed package."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import Database

import contextkit
from contextkit.db import migrate
from contextkit.db.schema import Base, search_objects
from contextkit.errors import ValidationError


def test_open_in_an_empty_directory_creates_the_database(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    env.pop("CONTEXTKIT_URL", None)
    code = "import contextkit; s = contextkit.open(); print(s.url)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    db = tmp_path / "contextkit.db"
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (migrate.head_revision(),)
        ]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_contextkit_url_environment_variable(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    env = {**os.environ, "CONTEXTKIT_URL": f"sqlite:///{target}"}
    code = "import contextkit; contextkit.open().thread('a', model='deepseek-v4-flash')"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert target.is_file() and not (tmp_path / "contextkit.db").exists()


def _cli() -> list[str]:
    exe = shutil.which("contextkit", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "contextkit"]


def test_cli_db_upgrade(database: Database, tmp_path: Path) -> None:
    out = subprocess.run(
        [*_cli(), "db", "upgrade", database.url], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert f"-> {migrate.head_revision()}" in out.stdout
    again = subprocess.run(
        [*_cli(), "db", "upgrade", database.url], capture_output=True, text=True, cwd=tmp_path
    )
    assert "already at revision" in again.stdout
    current = subprocess.run(
        [*_cli(), "db", "current", database.url], capture_output=True, text=True
    )
    assert "up to date" in current.stdout
    engine = database.engine()
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_migrations_match_the_models(database: Database) -> None:
    engine = database.engine()
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(
                conn, opts={"compare_type": False, "include_name": search_objects}
            ),
            Base.metadata,
        )
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(database: Database) -> None:
    engine = database.engine()
    migrate.upgrade(engine)
    assert migrate.downgrade(engine, "base") is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert {"threads", "messages", "tool_calls"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_open_without_migrating_refuses_an_old_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    try:
        contextkit.open(url, migrate_schema=False)
    except contextkit.ContextKitError as exc:
        assert "contextkit db upgrade" in str(exc)
    else:
        raise AssertionError("expected ContextKitError")
    contextkit.open(url).close()
    contextkit.open(url, migrate_schema=False).close()


def test_upgrade_from_0001_fills_window_bookkeeping(database: Database) -> None:
    """Data written under the first schema gets its counts and replay forms on upgrade."""
    engine = database.engine()
    try:
        migrate.upgrade(engine, "0001")
        now = "2026-11-23 10:00:00"
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO threads (id, owner, model, system, max_context_tokens, metadata,"
                    " last_seq, total_tokens, created_at, updated_at) VALUES ('old', '',"
                    " 'deepseek-v4-flash', 'sys', 4000, '{}', 4, 0, :now, :now)"
                ),
                {"now": now},
            )
            pk = conn.execute(sa.text("SELECT pk FROM threads")).scalar_one()
            rows = [
                (1, "user", "hi", None, None, None),
                (
                    2,
                    "assistant",
                    None,
                    "plan",
                    '[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]',
                    None,
                ),
                (3, "tool", "42", None, None, "c"),
                (4, "assistant", "done", "wrap up", None, None),
            ]
            for seq, role, content, reasoning, calls, call_id in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO messages (thread_pk, seq, role, content, reasoning_content,"
                        " tool_calls, tool_call_id, pinned, created_at) VALUES (:pk, :seq, :role,"
                        " :content, :reasoning, :calls, :call_id, false, :now)"
                    ),
                    {
                        "pk": pk,
                        "seq": seq,
                        "role": role,
                        "content": content,
                        "reasoning": reasoning,
                        "calls": calls,
                        "call_id": call_id,
                        "now": now,
                    },
                )
            conn.execute(
                sa.text(
                    "INSERT INTO tool_calls (thread_pk, call_seq, call_id, answer_seq)"
                    " VALUES (:pk, 2, 'c', 3)"
                ),
                {"pk": pk},
            )
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    store = contextkit.open(database.url)
    try:
        thread = store.thread("old")
        stored = list(thread.messages())
        assert all(m.token_count and m.token_count > 0 for m in stored)
        assert thread.info().total_tokens == sum(m.token_count for m in stored)
        prompt = thread.prepare(max_tokens=100)
        assert prompt.prompt_tokens == contextkit.count_messages(prompt.to_list())
        assert [m.get("reasoning_content") for m in prompt.to_list()] == [
            None,
            None,
            "plan",
            None,
            "wrap up",
        ]
    finally:
        store.close()
    # and back: rebuilding tables on SQLite must not cascade-delete the messages
    engine = database.engine()
    try:
        migrate.downgrade(engine, "0001")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == 4
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "revision", ["0008", "0007", "0006", "0005", "0004", "0003", "0002", "0001"]
)
def test_data_survives_a_round_trip_through_each_older_revision(
    database: Database, revision: str
) -> None:
    """Data written at head, taken down to an older revision and back up, is unchanged."""
    import base64
    import io

    from PIL import Image

    from contextkit.store.transfer import check

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (9, 99, 199)).save(buf, "PNG")
    image = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    store = contextkit.open(database.url)
    t = store.thread("r", model="deepseek-v4-flash", owner="o", system="s", max_context_tokens=900)
    t.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    )
    for i in range(12):
        t.append({"role": "user", "content": f"question {i} " * 12})
        t.append(
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": f"r{i}",
                "tool_calls": [
                    {
                        "id": f"c{i}",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            }
        )
        t.append({"role": "tool", "tool_call_id": f"c{i}", "content": "ok " * 10})
        t.build(max_tokens=100)
    before = [m.to_openai() for m in t.messages()]
    store.close()
    engine = database.engine()
    try:
        migrate.downgrade(engine, revision)
        assert migrate.current_revision(engine) == revision
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    store = contextkit.open(database.url)
    try:
        thread = store.get_thread("r", owner="o")
        assert [m.to_openai() for m in thread.messages()] == before
        assert check(store) == []
        prompt = thread.prepare(max_tokens=100)
        assert prompt.prompt_tokens + 100 <= 900
        assert prompt.prompt_tokens == contextkit.count_messages(prompt.to_list())
    finally:
        store.close()


def _unique_sets(engine: sa.Engine) -> set[tuple[str, ...]]:
    inspector = sa.inspect(engine)
    found = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("threads")}
    found |= {tuple(i["column_names"]) for i in inspector.get_indexes("threads") if i["unique"]}
    return found


def test_0007_makes_thread_ids_unique_per_owner_and_back(database: Database) -> None:
    """Upgrade keeps existing threads; downgrade restores the store-wide unique id, and
    refuses, changing nothing, while two owners share an id."""
    engine = database.engine()
    try:
        migrate.upgrade(engine, "0006")
        assert ("id",) in _unique_sets(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO threads (id, owner, model, max_context_tokens, metadata,"
                    " last_seq, total_tokens, created_at, updated_at) VALUES ('t', 'alice',"
                    " 'deepseek-v4-flash', 4000, '{}', 0, 0, :now, :now)"
                ),
                {"now": "2026-12-01 10:00:00"},
            )
        migrate.upgrade(engine)
        assert ("id", "owner") in _unique_sets(engine) and ("id",) not in _unique_sets(engine)
    finally:
        engine.dispose()
    store = contextkit.open(database.url)
    try:
        store.get_thread("t", owner="alice").append({"role": "user", "content": "hi"})
        store.thread("t", model="deepseek-v4-flash", owner="bob")
        with pytest.raises(ValidationError, match="exists"):  # still unique per owner
            store.thread("t", model="deepseek-v4-pro", owner="bob")
    finally:
        store.close()
    engine = database.engine()
    try:
        with pytest.raises(RuntimeError, match=r"'t' \(2 owners\)"):
            migrate.downgrade(engine, "0006")
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM threads")).scalar_one() == 2
            assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == 1
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM threads WHERE owner = 'bob'"))
        migrate.downgrade(engine, "0006")
        assert migrate.current_revision(engine) == "0006"
        assert ("id",) in _unique_sets(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == 1
    finally:
        engine.dispose()


def _search_docs(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT thread_pk, seq, summary_n, part, role, body FROM search_docs "
                    "ORDER BY thread_pk, summary_n, seq, part"
                )
            )
        ]


def test_0009_indexes_stored_history_as_appends_do(database: Database) -> None:
    """Upgrading to 0009 indexes what was stored before, word for word as the append path
    does (the revision carries its own copy of the word splitting): real conversations,
    CJK, accents, tool calls, text parts, long messages, summaries, recall results."""
    from contextkit.testing.sharegpt import conversations

    store = contextkit.open(database.url)
    try:
        t = store.thread("h", model="deepseek-v4-flash", owner="o", max_context_tokens=8_000)
        for taken, conv in enumerate(conversations(min_messages=2), 1):
            t.extend(m for m in conv if m["role"] != "system")
            if taken == 40:
                break
        assert t.compact() is not None
        t.extend(
            [
                {"role": "user", "content": "Çà et là: Ångström, naïve, ǅemal, ﬁne, ½, Straße"},
                {"role": "user", "content": "㎏ ① ²³ ｆｕｌｌｗｉｄｔｈ İstanbul ΣΊΣΥΦΟΣ Ꮳ x_y"},
                {
                    "role": "user",
                    "content": "我的订单号是ZX-48213，謝謝。カタカナ ﾊﾝｶｸ 한국어 텍스트",
                },
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a part"}, {"type": "text", "text": "b"}],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "r1",
                            "type": "function",
                            "function": {"name": "recall", "arguments": '{"query": "order"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "r1", "content": "[recall] 1 match\n[#1] order"},
                {"role": "user", "content": " ".join(f"w{i}é" for i in range(33_000))},
                {"role": "assistant", "content": "हिन्दी पाठ और العربية  and ‍emoji 🙂 done"},
                {"role": "user", "content": "a" * 100 + " " + "é" * 80 + " 订" * 70 + "x" * 70},
            ]
        )
        count = t.info().message_count
    finally:
        store.close()
    engine = database.engine()
    try:
        live = _search_docs(engine)
        assert len({(r[0], r[1]) for r in live if r[2] == 0}) == count
        migrate.downgrade(engine, "0008")
        assert "search_docs" not in sa.inspect(engine).get_table_names()
        migrate.upgrade(engine)
        assert _search_docs(engine) == live
    finally:
        engine.dispose()
    store = contextkit.open(database.url)
    try:
        assert [h.seq for h in store.get_thread("h", owner="o").search("订单号 ZX-48213")]
        assert store.check() == []
    finally:
        store.close()


BACKFILL_MESSAGES = int(os.environ.get("CONTEXTKIT_BACKFILL_MESSAGES", "100000"))


def test_upgrading_a_large_database_backfills_the_index(database: Database) -> None:
    """A database of 100,000 messages stored before revision 0009 is searchable after the
    upgrade (indexed in batches), every message found."""
    import random
    import time

    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    rng = random.Random(7)
    store = contextkit.open(database.url)
    try:
        t = store.thread("big", model="deepseek-v4-flash", owner="o")
        for start in range(0, BACKFILL_MESSAGES, 5_000):
            t.extend(
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": " ".join(rng.choices(words, k=30)) + f" marker{i}",
                }
                for i in range(start, min(start + 5_000, BACKFILL_MESSAGES))
            )
    finally:
        store.close()
    engine = database.engine()
    try:
        migrate.downgrade(engine, "0008")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == (
                BACKFILL_MESSAGES
            )
        started = time.perf_counter()
        migrate.upgrade(engine)
        print(
            f"\n{database.kind}: backfilled {BACKFILL_MESSAGES:,} messages in "
            f"{time.perf_counter() - started:.1f} s"
        )
    finally:
        engine.dispose()
    store = contextkit.open(database.url)
    try:
        t = store.get_thread("big", owner="o")
        for i in rng.sample(range(BACKFILL_MESSAGES), 20):
            assert [h.seq for h in t.search(f"marker{i}")] == [i + 1]
        assert store.check() == []
    finally:
        store.close()
