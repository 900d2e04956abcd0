"""The shipped conformance suite runs as a third party runs it: from another folder (no
project settings: pytest-asyncio's strict mode), as `pytest --pyargs
durably.testing.conformance --world URL`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_suite_runs_against_a_world_url(tmp_path: Path) -> None:
    out = pytest_in(
        tmp_path, "--pyargs", "durably.testing.conformance", "--world", "sqlite:///{tmp}/w.db"
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tail = out.stdout.strip().splitlines()[-1]
    assert " passed" in tail and "skipped" not in tail and "failed" not in tail, tail
    assert int(tail.split()[0]) >= 60, tail


def test_the_suite_wants_a_world(tmp_path: Path) -> None:
    out = pytest_in(tmp_path, "--pyargs", "durably.testing.conformance")
    assert out.returncode == 4, out.stdout + out.stderr  # pytest's usage error
    assert "needs the world to test" in out.stderr
