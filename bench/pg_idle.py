"""The load one idle `durably worker` puts on PostgreSQL: queries per second.

    python bench/pg_idle.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
                            [--seconds 60]

Makes a database of its own on the server (so nothing else counts), starts one worker
on it, runs one workflow through it (so its pools and listener are warm), lets it settle,
then counts the transactions the database commits over ``--seconds``
(``pg_stat_database.xact_commit``; every statement durably runs outside a commit is its
own transaction, and the LISTEN connection runs none while it waits). The database is
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from durably import Workflows
from durably.crypto import new_key

MODULE = """
import os
from durably import Workflows

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=False)


@wf.step
async def hello(name: str) -> str:
    return f"hello {name}"


@wf.workflow
async def greet(name: str) -> str:
    return await hello(name)
"""


async def committed(admin: asyncpg.Connection, db: str) -> int:
    """Transactions the database has committed so far."""
    value = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", db
    )
    return int(value or 0)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=12.0)
    a = p.parse_args()
    db = f"durably_idle_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(a.url)
    await admin.execute(f'CREATE DATABASE "{db}"')
    server = a.url.rsplit("/", 1)[0]
    url = f"{server}/{db}"
    folder = Path(tempfile.mkdtemp(prefix="durably-pg-idle-"))
    (folder / "idleflow.py").write_text(MODULE)
    env = {
        **os.environ,
        "DURABLY_WORLD": url,
        "DURABLY_ENCRYPTION_KEY": os.environ.get("DURABLY_ENCRYPTION_KEY") or new_key("idle"),
        "PYTHONPATH": str(folder),
    }
    out = folder / "worker.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "durably", "worker", "idleflow:wf"],
        cwd=folder,
        env=env,
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        while b"serving" not in (out.read_bytes() if out.exists() else b""):
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited: {out.read_text()}")
            await asyncio.sleep(0.05)
        os.environ["DURABLY_ENCRYPTION_KEY"] = env["DURABLY_ENCRYPTION_KEY"]
        wf = Workflows(world=url, worker=False)

        @wf.step
        async def hello(name: str) -> str:
            return f"hello {name}"

        @wf.workflow
        async def greet(name: str) -> str:
            return await hello(name)

        run = await wf.start("greet", "idle")
        print(await run.return_value(timeout=60))
        await wf.aclose()
        await asyncio.sleep(a.settle)  # past the statistics' flush delay
        before = await committed(admin, db)
        t0 = time.monotonic()
        await asyncio.sleep(a.seconds)
        after = await committed(admin, db)
        dt = time.monotonic() - t0
        n = after - before
        print(f"one idle worker: {n} transactions in {dt:.0f} s = {n / dt:.2f} queries/s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
