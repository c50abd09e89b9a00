"""langchain-core's own chat-history tests, run against `ContextKitChatMessageHistory`, with
`blockbuster` on.

At test time this downloads the sdist of the installed langchain-core (`pip download
--no-deps --no-binary :all: langchain-core==<version>`; nothing of it is kept in the repo),
extracts its chat-history tests (`tests/unit_tests/chat_history/test_chat_history.py`, at
`tests/unit_tests/test_chat_history.py` in older releases, and
`tests/unit_tests/runnables/test_history.py`) with the helper modules they import from
langchain-core's `tests` package and the conftest of their folders, installs
`tests/langchain_peer/peer_conftest.py` as their `tests/unit_tests/conftest.py`, and runs
them with pytest in a subprocess. That conftest swaps the `InMemoryChatMessageHistory` the
tests use for the adapter on a fresh SQLite file per test (on the sync store in sync tests,
on the async store in coroutine tests, so `ainvoke`/`astream` go through `aget_messages` and
`aadd_messages`) and turns blockbuster on for every module; `peer_harness.py` runs beside
them and checks the harness itself. The outcome of every test is checked from pytest's JUnit
report, and what each test did with the adapter from the conftest's report. Under `CI=true`
a failed download fails this test; elsewhere it skips.

Measured with langchain-core 1.8.3: of the 29 tests of those two files, 2 are deselected,
26 pass and 1 fails as expected (below), with blockbuster on and with it off alike
(`CONTEXTKIT_PEER_BLOCKBUSTER=off` turns it off, to compare); 20 of the 26 use the adapter,
8 of them coroutine tests on the async store. (Checked by hand: with a sync store read put
in the async-backed `aget_messages`, blockbuster fails all 9 coroutine tests that use it.)

Excluded (deselected):

- `test_chat_history_deprecated` (both parameters): checks that LangChain's
  `BaseChatMessageHistory` and `InMemoryChatMessageHistory` docstrings say "deprecated" and
  link LangChain's short-term-memory page: the deprecated interface's own docstrings, with
  nothing of the adapter in it.

Expected to fail (run, and must fail with `contextkit.AsyncOnlyError`, else this test fails):

- `test_in_memory_history_initialization`: its awaited reads and writes pass on the
  adapter, then it reads `history.messages`, the in-memory class's plain field, synchronously
  inside the coroutine. On the async store that read would block the event loop, so the
  adapter refuses it with `AsyncOnlyError` (as LangChain's `SQLChatMessageHistory` refuses
  sync calls on an async engine): an in-memory-only assumption.

Run, pass, but make no history, so they say nothing about the adapter:
`test_add_message_implementation_only`, `test_bulk_message_implementation_only` and
`test_async_interface` (LangChain's base-class defaults, through their own in-memory
subclasses), `test_get_input_schema_input_dict`, `test_get_input_schema_input_messages` and
`test_get_output_schema` (`RunnableWithMessageHistory`'s schemas).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from conftest import IN_CI

VERSION = importlib.metadata.version("langchain-core")
HERE = Path(__file__).parent / "langchain_peer"

PEER_TESTS = [
    ("tests/unit_tests/chat_history/test_chat_history.py", "tests/unit_tests/test_chat_history.py"),
    ("tests/unit_tests/runnables/test_history.py",),
]
"""The test files, each with the places it has had in langchain-core's sdists."""

DESELECT = {"test_chat_history_deprecated"}
REFUSED = {"test_in_memory_history_initialization"}
NO_HISTORY = {
    "test_add_message_implementation_only",
    "test_bulk_message_implementation_only",
    "test_async_interface",
    "test_get_input_schema_input_dict",
    "test_get_input_schema_input_messages",
    "test_get_output_schema",
}
"""Peer tests that run and pass but never make a history (see the module docstring)."""
STORES_NOTHING = {"test_get_output_messages_with_value_error"}
"""A peer test whose runs fail (as it checks) before the history stores anything."""

PYTEST_INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
markers =
    requires: the test needs these packages
filterwarnings =
    ignore::langchain_core._api.beta_decorator.LangChainBetaWarning
"""


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The langchain-core sdist of the installed version, downloaded now."""
    where = tmp_path_factory.mktemp("sdist")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"langchain-core=={VERSION}",
        "-d",
        str(where),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        failure = done.stderr.strip()[-2_000:] if done.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        failure = str(exc)
    archives = sorted(where.glob("langchain_core-*.tar.gz"))
    if failure or not archives:
        reason = f"could not download the langchain-core {VERSION} sdist: {failure or 'no file'}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return archives[0]


def extract(archive: Path, root: Path) -> list[str]:
    """Extract the peer tests, what they import from the `tests` package, and the conftest of
    their folders below `tests/unit_tests`; returns the test files' paths (relative)."""
    with tarfile.open(archive) as tar:
        files: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if member.isfile() and len(parts) > 2 and ".." not in parts and parts[1] == "tests":
                files["/".join(parts[1:])] = member
        tests = []
        for places in PEER_TESTS:
            found = [p for p in places if p in files]
            assert found, f"langchain-core {VERSION} has none of {places}"
            tests.append(found[0])
        wanted, todo = set(), list(tests)
        while todo:
            path = todo.pop()
            if path in wanted:
                continue
            wanted.add(path)
            folder = PurePosixPath(path).parent
            while folder.parts:  # the packages above it, and the conftest of its folder
                todo += [p for p in (f"{folder}/__init__.py",) if p in files]
                if len(folder.parts) > 2:
                    todo += [p for p in (f"{folder}/conftest.py",) if p in files]
                folder = folder.parent
            source = tar.extractfile(files[path])
            assert source is not None
            text = source.read()
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(text)
            todo += [p for p in _imported_files(text) if p in files]
    return tests


def _imported_files(source: bytes) -> list[str]:
    """The files a module may import from the `tests` package (helpers such as fakes)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            assert node.module is not None
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.startswith("tests.")]
    paths = []
    for name in names:
        base = name.replace(".", "/")
        paths += [f"{base}.py", f"{base}/__init__.py"]
    return paths


def run_peer_suite(sdist: Path, root: Path, *, blockbuster: bool) -> dict[str, Any]:
    """Run the extracted tests on the adapter; their outcomes and what they did with it."""
    tests = extract(sdist, root)
    shutil.copy(HERE / "peer_conftest.py", root / "tests/unit_tests/conftest.py")
    shutil.copy(HERE / "peer_harness.py", root / "tests/unit_tests/test_contextkit_harness.py")
    (root / "pytest.ini").write_text(PYTEST_INI)
    report, junit, plan = root / "report.json", root / "junit.xml", root / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "blockbuster": blockbuster,
                "deselect": sorted(DESELECT),
                "refused": sorted(REFUSED),
                "report": str(report),
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["CONTEXTKIT_PEER_PLAN"] = str(plan)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(root / "pytest.ini"),
        "--rootdir",
        str(root),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        f"--junitxml={junit}",
        *tests,
        "tests/unit_tests/test_contextkit_harness.py",
    ]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1_200)
    print(done.stdout[-6_000:], done.stderr[-3_000:])
    assert junit.exists(), f"pytest wrote no report (exit {done.returncode})"
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = child.get("type") or ""
                outcome = "xfailed" if kind == "pytest.xfail" else child.tag
                detail = f"{child.get('message') or ''} {child.text or ''}"
        outcomes[name] = (outcome, detail)
    return {
        "outcomes": outcomes,
        "adapter": json.loads(report.read_text()),
        "exit": done.returncode,
    }


def _function(name: str) -> str:
    """`module::test_name[param]` -> `test_name`."""
    return name.rpartition("::")[2].partition("[")[0]


def test_langchain_core_chat_history_tests_pass_on_the_adapter(sdist: Path, tmp_path: Path) -> None:
    blockbuster = os.environ.get("CONTEXTKIT_PEER_BLOCKBUSTER", "on") != "off"
    result = run_peer_suite(sdist, tmp_path, blockbuster=blockbuster)
    outcomes, adapter = result["outcomes"], result["adapter"]
    by_outcome: dict[str, list[str]] = {}
    for name, (outcome, _) in sorted(outcomes.items()):
        by_outcome.setdefault(outcome, []).append(name)
    print(
        f"langchain-core {VERSION}, blockbuster {'on' if blockbuster else 'off'}: "
        + ", ".join(f"{len(v)} {k}" for k, v in sorted(by_outcome.items()))
        + f", {len(adapter['deselected'])} deselected"
    )
    expected_skips = set() if blockbuster else {"test_blockbuster_is_on_in_coroutine_tests"}
    wrong = {
        name: detail[:2_000]
        for name, (outcome, detail) in outcomes.items()
        if outcome != "passed"
        and not (outcome == "xfailed" and _function(name) in REFUSED)
        and not (outcome == "skipped" and _function(name) in expected_skips)
    }
    assert not wrong, wrong
    assert result["exit"] == 0
    # every refused test ran and failed as it must (strict xfail: AsyncOnlyError, nothing else)
    assert {_function(n) for n in by_outcome.get("xfailed", [])} == REFUSED
    assert {_function(n) for n in adapter["deselected"]} == DESELECT
    peer = {n: r for n, r in adapter["tests"].items() if "test_contextkit_harness" not in n}
    for places in PEER_TESTS:  # both files were collected and ran
        assert any(n.split("::")[0] in places for n in peer), places
    assert len(peer) >= 25, sorted(peer)
    for name, record in peer.items():
        made = record["sync"] + record["async"]
        if _function(name) in NO_HISTORY:
            assert made == 0, name  # the docstring's list is still true
            continue
        assert made > 0, f"{name} never used the adapter"
        # a coroutine test's histories are all on the async store, a sync test's on the sync one
        assert record["sync" if record["coroutine"] else "async"] == 0, (name, record)
        if _function(name) not in STORES_NOTHING:
            assert record["messages"] > 0, f"{name} stored nothing"
    assert sum(r["coroutine"] for r in peer.values()) >= 10  # the async tests ran, on the adapter
