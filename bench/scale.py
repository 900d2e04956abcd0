"""Latency as a world fills up: ended and pending runs seeded straight into the tables.

    python bench/scale.py                          # 10k, 100k, 1M on SQLite and Postgres
    python bench/scale.py --sizes 1000,10000       # the quick version (make bench-quick)
    python bench/scale.py --worlds sqlite --sizes 1000000

For each size N, a fresh world gets N runs seeded by SQL (no workflow runs them): 90%
ended (completed, with 1 in 100 failed), 10% pending (a turn due, as runs that were
started and wait for a worker), spread over 4 workflows and 2 namespaces, created over
the last 30 days. Then, medians of repeated calls through the public world API:

* ``start``: ``Workflows.start()`` of a new run (``worker=False``: recorded only);
* ``claim``: one ``World.claim`` of a run turn among the pending (each leases one);
* ``inspect``: ``list_runs`` as ``durably inspect runs`` makes it: the newest 50; filtered
  by status (``failed``: 1% of the runs) and by workflow; and the page at offset 1,000;
* ``dashboard``: the runs page's queries (a page of 50, and the 500 newest runs it reads
  for its filter choices).

Prints ms per call and, per figure, the ratio to the smallest size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from durably import Workflows
from durably.worlds.base import RunFilter

PG = os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
WORKFLOWS = ["ingest", "report", "billing", "sync"]
NAMESPACES = ["default", "tenant-b"]
DAY = 86400.0


def seeded_row(i: int, n: int, now: float) -> tuple[Any, ...]:
    """Run ``i`` of ``n``: (run_id, workflow, namespace, status, created, completed,
    turn_due_at, last_seq)."""
    created = now - 30 * DAY * (1 - i / n)
    wf = WORKFLOWS[i % len(WORKFLOWS)]
    ns = NAMESPACES[(i // 7) % len(NAMESPACES)]
    if i % 10 == 9:  # pending: a turn due now
        return (f"run_seed{i:09d}", wf, ns, "pending", created, None, created, 1)
    status = "failed" if i % 100 == 3 else "completed"
    return (f"run_seed{i:09d}", wf, ns, status, created, created + 1.0, None, 12)


def seed_sqlite(path: Path, n: int) -> None:
    """Insert ``n`` runs into a migrated SQLite world file."""
    db = sqlite3.connect(path)
    now = time.time()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO runs (run_id, workflow_name, namespace, deployment, status, created_at,"
        " completed_at, turn_due_at, last_seq, started_at, decided_seq, turn_seq)"
        " VALUES (?, ?, ?, 'default', ?, ?, ?, ?, ?, ?, 1, 0)",
        ((*seeded_row(i, n, now), now - 30 * DAY) for i in range(n)),
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


async def seed_postgres(url: str, schema: str, n: int) -> None:
    """Insert ``n`` runs into a migrated Postgres world schema, in one statement."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        now = time.time()
        await conn.execute(
            f"""
            INSERT INTO "{schema}".runs (run_id, workflow_name, namespace, deployment, status,
                created_at, completed_at, turn_due_at, last_seq, started_at, decided_seq)
            SELECT 'run_seed' || lpad(i::text, 9, '0'),
                   (ARRAY{WORKFLOWS!r})[1 + i % 4],
                   (ARRAY{NAMESPACES!r})[1 + (i / 7) % 2],
                   'default',
                   CASE WHEN i % 10 = 9 THEN 'pending'
                        WHEN i % 100 = 3 THEN 'failed' ELSE 'completed' END,
                   c,
                   CASE WHEN i % 10 = 9 THEN NULL ELSE c + 1 END,
                   CASE WHEN i % 10 = 9 THEN c END,
                   CASE WHEN i % 10 = 9 THEN 1 ELSE 12 END,
                   $2::float8 - 30 * 86400, 1
            FROM generate_series(0, $1::int - 1) AS i,
                 LATERAL (SELECT $2::float8 - 30 * 86400 * (1 - i::float8 / $1)) AS t(c)
            """,
            n,
            now,
        )
        await conn.execute(f'ANALYZE "{schema}".runs')
    finally:
        await conn.close()


def registry(url: str) -> Workflows:
    """A starter (no worker) with the seeded workflows' names."""
    wf = Workflows(world=url, worker=False)

    @wf.workflow
    async def ingest(x: int) -> int:
        return x

    return wf


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median ms of ``repeat`` calls (after one warm-up)."""
    await fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


async def measure(url: str, repeat: int) -> dict[str, float]:
    """The figures of one seeded world."""
    wf = registry(url)
    world = await wf.open()
    figures: dict[str, float] = {}
    try:
        figures["start"] = await timed(lambda: wf.start("ingest", 1), repeat)
        owner = f"bench-{uuid.uuid4().hex[:6]}"

        async def claim_one() -> None:
            got = await world.claim(
                owner=owner,
                namespace="default",
                deployment="default",
                max_runs=1,
                max_tasks=0,
                lease_seconds=600,
            )
            assert got.runs, "no pending run to claim"

        figures["claim"] = await timed(claim_one, repeat)
        for name, flt in [
            ("inspect newest 50", RunFilter(limit=50)),
            ("inspect failed 50", RunFilter(status="failed", limit=50)),
            ("inspect workflow 50", RunFilter(workflow_name="billing", limit=50)),
            ("inspect page @1000", RunFilter(limit=50, offset=1000)),
        ]:
            figures[name] = await timed(lambda f=flt: world.list_runs(f), repeat)  # type: ignore[misc]

        async def dashboard() -> None:
            await world.list_runs(RunFilter(limit=51))
            await world.list_runs(RunFilter(limit=500))

        figures["dashboard runs page"] = await timed(dashboard, repeat)
    finally:
        await wf.aclose()
    return figures


async def one(world: str, n: int, repeat: int) -> dict[str, float]:
    """Seed a fresh world of ``n`` runs and measure it."""
    if world == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="durably-scale-"))
        url = f"sqlite:///{folder / 's.db'}"
        wf = registry(url)
        await wf.open()  # creates and migrates the file
        await wf.aclose()
        seed_sqlite(folder / "s.db", n)
        return await measure(url, repeat)
    schema = f"scale_{uuid.uuid4().hex[:8]}"
    url = f"{PG}?schema={schema}"
    wf = registry(url)
    await wf.open()
    await wf.aclose()
    try:
        await seed_postgres(PG, schema, n)
        return await measure(url, repeat)
    finally:
        import asyncpg

        conn = await asyncpg.connect(PG)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def main() -> None:
    """Parse the options; seed and measure each world at each size; print a table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--worlds", default="sqlite,postgres")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--repeat", type=int, default=20)
    a = p.parse_args()
    if "postgres" in a.worlds:
        from durably.crypto import new_key

        os.environ.setdefault("DURABLY_ENCRYPTION_KEY", new_key("bench"))
    sizes = [int(x) for x in a.sizes.split(",")]
    for world in a.worlds.split(","):
        table: dict[int, dict[str, float]] = {}
        for n in sizes:
            t = time.perf_counter()
            table[n] = await one(world, n, a.repeat)
            print(f"  {world} {n:,}: {time.perf_counter() - t:.0f}s", file=sys.stderr)
        print(f"\n{world}: ms per call (median of {a.repeat}); x = ratio to {sizes[0]:,} runs")
        print(f"{'':24}" + "".join(f"{n:>18,}" for n in sizes))
        for key in table[sizes[0]]:
            cells = []
            for n in sizes:
                v, v0 = table[n][key], table[sizes[0]][key]
                cells.append(f"{v:9.2f} ({v / v0:4.1f}x)")
            print(f"{key:24}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    asyncio.run(main())
