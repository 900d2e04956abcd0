"""The shipped conformance suite runs as a third party runs it: from another folder (no
project settings: pytest-asyncio's strict mode), as `pytest --pyargs
durably.testing.conformance --world URL`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )


#: Every module the suite ships, each with tests that must run under ``--world``.
MODULES = (
    "test_conformance",
    "test_due_by_conformance",
    "test_flow_conformance",
    "test_leases_conformance",
    "test_locks_conformance",
    "test_prune_conformance",
    "test_queue_conformance",
    "test_stream_attempts_conformance",
    "test_stream_closer_conformance",
    "test_waiting_conformance",
)


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/w.db", "memory://"])
def test_the_suite_runs_against_a_world_url(tmp_path: Path, url: str) -> None:
    out = pytest_in(tmp_path, "--pyargs", "durably.testing.conformance", "--world", url, "-rA")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tail = out.stdout.strip().splitlines()[-1]
    assert " passed" in tail and "skipped" not in tail and "failed" not in tail, tail
    assert int(tail.split()[0]) >= 88, tail
    passed = [line for line in out.stdout.splitlines() if line.startswith("PASSED ")]
    for module in MODULES:
        assert any(f"{module}.py::" in line for line in passed), module
    # The race of two world objects on one store ran, from the URL alone.
    assert any("racing_for_one_permit" in line for line in passed)


def test_the_suite_wants_a_world(tmp_path: Path) -> None:
    out = pytest_in(tmp_path, "--pyargs", "durably.testing.conformance")
    assert out.returncode == 4, out.stdout + out.stderr  # pytest's usage error
    assert "needs the world to test" in out.stderr
