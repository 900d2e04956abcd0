"""SQLite faults: a full disk and a write lock held by another process.

The disk is a real one that fills up: a small tmpfs this test mounts (it runs as root in
the sandbox and in CI). Where mounting is not allowed, SQLite's own size limit
(``PRAGMA max_page_count`` on the world's writer) produces the same SQLITE_FULL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durably import Workflows, start
from durably.errors import WorldError, WorldFullError, WorldUnavailableError
from durably.events import EventType as E
from durably.events import NewEvent
from durably.worker import outage
from durably.worlds.base import Commit, RunMeta, RunWrite
from durably.worlds.sqlite import SqliteWorld

#: Bigger than anything left on the disk once it is full, smaller than the disk.
BIG = 300_000


class SmallDisk:
    """A folder on a small file system that the test fills up and frees again."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.ballast = self.dir / "ballast"
        self.mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(self.dir)],
                capture_output=True,
            ).returncode
            == 0
        )
        self._limited: list[Any] = []

    def fill(self, world: Any) -> None:
        """Leave no room for another write of ``world`` (a SqliteWorld)."""
        if self.mounted:
            with open(self.ballast, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            return
        writer = world.db.live()[0]
        pages = writer.execute("PRAGMA page_count").fetchall()[0][0]
        writer.execute(f"PRAGMA max_page_count={pages}")
        self._limited.append(writer)

    def free(self) -> None:
        if self.mounted:
            self.ballast.unlink()
        for writer in self._limited:
            writer.execute("PRAGMA max_page_count=4294967294")

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.dir)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    d = SmallDisk(tmp_path)
    try:
        yield d
    finally:
        d.unmount()


def _inner(wf: Workflows) -> SqliteWorld:
    world = wf._world
    assert world is not None
    inner = world.inner  # type: ignore[attr-defined]
    assert isinstance(inner, SqliteWorld)
    return inner


def _count_failed_commits(world: SqliteWorld) -> list[BaseException]:
    """Wrap the world's commit to collect the errors of failed ones."""
    failed: list[BaseException] = []
    commit = world.commit

    async def counting(c: Commit) -> Any:
        try:
            return await commit(c)
        except WorldError as e:
            failed.append(e)
            raise

    world.commit = counting  # type: ignore[method-assign]
    return failed


async def _until(cond: Any, *, give_up: Any) -> None:
    """Wait until ``cond()`` holds; stop early (the caller's asserts then fail) when
    ``give_up()`` holds."""
    for _ in range(2400):
        if cond() or give_up():
            return
        await asyncio.sleep(0.05)


def _crashes(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or "crashed" in r.getMessage()]


async def test_a_full_disk_is_a_world_full_error_and_nothing_is_written(
    disk: SmallDisk,
) -> None:
    world = SqliteWorld(f"sqlite:///{disk.dir / 'w.db'}")
    await world.open()
    try:
        meta = RunMeta("wf", "ns", "dep")
        await world.commit(Commit([RunWrite("r1", create=meta, facts=[NewEvent(E.RUN_CREATED)])]))
        disk.fill(world)
        big = NewEvent(E.RUN_CREATED, None, {}, os.urandom(BIG))
        with pytest.raises(WorldFullError) as full:
            await world.commit(Commit([RunWrite("r2", create=meta, facts=[big])]))
        msg = str(full.value)
        assert str(disk.dir / "w.db") in msg and "disk full" in msg and "Free space" in msg
        assert await world.get_run("r2") is None  # nothing of it was stored
        disk.free()
        await world.commit(Commit([RunWrite("r2", create=meta, facts=[big])]))
        assert await world.get_run("r2") is not None
    finally:
        await world.close()


async def test_the_worker_rides_out_a_full_disk_and_goes_on_once_there_is_room(
    disk: SmallDisk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A lease far longer than the test: the run can only finish by the retried commit,
    # not by another turn after the lease expired.
    monkeypatch.setenv("DURABLY_LEASE_SECONDS", "600")
    monkeypatch.setattr(outage, "RETRY_MAX", 0.1)
    caplog.set_level(logging.WARNING, logger="durably")
    wf = Workflows(world=f"sqlite:///{disk.dir / 'w.db'}")
    filled = asyncio.Event()

    @wf.step
    async def big() -> str:
        disk.fill(_inner(wf))
        filled.set()
        return "y" * BIG  # its completion cannot be recorded until there is room

    @wf.workflow
    async def job(pad: str) -> int:
        return len(await big()) + len(pad)

    try:
        await wf.open()
        failed = _count_failed_commits(_inner(wf))
        run = await start(job, "")
        await asyncio.wait_for(filled.wait(), 60)
        # Far more attempts than the worker used to make before giving up (6).
        await _until(lambda: len(failed) >= 12, give_up=lambda: _crashes(caplog))
        assert not _crashes(caplog), "the worker logged a crash"
        assert len(failed) >= 12 and all(isinstance(e, WorldFullError) for e in failed)
        assert await run.status() == "running"

        # start() says what is full, as a WorldError (not a raw sqlite3 error).
        with pytest.raises(WorldFullError, match="disk full") as full:
            await start(job, "p" * BIG)
        assert isinstance(full.value, WorldUnavailableError)
        assert str(disk.dir / "w.db") in str(full.value)

        disk.free()
        assert await run.return_value(timeout=60) == BIG
    finally:
        await wf.aclose()
    assert not _crashes(caplog)
    # The outage was logged, but not once per attempt.
    noise = [r for r in caplog.records if r.name.startswith("durably.worker")]
    assert 1 <= len(noise) <= 8 < len(failed)


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time, os
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
    conn.execute("ROLLBACK")
    """
)


async def test_the_worker_rides_out_a_write_lock_held_by_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DURABLY_LEASE_SECONDS", "600")
    monkeypatch.setattr(outage, "RETRY_MAX", 0.1)
    caplog.set_level(logging.WARNING, logger="durably")
    db = tmp_path / "w.db"
    release = tmp_path / f"release-{uuid.uuid4().hex}"
    wf = Workflows(world=f"sqlite:///{db}?busy_timeout_ms=50")
    lockers: list[subprocess.Popen[str]] = []

    @wf.step
    async def lock_it() -> str:
        # Another process takes the write lock and sleeps holding it.
        p = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db), str(release)],
            stdout=subprocess.PIPE,
            text=True,
        )
        lockers.append(p)
        assert p.stdout is not None
        assert await asyncio.to_thread(p.stdout.readline) == "locked\n"
        return "done"

    @wf.workflow
    async def job() -> str:
        return await lock_it()

    try:
        await wf.open()
        failed = _count_failed_commits(_inner(wf))
        run = await start(job)
        await _until(lambda: len(failed) >= 12, give_up=lambda: _crashes(caplog))
        assert not _crashes(caplog), "the worker logged a crash"
        assert len(failed) >= 12 and all(type(e) is WorldUnavailableError for e in failed)
        assert "busy_timeout_ms=50" in str(failed[0])
        release.touch()
        assert await run.return_value(timeout=60) == "done"
    finally:
        release.touch()
        for p in lockers:
            p.wait(timeout=30)
        await wf.aclose()
    assert not _crashes(caplog)
