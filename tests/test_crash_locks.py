"""Locks with real processes: a `durably worker` SIGKILLed while its run holds a permit
(the run keeps it, resumes on another worker, and nobody else gets it meanwhile), and
two worker processes racing for one permit (never both inside). On SQLite and Postgres.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_crash import Env
from tests.worlds.postgres import support as pg

MODULE = """
import asyncio, os
import durably
from durably import Workflows

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=False)
LOG = os.environ["CRASH_LOG"]
BLOCK = os.environ["CRASH_BLOCK"]


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\\n")


@wf.step(retry_after=0.05)
async def touch(account: str, i: int) -> int:
    note(f"in {i}")
    if i == 0 and os.path.exists(BLOCK):
        await asyncio.sleep(3600)  # hangs here, holding the lock, until the kill
    await asyncio.sleep(0.02)
    note(f"out {i}")
    return i


@wf.workflow
async def pay(account: str, i: int) -> int:
    async with durably.lock(f"account:{account}"):
        return await touch(account, i)


@wf.workflow(concurrency=1)
async def single(i: int) -> int:
    return await touch("single", i)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    (tmp_path / "crashmod.py").write_text(MODULE)
    if request.param == "postgres":
        pg.require_postgres()
        url = pg.fresh_url()
        request.addfinalizer(lambda: pg.drop_schema(url))
        e.env["DURABLY_WORLD"] = url
        e.env["DURABLY_ENCRYPTION_KEY"] = pg.TEST_KEY
    saved = dict(os.environ)
    os.environ["DURABLY_ENCRYPTION_KEY"] = e.env.get("DURABLY_ENCRYPTION_KEY", "")
    if not os.environ["DURABLY_ENCRYPTION_KEY"]:
        del os.environ["DURABLY_ENCRYPTION_KEY"]
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    os.environ.clear()
    os.environ.update(saved)


def in_out(env: Env) -> list[str]:
    return env.log.read_text().splitlines()


def never_two_inside(lines: list[str]) -> None:
    """At most one step body inside the lock at any moment (a killed attempt never says
    ``out``: the next ``in`` of the same run is its retry)."""
    inside: str | None = None
    for line in lines:
        kind, i = line.split()
        if kind == "in":
            assert inside in (None, i), f"{i} entered while {inside} was inside: {lines}"
            inside = i
        else:
            assert inside == i, lines
            inside = None


async def test_a_worker_killed_holding_a_permit_keeps_it_for_its_run(env: Env) -> None:
    mod = env.module()
    env.block.touch()
    first = env.worker("w1")
    holder = await mod.wf.start("pay", "x", 0)
    await env.wait_for_line("in 0")
    waiter = await mod.wf.start("pay", "x", 1)
    end = time.monotonic() + 60
    while (await waiter.waiting()).kind != "lock":
        assert time.monotonic() < end, await waiter.waiting()
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The permit belongs to the run, not to the dead worker: it is still held.
    world = await mod.wf.open()
    assert [(e.run_id, e.holding) for e in await world.list_locks(key="account:x")] == [
        (holder.run_id, True),
        (waiter.run_id, False),
    ]
    env.block.unlink()
    second = env.worker("w2")
    await env.ready("w2")
    try:
        assert await holder.return_value(timeout=90) == 0
        assert await waiter.return_value(timeout=90) == 1
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        await mod.wf.aclose()
    lines = in_out(env)
    assert lines.count("in 0") == 2  # the attempt in flight at the kill ran again
    never_two_inside(lines)
    assert lines[-2:] == ["in 1", "out 1"]


async def test_two_worker_processes_race_for_one_permit(env: Env) -> None:
    mod = env.module()
    env.env["DURABLY_LEASE_SECONDS"] = "30"  # nothing is killed: no lease need expire
    workers = [env.worker("a"), env.worker("b")]
    await env.ready("a")
    await env.ready("b")
    runs = [await mod.wf.start("pay", "y", i) for i in range(8)]
    runs += [await mod.wf.start("single", i) for i in range(8, 12)]
    try:
        results = await asyncio.gather(*[r.return_value(timeout=120) for r in runs])
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0
        await mod.wf.aclose()
    assert results == list(range(12))
    lines = in_out(env)
    never_two_inside([ln for ln in lines if int(ln.split()[1]) < 8])
    never_two_inside([ln for ln in lines if int(ln.split()[1]) >= 8])
