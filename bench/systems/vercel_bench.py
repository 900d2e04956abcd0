"""vercel-workflow's side of the benchmark: the same workloads as durably_bench.py.

``--world local``: the SDK's local world, JSON files under a fresh data directory and its
embedded in-process queue, everything in this process. The workflows are in
vercel_app.py (the SDK's sandbox imports a workflow's module by name).

Every step replays the workflow from its first event, reading the run's whole event log
from disk, so a step costs more the longer the run's history: sizes are scaled down (see
SCALED) and every scaled figure says so.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from dataclasses import replace
from importlib.metadata import version
from typing import Any

from common import Sizes, emit, emit_settings, median, rss_kb, run_and_exit, scratch_dir

FULL = Sizes()
#: what the local world runs at full size (each figure says what it was scaled from).
#: seq-long is not run on its own: its windows are taken from the seq run, which at
#: 1,000 steps already takes minutes (a 5,000-step run would take about an hour).
SCALED = replace(FULL, seq_long=FULL.seq, window=FULL.seq // 10, sleepers=2000)
QUICK = replace(Sizes.pick(True), seq_long=Sizes.pick(True).seq, window=10)


def scaled(what: str, n: int, full: int) -> dict[str, Any]:
    return {} if n == full else {"note": f"scaled: {what} {n:,} (others {full:,})"}


async def wait(app: Any, run_ids: list[str], until: str = "completed") -> None:
    """Until every run has ended (or is asleep), polling its record every 5 ms.

    ``Run.return_value()`` polls once a second, which would swamp the figures.
    """
    from vercel.workflow._internal import world as w

    world = w.get_world()
    pending = list(run_ids)
    while pending:
        left = []
        for rid in pending:
            if until == "asleep":
                events = (await world.events_list(rid)).data
                done = any(e.event_type == "wait_created" for e in events)
            else:
                run = await world.runs_get(rid)
                if run.status in ("failed", "cancelled"):
                    raise RuntimeError(f"run {rid} {run.status}")
                done = run.status == "completed"
            if not done:
                left.append(rid)
        pending = left
        if pending:
            await asyncio.sleep(0.005 if until == "completed" else 0.2)


async def main(quick: bool, only: set[str]) -> None:
    s = QUICK if quick else SCALED
    full = Sizes.pick(quick)
    os.environ["WORKFLOW_TARGET_WORLD"] = "local"
    os.environ["WORKFLOW_LOCAL_DATA_DIR"] = scratch_dir("vercel-bench-")
    import vercel_app as app
    from vercel.workflow import start

    def want(name: str) -> bool:
        return not only or name in only

    async def run(wf: Any, *args: Any) -> None:
        r = await start(wf, *args)
        await wait(app, [r.run_id])

    emit_settings(
        f"vercel-workflow {version('vercel-workflow')} local world: a JSON file per event, "
        "written by rename, no fsync; embedded queue in memory (queued messages are lost "
        "with the process)"
    )
    if want("seq") or want("seq-long"):
        await run(app.seq, 5)
        app.marks.clear()
        t = time.perf_counter()
        await run(app.seq_marked, s.seq)
        us = (time.perf_counter() - t) * 1e6 / s.seq
        if want("seq"):
            emit({"workload": "seq", "us_per_step": us, **scaled("steps", s.seq, full.seq)})
        if want("seq-long"):
            wn = s.window
            head = (app.marks[wn] - app.marks[0]) * 1e6 / wn
            tail = (app.marks[-1] - app.marks[-1 - wn]) * 1e6 / wn
            emit(
                {
                    "workload": "seq-long",
                    "us_per_step_head": head,
                    "us_per_step_tail": tail,
                    "tail_over_head": tail / head,
                    "note": f"scaled: taken from the seq run, {s.seq:,} steps, windows 1-{wn} "
                    f"and {s.seq - wn + 1:,}-{s.seq:,} (others {full.seq_long:,} steps, "
                    f"windows of {full.window})",
                }
            )
    if want("fanout"):
        t = time.perf_counter()
        runs = [await start(app.seq, s.fanout_steps) for _ in range(s.fanout_runs)]
        await wait(app, [r.run_id for r in runs])
        dt = time.perf_counter() - t
        emit(
            {
                "workload": "fanout",
                "steps_per_s": s.fanout_runs * s.fanout_steps / dt,
                **scaled(
                    "runs x steps",
                    s.fanout_runs * s.fanout_steps,
                    full.fanout_runs * full.fanout_steps,
                ),
            }
        )
    if want("parallel"):
        await run(app.parallel, 5)
        t = time.perf_counter()
        await run(app.parallel, s.parallel)
        ms = (time.perf_counter() - t) * 1e3
        emit({"workload": "parallel", "ms": ms, **scaled("steps", s.parallel, full.parallel)})
    if want("start"):
        lat = []
        for i in range(s.starts + 3):
            key = f"k{i}"
            t = time.perf_counter()
            await run(app.first_step, key)
            if i >= 3:
                lat.append((app.started[key] - t) * 1e3)
        emit(
            {
                "workload": "start",
                "ms_median": median(lat),
                **scaled("median of", s.starts, full.starts),
            }
        )
    if want("payload"):
        t = time.perf_counter()
        await run(app.payload, s.payload_steps, s.payload_bytes)
        emit(
            {
                "workload": "payload",
                "us_per_step": (time.perf_counter() - t) * 1e6 / s.payload_steps,
                **scaled("steps", s.payload_steps, full.payload_steps),
            }
        )
    if want("sleepers"):
        gc.collect()
        idle = rss_kb()
        runs = [await start(app.sleeper) for _ in range(s.sleepers)]
        await wait(app, [r.run_id for r in runs], until="asleep")
        await asyncio.sleep(0.5)
        gc.collect()
        busy = rss_kb()
        emit(
            {
                "workload": "sleepers",
                "bytes_per_run": (busy - idle) * 1024 / s.sleepers,
                **scaled("runs", s.sleepers, full.sleepers),
            }
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--world", required=True, choices=["local"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    a = p.parse_args()
    run_and_exit(main(a.quick, {x for x in a.only.split(",") if x}))
