"""The databases the chaos suite runs on, and the faults it inflicts on them.

Postgres faults (restart, ``pg_terminate_backend``) only ever hit a throwaway cluster that
the suite makes itself (``initdb``/``pg_ctl`` on a free port, as tests/worlds/postgres/support.py
does); the shared server only gets a fresh schema of its own, dropped after. SQLite faults:
another process holding the write lock (``BEGIN IMMEDIATE`` then sleeping), and a full disk
(the database on a small tmpfs that the suite mounts, then fills).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from tests.worlds.postgres.support import Cluster as TestCluster

SHARED_PG = os.environ.get("DURABLY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_BIN = Path(os.environ.get("DURABLY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def new_key() -> str:
    """A fresh encryption key, made by the public ``durably keygen``."""
    done = subprocess.run(
        [sys.executable, "-m", "durably", "keygen"], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode().strip()


def with_schema(base: str) -> str:
    """``base`` with a schema no one uses yet."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema=chaos_{uuid.uuid4().hex[:12]}"


async def drop_schema(url: str) -> None:
    """Drop the schema that ``url`` names, and everything in it."""
    schema = dict(parse_qsl(urlsplit(url).query)).get("schema")
    if not schema:
        return
    conn = await asyncpg.connect(url.split("?", 1)[0], timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def reachable(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or ``None``."""
    try:
        conn = await asyncpg.connect(url.split("?", 1)[0], timeout=5)
        await conn.close()
        return None
    except Exception as e:
        return f"PostgreSQL at {url} is unreachable: {type(e).__name__}: {e}"


class Cluster(TestCluster):
    """The tests' throwaway PostgreSQL cluster (tests/worlds/postgres/support.py), with what
    chaos does to it. Only this cluster is ever restarted or has its connections killed."""

    @staticmethod
    def unavailable() -> str | None:
        """Why no cluster can be made here, or ``None``."""
        return TestCluster.available()

    def create(self) -> None:
        """``initdb`` (trust auth, room for a fleet of workers) and start."""
        self.init("max_connections = 100")
        self.start()

    async def restart_after(self, down: float) -> None:
        """Stop the cluster (fast), stay down ``down`` seconds, start it again."""
        await asyncio.to_thread(self.pg_ctl, "stop", "-m", "fast")
        await asyncio.sleep(down)
        await asyncio.to_thread(self.pg_ctl, "start")

    async def terminate_backends(self) -> int:
        """``pg_terminate_backend`` every other connection; how many were ended."""
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        finally:
            await conn.close()
        return sum(1 for r in rows if r["ok"])


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


async def hold_sqlite_lock(path: Path, seconds: float) -> None:
    """Another process takes SQLite's write lock (``BEGIN IMMEDIATE``) for ``seconds``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(path), str(seconds), stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        await asyncio.wait_for(proc.wait(), timeout=seconds + 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class Tmpfs:
    """A small tmpfs the suite mounts (as root) for a database it can fill up."""

    def __init__(self, size_mb: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="durably-chaos-fs-"))
        self.size_mb = size_mb
        self.mounted = False
        self.filler = self.dir / "filler"

    def mount(self) -> str | None:
        """Mount it; why that failed, or ``None``."""
        if os.geteuid() != 0:
            return "not root: cannot mount a tmpfs to fill"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.dir)],
            capture_output=True,
            timeout=30,
        )
        if done.returncode != 0:
            return f"mount -t tmpfs failed: {done.stderr.decode(errors='replace').strip()}"
        self.mounted = True
        return None

    def fill(self) -> int:
        """Write a filler file until the disk is full; the bytes written."""
        written = 0
        with self.filler.open("ab", buffering=0) as f:
            for block in (1 << 20, 1 << 14, 1 << 10, 1 << 6, 1):
                while True:
                    try:
                        f.write(b"\0" * block)
                        written += block
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def unmount(self) -> None:
        if self.mounted:
            for _ in range(20):
                if subprocess.run(["umount", str(self.dir)], capture_output=True).returncode == 0:
                    self.mounted = False
                    break
                time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)
