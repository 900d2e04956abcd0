"""Cold replay: a fresh worker resuming a run with a long recorded history.

    python bench/cold_replay.py [--steps 10000] [--world sqlite|postgres] [--rounds 3]
                                [--dbos] [--profile out.prof]

A run records ``--steps`` no-op steps (each returning a small value), then sleeps an hour.
Each round, a **fresh process** (nothing cached: no sticky body, no rows) opens the world
with a worker, wakes the run (its timer fires now) and waits for its result: the worker
claims the run's turn, replays the body against the whole log (every recorded step
returns its result from the log) and completes it. Reported: that time, and per recorded
step. The run is forked back to its asleep state before each round (by re-running the
setup), so every round replays the same history.

With ``--base REV``, durably at that git revision resumes the same history too, in
alternation (a before/after of a change to replay).

With ``--dbos``, DBOS Transact recovers a workflow of as many steps in the same run (a
fresh process launches DBOS, which finds the pending workflow and re-executes it, each
step returning its recorded output), alternating with durably. Its time runs from
``DBOS.launch()``, which starts the recovery (in the background), to the result; the
time ``launch()`` itself took is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).parent
PG = os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

DURABLY_APP = """
import asyncio, json, os, sys, time
from durably import Workflows, sleep

wf = Workflows(world=os.environ["COLD_WORLD"], concurrency=16)


@wf.step
async def tick(i: int) -> int:
    return i


@wf.workflow
async def long(n: int) -> int:
    total = 0
    for i in range(n):
        total += await tick(i)
    await sleep("1h")
    return total


async def setup(n: int) -> None:
    async with wf:
        run = await wf.start("long", n)
        while True:
            steps = await run.steps()
            if len(steps) > n and steps[-1].status == "waiting":
                break
            await asyncio.sleep(0.05)
        print(run.run_id)


async def resume(run_id: str, n: int) -> None:
    profile = os.environ.get("COLD_PROFILE")
    t0 = time.perf_counter()
    async with wf:
        run = await wf.get_run(run_id)
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        t, c = time.perf_counter(), time.process_time()
        await run.wake()
        value = await run.return_value()
        dt, dc = time.perf_counter() - t, time.process_time() - c
        if profile:
            prof.disable()
            prof.dump_stats(profile)
    assert value == n * (n - 1) // 2, value
    total = time.perf_counter() - t0
    print("RESULT " + json.dumps({"resume_s": dt, "cpu_s": dc, "process_s": total}))


if __name__ == "__main__":
    what, arg, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    asyncio.run(setup(n) if what == "setup" else resume(arg, n))
"""

DBOS_APP = """
import asyncio, json, os, sys, time
from dbos import DBOS, DBOSConfig, SetWorkflowID

done = asyncio.Event() if False else None


@DBOS.step()
async def tick(i: int) -> int:
    return i


@DBOS.workflow()
async def long(n: int, block: bool) -> int:
    total = 0
    for i in range(n):
        total += await tick(i)
    if block and os.environ.get("COLD_PHASE") == "setup":
        print("RECORDED", flush=True)
        await asyncio.sleep(3600)  # the process is killed here
    return total


def config() -> DBOSConfig:
    return {"name": "cold", "system_database_url": os.environ["COLD_DBOS_DB"],
            "run_admin_server": False}


async def main(phase: str, wfid: str, n: int) -> None:
    DBOS(config=config())
    t = time.perf_counter()
    DBOS.launch()  # a pending workflow of this executor is recovered here
    launched = time.perf_counter() - t
    if phase == "setup":
        with SetWorkflowID(wfid):
            await DBOS.start_workflow_async(long, n, True)
        await asyncio.sleep(3600)
    handle = await DBOS.retrieve_workflow_async(wfid)
    value = await handle.get_result()
    dt = time.perf_counter() - t
    assert value == n * (n - 1) // 2, value
    print("RESULT " + json.dumps({"resume_s": dt, "launch_s": launched}), flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def durably_world(kind: str, folder: Path) -> str:
    """A fresh world URL."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'cold.db'}"
    return f"{PG}?schema=cold_{uuid.uuid4().hex[:8]}"


def run_py(folder: Path, app: str, args: list[str], env: dict[str, str]) -> str:
    """Run an app script in a fresh interpreter; its stdout."""
    out = subprocess.run(
        [sys.executable, str(folder / app), *args],
        env={**os.environ, **env},
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"{app} {args} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def result_of(stdout: str) -> dict[str, float]:
    """The RESULT line's figures."""
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise SystemExit(f"no RESULT in:\n{stdout[-2000:]}")


def durably_round(
    folder: Path, kind: str, steps: int, profile: str, src: Path | None = None
) -> float:
    """Set up a run asleep after ``steps`` steps (on a copy of a recorded database for
    SQLite), resume it in a fresh process; seconds (the process's CPU seconds over the
    same span go to ``_CPU``)."""
    tree = {} if src is None else {"PYTHONPATH": str(src)}
    tag = "" if src is None else "-base"  # each tree records its own (schema versions)
    if kind == "sqlite":
        base = folder / f"recorded{tag}.db"
        if not base.exists():
            url = f"sqlite:///{base}"
            env = {"COLD_WORLD": url, **tree}
            run_id = run_py(folder, "durably_app.py", ["setup", "-", str(steps)], env).strip()
            (folder / f"run_id{tag}").write_text(run_id)
            for suffix in ("-wal", "-shm"):
                Path(str(base) + suffix).unlink(missing_ok=True)
        db = folder / "cold.db"
        for suffix in ("-wal", "-shm"):  # the last round's, if its world left them
            Path(str(db) + suffix).unlink(missing_ok=True)
        shutil.copy(base, db)
        if Path(str(base) + ".key").exists():  # none when $DURABLY_ENCRYPTION_KEY is set
            shutil.copy(str(base) + ".key", str(db) + ".key")
        run_id = (folder / f"run_id{tag}").read_text().strip()
        url = f"sqlite:///{db}"
    else:
        url = durably_world(kind, folder)
        run_id = run_py(
            folder, "durably_app.py", ["setup", "-", str(steps)], {**_pg_env(url), **tree}
        )
        run_id = run_id.strip()
    env = {"COLD_WORLD": url, **({"COLD_PROFILE": profile} if profile else {})}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    if kind != "sqlite":
        env.update(_pg_env(url))
    try:
        out = run_py(folder, "durably_app.py", ["resume", run_id, str(steps)], env)
    finally:
        if kind != "sqlite":
            asyncio.run(_drop_schema(url.rsplit("schema=", 1)[1]))
    got = result_of(out)
    _CPU["base" if src is not None else "durably"].append(got["cpu_s"])
    return got["resume_s"]


def _pg_env(url: str) -> dict[str, str]:
    return {"COLD_WORLD": url, "DURABLY_ENCRYPTION_KEY": _KEY}


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def dbos_round(folder: Path, steps: int) -> float:
    """DBOS: record a workflow of ``steps`` steps in one process, kill it, recover it in
    a fresh one; seconds from ``DBOS.launch()`` to the result."""
    db = folder / f"dbos_{uuid.uuid4().hex[:6]}.sqlite"
    env = {"COLD_DBOS_DB": f"sqlite:///{db}", "COLD_PHASE": "setup"}
    wfid = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, str(folder / "dbos_app.py"), "setup", wfid, str(steps)],
        env={**os.environ, **env},
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RECORDED"):
            break
    proc.kill()
    proc.wait()
    env["COLD_PHASE"] = "recover"
    got = result_of(run_py(folder, "dbos_app.py", ["recover", wfid, str(steps)], env))
    _DBOS_LAUNCH.append(got["launch_s"])
    return got["resume_s"]


_KEY = ""
_DBOS_LAUNCH: list[float] = []
#: CPU seconds of the resuming process per round, by side: a steadier figure than the
#: time on a machine shared with other work.
_CPU: dict[str, list[float]] = {"durably": [], "base": []}
_GIT = ["git", "-C", str(HERE.parent)]


def main() -> None:
    """Parse the options; alternate systems round by round; print medians."""
    global _KEY
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--world", default="sqlite", choices=["sqlite", "postgres"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dbos", action="store_true", help="also DBOS recovering as many steps")
    p.add_argument("--profile", default="", help="cProfile the resuming process into PATH")
    p.add_argument("--base", default="", help="also durably at this git revision")
    a = p.parse_args()
    from durably.crypto import new_key

    _KEY = new_key("bench")
    folder = Path(tempfile.mkdtemp(prefix="durably-cold-"))
    (folder / "durably_app.py").write_text(DURABLY_APP)
    (folder / "dbos_app.py").write_text(DBOS_APP)
    samples: dict[str, list[float]] = {"durably": [], "dbos": [], "base": []}
    base_src: Path | None = None
    if a.base:
        base_tree = folder / "base"
        subprocess.run(
            [*_GIT, "worktree", "add", "--detach", "-q", str(base_tree), a.base],
            check=True,
        )
        base_src = base_tree / "src"
    try:
        for r in range(a.rounds):
            order = ["durably", "base", "dbos"] if r % 2 == 0 else ["dbos", "base", "durably"]
            for side in order:
                if side == "durably":
                    prof = a.profile if r == 0 else ""
                    samples["durably"].append(durably_round(folder, a.world, a.steps, prof))
                elif side == "base" and base_src is not None:
                    samples["base"].append(
                        durably_round(folder, a.world, a.steps, "", src=base_src)
                    )
                elif side == "dbos" and a.dbos:
                    samples["dbos"].append(dbos_round(folder, a.steps))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    finally:
        if base_src is not None:
            subprocess.run(
                [*_GIT, "worktree", "remove", "--force", str(base_src.parent)],
                check=False,
            )
    print(f"cold replay of {a.steps:,} recorded steps, median of {a.rounds} rounds")
    for side, values in samples.items():
        if values:
            s = statistics.median(values)
            per = s * 1e6 / a.steps
            world = "sqlite" if side == "dbos" else a.world
            extra = ""
            if side == "dbos" and _DBOS_LAUNCH:
                extra = f"  (of which DBOS.launch(): {statistics.median(_DBOS_LAUNCH):.3f} s)"
            if _CPU.get(side):
                extra = f"  (CPU {statistics.median(_CPU[side]) * 1e6 / a.steps:.1f} us)"
            print(f"  {side + '/' + world:18} {s:8.3f} s  {per:8.1f} us per recorded step{extra}")
            result = {"system": side, "s": s, "us_per_step": per}
            if _CPU.get(side):
                result["cpu_us_per_step"] = statistics.median(_CPU[side]) * 1e6 / a.steps
            print("RESULT " + json.dumps(result))
    for other in ("dbos", "base"):
        if samples[other] and samples["durably"]:
            ratio = statistics.median(samples["durably"]) / statistics.median(samples[other])
            print(f"  durably/{other} {ratio:.3f}")
    if _CPU["base"] and _CPU["durably"]:
        ratio = statistics.median(_CPU["durably"]) / statistics.median(_CPU["base"])
        print(f"  durably/base CPU {ratio:.3f}")
    shutil.rmtree(folder, ignore_errors=True)
    _ = time


if __name__ == "__main__":
    main()
