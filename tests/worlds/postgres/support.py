"""What the Postgres tests share: the server under test, fresh schemas, throwaway clusters.

The server is ``$DURABLY_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
the one CI runs). Each test that needs an empty world gets a schema of its own, dropped
after it. When the server is unreachable the Postgres tests are skipped, except under
``CI=true``, where they fail: CI must not pass without having run them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import pytest

from durably.crypto import new_key

T = TypeVar("T")

PG_URL = os.environ.get("DURABLY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_BIN = Path(os.environ.get("DURABLY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: One key for every Postgres test (a postgres world has no default key).
TEST_KEY = new_key("pgtest")

_reachable: list[str | None] = []


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a loop of its own, from sync code (fixtures)."""
    out: list[T] = []
    err: list[BaseException] = []

    def main() -> None:
        try:
            out.append(asyncio.run(make()))  # type: ignore[arg-type]
        except BaseException as e:
            err.append(e)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if err:
        raise err[0]
    return out[0]


def unreachable_reason() -> str | None:
    """Why the server under test cannot be used, or ``None`` (checked once)."""
    if not _reachable:

        async def probe() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.close()

        try:
            run_sync(probe)
            _reachable.append(None)
        except Exception as e:
            _reachable.append(f"PostgreSQL at {PG_URL} is unreachable: {type(e).__name__}: {e}")
    return _reachable[0]


def require_postgres() -> None:
    """Skip the test (or, under ``CI=true``, fail it) when the server is unreachable."""
    reason = unreachable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}: CI must run the Postgres tests", pytrace=False)
    pytest.skip(f"{reason} (set $DURABLY_TEST_POSTGRES to run the Postgres tests)")


def fresh_url(base: str = PG_URL) -> str:
    """A URL of ``base`` with a schema no one uses yet."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema=t_{uuid.uuid4().hex[:12]}"


def drop_schema(url: str) -> None:
    """Drop the schema a :func:`fresh_url` names (and everything in it)."""
    parts = urlsplit(url)
    schema = dict(parse_qsl(parts.query)).get("schema")
    if not schema:
        return
    dsn = url.split("?", 1)[0]

    async def drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            quoted = '"' + schema.replace('"', '""') + '"'
            await conn.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
        finally:
            await conn.close()

    run_sync(drop)


def _postgres_user() -> tuple[int, int] | None:
    """(uid, gid) of the ``postgres`` user, if there is one."""
    try:
        import pwd

        entry = pwd.getpwnam("postgres")
    except (ImportError, KeyError):
        return None
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder (``initdb``, ``pg_ctl``);
    run as the ``postgres`` user when the tests run as root."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: as root, the postgres user could not reach it.
        self.root = Path(tempfile.mkdtemp(prefix="durably-pg-"))
        self.data = self.root / "pgdata"
        self.sockets = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    @property
    def url(self) -> str:
        """The URL of the cluster's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> str | None:
        """Why no cluster can be made here, or ``None``."""
        if not (PG_BIN / "initdb").exists():
            return f"no PostgreSQL binaries in {PG_BIN} (set $DURABLY_TEST_PG_BIN)"
        if os.geteuid() == 0 and (_postgres_user() is None or shutil.which("setpriv") is None):
            return "PostgreSQL refuses to run as root, and there is no 'postgres' user to use"
        return None

    def _run(self, *argv: str) -> None:
        """Run a PostgreSQL binary, as the ``postgres`` user when we are root."""
        cmd = list(argv)
        user = _postgres_user() if os.geteuid() == 0 else None
        if user is not None:
            uid, gid = user
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]
        done = subprocess.run(cmd, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')}{done.stdout.decode(errors='replace')}"
            )

    def init(self, *settings: str) -> None:
        """``initdb`` with trust auth; extra ``postgresql.conf`` lines."""
        self.sockets.mkdir(parents=True, exist_ok=True)
        user = _postgres_user() if os.geteuid() == 0 else None
        if user is not None:
            for path in (self.root, self.sockets):
                os.chown(path, *user)
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        conf = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.sockets}'",
            "fsync = off",
            "shared_buffers = 32MB",
            "max_connections = 60",
            *settings,
        ]
        with (self.data / "postgresql.conf").open("a") as f:
            f.write("\n".join(conf) + "\n")

    def pg_ctl(self, *args: str) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", *args)

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        """Stop the cluster (if running) and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_ready(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ok = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"the cluster on port {self.port} never became ready")
