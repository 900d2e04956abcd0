"""Flow control across real processes: two `durably worker` processes on one world.

* Schedules: both drivers race for the ticks of a schedule whose ticks are already due
  (its row is pre-seeded with an anchor in the past, ``catch_up="all"``), and each tick
  becomes exactly one run (idempotency key ``schedule:<tick>``) whose step runs once.
  Separate processes cannot share a virtual clock, so the ticks are due on the real one.
* Rate limits: a limiter shared by both processes never grants more starts than its
  window allows (each process records the world's decisions and its step bodies' starts
  in a file).

On SQLite and Postgres (issue 14, item 6).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from durably.schedules import tick_key
from durably.worlds.base import RunFilter
from durably.worlds.schedules import ScheduleRecord
from tests.test_crash import Env
from tests.worlds.postgres import support as pg

MODULE = """
import asyncio, os, time
from datetime import datetime

import durably.worlds.sql.world as sql_world
from durably import Workflows

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=False)
LOG = os.environ["CRASH_LOG"]
WHO = os.environ.get("FLOW_WORKER", "test")


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\\n")


if os.environ.get("FLOW_MODE") == "schedule":

    @wf.step
    async def report(at: str) -> str:
        note(f"tick {at} {WHO}")
        return at

    @wf.workflow(schedule="* * * * *", catch_up="all")
    async def minutely(tick: datetime) -> str:
        return await report(tick.isoformat())

else:

    @wf.step(rate_limit="shared:5/2s")
    async def limited(i: int) -> int:
        note(f"start {time.time()!r} {i} {WHO}")
        return i

    @wf.workflow
    async def fan(base: int, n: int) -> list[int]:
        return list(await asyncio.gather(*(limited(base + i) for i in range(n))))

if os.environ.get("FLOW_MODE") != "schedule" and "FLOW_WORKER" in os.environ:
    # In a worker process only: what the world decided, and the time it counted the start
    # at (the asking worker's "now", or the limiter's latest start when that is later).
    _take = sql_world.SqlWorld.take_rate

    async def _spy(self, **kw):
        decision = await _take(self, **kw)
        if decision.granted:
            note(f"granted {decision.at!r} {kw['run_id']} {kw['call']} {WHO}")
        return decision

    sql_world.SqlWorld.take_rate = _spy
"""


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    (tmp_path / "crashmod.py").write_text(MODULE)
    e.env["DURABLY_LEASE_SECONDS"] = "30"  # nothing is killed: no lease need expire
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


def module(env: Env, mode: str) -> ModuleType:
    env.env["FLOW_MODE"] = os.environ["FLOW_MODE"] = mode
    return env.module()


async def two_workers(env: Env) -> list[Any]:
    workers = []
    for name in ("a", "b"):
        env.env["FLOW_WORKER"] = name
        workers.append(env.worker(name))
    for name in ("a", "b"):
        await env.ready(name)
    return workers


def stop(env: Env, workers: list[Any]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for name, w in zip(("a", "b"), workers, strict=True):
        code = w.wait(timeout=30)
        said = (env.dir / f"{name}.out").read_text(errors="replace")[-4000:]
        assert code == 0, f"worker {name} exited with {code}; its output ends:\n{said}"


MINUTE = 60.0
#: More ticks already due than one driver pass decides (``MAX_CATCH_UP``): several passes.
DUE_TICKS = 120


async def test_two_worker_processes_start_each_due_tick_exactly_once(env: Env) -> None:
    mod = module(env, "schedule")
    sched = mod.wf.schedules["minutely"]
    ns = mod.wf.namespace
    world = await mod.wf.open()
    # Registered long ago (half a minute past a tick), never run since: DUE_TICKS are due.
    anchor = (time.time() // MINUTE - DUE_TICKS) * MINUTE + 30
    row = ScheduleRecord(
        namespace=ns,
        workflow_name="minutely",
        cron=sched.cron,
        timezone=sched.timezone,
        catch_up=sched.catch_up,
        anchor=anchor,
        next_tick=sched.next_after(anchor),
        updated_at=anchor,
    )
    await world.sync_schedules(ns, [row], [], anchor)
    due = sched.ticks(anchor, time.time(), 10 * DUE_TICKS)
    assert len(due) >= DUE_TICKS

    workers = await two_workers(env)
    flt = RunFilter(workflow_name="minutely", status="completed", limit=10 * DUE_TICKS)
    try:
        end = time.monotonic() + 180
        while len(await world.list_runs(flt)) < len(due):
            assert time.monotonic() < end, len(await world.list_runs(flt))
            await asyncio.sleep(0.2)
    finally:
        stop(env, workers)
    runs = await world.list_runs(RunFilter(workflow_name="minutely", limit=10 * DUE_TICKS))
    [after] = await world.list_schedules(ns)
    await mod.wf.aclose()

    # One run per tick, every due tick (and any tick that came due meanwhile), keyed by it.
    keys = [r.idempotency_key for r in runs]
    assert len(keys) == len(set(keys))
    ticks = sched.ticks(anchor, due[-1] + len(runs) * MINUTE, len(runs))
    assert sorted(k for k in keys if k is not None) == sorted(tick_key(t) for t in ticks)
    assert set(map(tick_key, due)) <= set(keys)
    # Each tick's step body ran once, in one of the two processes.
    lines = collections.Counter(line.rsplit(" ", 1)[0] for line in env.log.read_text().splitlines())
    assert all(n == 1 for n in lines.values()), [x for x, n in lines.items() if n > 1]
    assert len(lines) >= len(due)
    # The row says the latest tick decided is the latest run's, and it was started.
    assert after.last_tick == ticks[-1] and not after.pending


LIMIT, PER = 5, 2.0


async def test_two_worker_processes_share_one_rate_limit(env: Env) -> None:
    mod = module(env, "rate")
    workers = await two_workers(env)
    try:
        runs = [await mod.wf.start("fan", 5 * i, 5) for i in range(4)]  # 20 starts
        results = await asyncio.gather(*[r.return_value(timeout=120) for r in runs])
    finally:
        stop(env, workers)
        await mod.wf.aclose()
    assert results == [list(range(5 * i, 5 * i + 5)) for i in range(4)]

    lines = [line.split() for line in env.log.read_text().splitlines()]
    granted = sorted(float(x[1]) for x in lines if x[0] == "granted")
    starts = collections.Counter(int(x[2]) for x in lines if x[0] == "start")
    # Every body began once, each after one granted start (no attempt spent waiting)...
    assert starts == collections.Counter(range(20))
    assert len(granted) == 20
    # ...and no window of PER seconds holds more than LIMIT grants, across both processes.
    over = [
        (granted[i], granted[i + LIMIT])
        for i in range(len(granted) - LIMIT)
        if granted[i + LIMIT] - granted[i] < PER
    ]
    assert over == []
    # So the 20 starts took at least three full windows (the limit's own semantics).
    assert granted[-1] - granted[0] >= 3 * PER
