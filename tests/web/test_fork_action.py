"""The run page's "fork from here": a form per call of the timeline."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from .conftest import Scenario
from .test_pages import form_post


@pytest_asyncio.fixture
async def client(dashboard_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard_url, timeout=30) as c:
        yield c


async def test_fork_from_a_step_of_the_timeline(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    s = scenario
    page = (await client.get(f"/runs/{s.completed.run_id}")).text
    offered = re.findall(r'name="from_step" value="(\d+)"', page)
    calls = [str(x.call) for x in await s.completed.steps()]
    assert set(calls) <= set(offered)  # one "fork from here" per call drawn

    forked = await form_post(
        client, f"/runs/{s.completed.run_id}", f"/runs/{s.completed.run_id}/fork", from_step="3"
    )
    assert forked.status_code == 303
    new_id = forked.headers["location"].split("/runs/")[1].split("?")[0]
    assert (
        f"a fork of {s.completed.run_id} from call 3"
        in (await client.get(forked.headers["location"])).text
    )
    fork = await s.registry.get_run(new_id)
    assert await fork.return_value(timeout=15) == {
        "charge": "ch_123",
        "packed": 2,
        "tracking": "tracking-o-1",
    }
    steps = {x.name: x for x in await fork.steps()}
    assert steps["charge_card"].attempts == 3  # reused as recorded, not run again

    bad = await form_post(
        client, f"/runs/{s.completed.run_id}", f"/runs/{s.completed.run_id}/fork", from_step="99"
    )
    assert "cannot fork" in (await client.get(bad.headers["location"])).text
