"""What every system's bench module shares: sizes, timing, the result line."""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "PG_ADMIN_URL",
    "WORKLOADS",
    "Sizes",
    "at_exit",
    "drop_pg_database",
    "emit",
    "emit_settings",
    "fresh_pg_database",
    "median",
    "pg_setting",
    "rss_kb",
    "run_and_exit",
    "scratch_dir",
    "skip",
]

#: every workload, in the order the modules run them and the runner shows them
WORKLOADS = ["seq", "seq-long", "fanout", "parallel", "start", "payload", "sleepers"]

#: the local PostgreSQL server the postgres worlds use (trust auth); override with
#: BENCH_PG_URL (a URL of a database the benchmark may create other databases from)
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; ``quick`` shrinks them for a CI smoke run."""

    seq: int = 1000
    seq_long: int = 5000
    window: int = 500
    fanout_runs: int = 200
    fanout_steps: int = 10
    parallel: int = 200
    starts: int = 50
    payload_steps: int = 50
    payload_bytes: int = 100 * 1024
    sleepers: int = 10_000

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if not quick:
            return cls()
        return cls(
            seq=100,
            seq_long=400,
            window=50,
            fanout_runs=20,
            fanout_steps=5,
            parallel=20,
            starts=5,
            payload_steps=5,
            sleepers=200,
        )


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def rss_kb() -> int:
    """Resident memory of this process, in KiB (Linux)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def emit(result: dict[str, Any]) -> None:
    """Print one workload's result as a JSON line on stdout (the runner reads it).

    A result may carry ``note`` (shown as a footnote, e.g. a size scaled down for this
    system) or be ``{"workload": ..., "skipped": reason}`` (see :func:`skip`).
    """
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def skip(workload: str, reason: str) -> None:
    """Report a workload this system does not run, and why (shown as "skip")."""
    emit({"workload": workload, "skipped": reason})


def emit_settings(durability: str) -> None:
    """The durability settings as read off the running system (shown under the table)."""
    emit({"workload": "settings", "durability": durability})


def pg_setting(url: str, name: str) -> str:
    """A PostgreSQL server setting (``SHOW name``), or ``?`` if it cannot be read."""
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(f"SHOW {name}").fetchone()
            return str(row[0]) if row else "?"
    except Exception:
        return "?"


def fresh_pg_database(name: str) -> str:
    """Drop and create database ``name`` on the bench server; its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass


_cleanups: list[Callable[[], None]] = []


def scratch_dir(prefix: str) -> str:
    """A fresh temporary directory, removed when :func:`run_and_exit` ends the process."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix=prefix)
    _cleanups.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def at_exit(fn: Callable[[], None]) -> None:
    """Run ``fn`` (best effort) when :func:`run_and_exit` ends the process."""
    _cleanups.append(fn)


def run_and_exit(main: Coroutine[Any, Any, None]) -> NoReturn:
    """Run a peer's benchmark, then leave at once, exit status 0 or 1.

    Once every result is printed, a peer's runs still asleep (and its workers' polling
    loops) would be cancelled one by one and its shutdown would wait on them: nothing of
    that is measured, so the process ends without it.
    """
    import asyncio
    import traceback

    async def run() -> int:
        try:
            await main
            return 0
        except BaseException:
            traceback.print_exc()
            return 1

    async def wrapper() -> None:
        code = await run()
        sys.stdout.flush()
        for fn in reversed(_cleanups):
            try:
                fn()
            except Exception:
                pass
        sys.stderr.flush()
        os._exit(code)

    asyncio.run(wrapper())
    raise AssertionError("unreachable")
