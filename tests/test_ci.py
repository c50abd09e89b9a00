"""Under CI=true a test that would skip fails instead (conftest's hooks): a missing optional
test dependency or server cannot let CI go green without running what needs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SKIPPING = """
import pytest

missing = pytest.importorskip("contextkit_no_such_module")


def test_never_runs():
    pass
"""
SKIPPED_INSIDE = """
import pytest


def test_needs_a_server():
    pytest.skip("no server configured")


def test_runs():
    pass
"""


def _run(tmp_path: Path, ci: str | None, *files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *files],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_optional.py").write_text(SKIPPING)
    (tmp_path / "test_server.py").write_text(SKIPPED_INSIDE)
    return tmp_path


def test_skips_are_skips_outside_ci(suite: Path) -> None:
    out = _run(suite, None)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 2 skipped" in out.stdout


def test_under_ci_a_skipped_test_fails(suite: Path) -> None:
    out = _run(suite, "true", "test_server.py")
    assert out.returncode == 1, out.stdout
    assert "skipped under CI=true" in out.stdout and "no server configured" in out.stdout
    assert "1 failed, 1 passed" in out.stdout


def test_under_ci_a_missing_optional_dependency_fails(suite: Path) -> None:
    out = _run(suite, "true", "test_optional.py")
    assert out.returncode != 0, out.stdout
    assert "skipped under CI=true" in out.stdout and "contextkit_no_such_module" in out.stdout
    assert "1 error" in out.stdout
