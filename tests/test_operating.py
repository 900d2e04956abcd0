"""Operating a world from code: attributes at start, retention, ``GET /health``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

import durably
from durably import ConfigurationError, RunNotFoundError, Workflows, start
from durably.errors import redact_url
from durably.http import app


async def test_start_seeds_attributes(wf: Workflows) -> None:
    gate = asyncio.Event()

    @wf.step
    async def wait_for_gate() -> str:
        await gate.wait()
        return "done"

    @wf.workflow
    async def tagged() -> str:
        await durably.set_attributes(phase="running")
        return await wait_for_gate()

    run = await start(tagged, attributes={"team": "core", "n": 3})
    # Recorded with the run's creation: searchable before it does anything.
    assert (await run.attributes())["team"] == "core"
    assert (await run.attributes())["n"] == "3"
    world = await wf.open()
    found = await world.list_runs(durably.worlds.base.RunFilter(attributes={"team": "core"}))
    assert [r.run_id for r in found] == [run.run_id]
    gate.set()
    assert await run.return_value(timeout=30) == "done"
    assert await run.attributes() == {"team": "core", "n": "3", "phase": "running"}
    with pytest.raises(ConfigurationError):
        await start(tagged, attributes={"": "x"})
    with pytest.raises(ConfigurationError):
        await start(tagged, attributes={"big": "x" * 1000})


def _register(wf: Workflows) -> None:
    @wf.step
    async def one() -> int:
        return 1

    @wf.workflow
    async def quick() -> int:
        return await one()

    @wf.workflow
    async def napper() -> None:
        await durably.sleep("1h")


async def test_retention_deletes_ended_runs_of_its_namespace(
    make_wf: Callable[..., Workflows],
) -> None:
    wf, elsewhere = make_wf(), make_wf(namespace="elsewhere")
    _register(wf)
    _register(elsewhere)
    done = await wf.start("quick")
    kept = await elsewhere.start("quick")
    assert await done.return_value(timeout=30) == 1
    assert await kept.return_value(timeout=30) == 1
    sleeping = await wf.start("napper")

    keeper = make_wf(retention=0.001)  # its worker applies retention when it starts
    await keeper.open()
    for _ in range(3000):
        try:
            await keeper.get_run(done.run_id)
        except RunNotFoundError:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("retention did not delete the ended run")
    assert await sleeping.status() in ("pending", "running")  # never a live run
    assert await kept.status() == "completed"  # another namespace: not this registry's


async def test_health_says_whether_the_world_answers(wf: Workflows) -> None:
    transport = httpx.ASGITransport(app(wf, manage_registry=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        res = await client.get("/health")
    assert res.status_code == 200
    body = res.json()
    assert body["status"] == "ok" and body["reachable"] is True
    assert body["world"] == redact_url(wf.world_url)


async def test_health_is_503_when_the_world_is_unreachable() -> None:
    broken = Workflows(world="sqlite:////proc/durably-no-such-dir/w.db", encryption_key=False)
    transport = httpx.ASGITransport(app(broken, manage_registry=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        res = await client.get("/health")
    assert res.status_code == 503
    assert res.json()["reachable"] is False and res.json()["error"]
    await broken.aclose()
