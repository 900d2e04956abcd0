"""A run started in a process whose worker has room begins there (issue 16, item 1).

``start()`` creates the run and commits its first turn in one commit, leased to the
local worker: no claim, no read of the run, one commit between ``start()`` and the first
step's body. The steps that turn claimed are leased like any others, so when the process
dies right after ``start()`` another worker takes the run over once the leases expire.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durably import Workflows
from tests.test_crash import Env
from tests.worlds.postgres import support as pg


async def test_a_run_started_here_begins_in_one_commit(wf: Workflows, cache_mode: str) -> None:
    calls: list[tuple[str, Any]] = []
    seen: dict[str, list[tuple[str, Any]]] = {}

    @wf.step
    async def first(key: str) -> str:
        seen[key] = list(calls)
        return key

    @wf.workflow
    async def job(key: str) -> str:
        return await first(key)

    world = await wf.open()
    for name in ("commit", "get_run", "read_events", "read_sealed_events", "claim"):
        original = getattr(world, name, None)
        if original is None:
            continue

        def counted(*args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
            calls.append((_name, args[0] if args else kw.get("run_id")))
            return _f(*args, **kw)

        setattr(world, name, counted)
    run = await wf.start(job, "a", attributes={"team": "x"})
    assert await run.return_value(timeout=30) == "a"
    before = seen["a"]
    assert [c for c in before if c[0] == "commit"] == [("commit", before[0][1])]
    if cache_mode == "sticky":  # without the cache, a step of an evicted run reads it
        assert not [c for c in before if c[0] in ("get_run", "read_events", "read_sealed_events")]
    rec = await (await wf.open()).get_run(run.run_id)
    assert rec is not None and rec.attributes == {"team": "x"}
    events = await (await wf.open()).read_events(run.run_id)
    assert rec.created_at == events[0].created_at  # the record is what the worker made
    assert [e.type.value for e in events[:4]] == [
        "run_created",
        "attributes_set",
        "run_started",
        "step_created",
    ]


async def test_an_idempotent_start_here_returns_the_first_run(wf: Workflows) -> None:
    bodies: list[int] = []

    @wf.step
    async def once(n: int) -> int:
        bodies.append(n)
        return n

    @wf.workflow
    async def job(n: int) -> int:
        return await once(n)

    first = await wf.start(job, 1, idempotency_key="k")
    again = await wf.start(job, 2, idempotency_key="k")
    assert again.run_id == first.run_id
    assert await again.return_value(timeout=30) == 1
    assert bodies == [1]


STARTER = """
import asyncio, os, signal
import crashmod


async def main() -> None:
    run = await crashmod.wf.start("job", 4)
    with open(os.environ["STARTED"], "w") as f:
        f.write(run.run_id)
    os.kill(os.getpid(), signal.SIGKILL)  # right after start(): nothing is handed back


asyncio.run(main())
"""


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    if request.param == "postgres":
        pg.require_postgres()
        url = pg.fresh_url()
        request.addfinalizer(lambda: pg.drop_schema(url))
        e.env["DURABLY_WORLD"] = url
        e.env["DURABLY_ENCRYPTION_KEY"] = pg.TEST_KEY
    saved = dict(os.environ)
    if "DURABLY_ENCRYPTION_KEY" in e.env:
        os.environ["DURABLY_ENCRYPTION_KEY"] = e.env["DURABLY_ENCRYPTION_KEY"]
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    os.environ.clear()
    os.environ.update(saved)


async def test_a_run_begun_here_recovers_when_its_process_is_killed(env: Env) -> None:
    (env.dir / "starter.py").write_text(STARTER)
    started = env.dir / "started"
    proc = subprocess.run(
        [sys.executable, "starter.py"],
        cwd=env.dir,
        env={**env.env, "CRASH_EMBED": "1", "STARTED": str(started)},
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_id = started.read_text()
    mod = env.module()
    run = await mod.wf.get_run(run_id)
    # The run was created started, its first step leased to the dead process.
    steps = await run.steps()
    assert steps and steps[0].name == "work"
    worker = env.worker("w")
    await env.ready("w")
    try:
        assert await run.return_value(timeout=60) == 0 + 1 + 2 + 3
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await mod.wf.aclose()
    lines = env.lines()
    for i in range(4):
        assert lines[f"end {i}"] == 1, lines
    await asyncio.sleep(0)
