"""Several processes appending to one thread never produce duplicate or missing seqs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Database

import contextkit

WORKER = """
import sys, time, pathlib
import contextkit
url, thread_id, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
store = contextkit.open(url)
t = store.thread(thread_id, model="deepseek-v4-flash", owner="load")
while not go.exists():
    time.sleep(0.005)
for i in range(n):
    t.append({"role": "user", "content": f"{sys.argv[5]}-{i}"})
"""


def run_writers(url: str, threads: list[str], per_process: int, tmp_path: Path) -> float:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, tid, str(per_process), str(go), f"w{i}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, tid in enumerate(threads)
    ]
    time.sleep(1.0)  # let every worker open the store and wait at the start line
    start = time.perf_counter()
    go.touch()
    errors = [p.communicate(timeout=600)[1] for p in procs]
    elapsed = time.perf_counter() - start
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err
    return elapsed


def test_four_processes_one_thread(database: Database, tmp_path: Path) -> None:
    contextkit.open(database.url).close()  # migrate once up front
    run_writers(database.url, ["hot"] * 4, 500, tmp_path)
    engine = database.engine()
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(sa.text("SELECT seq FROM messages ORDER BY seq"))]
        contents = conn.execute(sa.text("SELECT count(DISTINCT content) FROM messages")).scalar()
        last_seq = conn.execute(sa.text("SELECT last_seq FROM threads")).scalar()
    engine.dispose()
    assert seqs == list(range(1, 2001))
    assert contents == 2000
    assert last_seq == 2000


@pytest.mark.parametrize("layout", ["one-thread", "eight-threads"])
def test_eight_processes_thousand_appends(database: Database, tmp_path: Path, layout: str) -> None:
    contextkit.open(database.url).close()
    threads = ["hot"] * 8 if layout == "one-thread" else [f"t{i}" for i in range(8)]
    elapsed = run_writers(database.url, threads, 1000, tmp_path)
    print(f"\n{database.kind} {layout}: 8,000 appends in {elapsed:.2f}s = {8000 / elapsed:,.0f}/s")
    engine = database.engine()
    with engine.connect() as conn:
        per_thread = conn.execute(
            sa.text(
                "SELECT t.id, t.last_seq, count(*), min(m.seq), max(m.seq) FROM threads t "
                "JOIN messages m ON m.thread_pk = t.pk GROUP BY t.id, t.last_seq"
            )
        ).all()
    engine.dispose()
    expected = 8000 if layout == "one-thread" else 1000
    assert len(per_thread) == (1 if layout == "one-thread" else 8)
    for _, last_seq, count, low, high in per_thread:
        assert (last_seq, count, low, high) == (expected, expected, 1, expected)
    store = contextkit.open(database.url)
    from contextkit.store.transfer import check

    assert check(store) == []
    store.close()


def test_concurrent_first_open_of_a_new_database(database: Database, tmp_path: Path) -> None:
    """Four processes opening (and so migrating) a brand-new database at the same moment."""
    run_writers(database.url, [f"t{i}" for i in range(4)], 5, tmp_path)
    store = contextkit.open(database.url)
    assert sorted(len(t) for t in store.threads(owner="load")) == [5, 5, 5, 5]
    store.close()
