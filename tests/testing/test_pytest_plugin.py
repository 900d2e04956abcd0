"""The fixtures of durably's pytest plugin (loaded through its pytest11 entry point)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

import durably
from durably import BaseHook, Workflows, sleep, start
from durably.clock import VirtualClock


@dataclass
class Go(BaseHook):
    n: int


def test_the_plugin_is_loaded_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("durably")
    assert pytestconfig.getoption("--world") is None


async def test_durably_wf_is_a_fresh_memory_registry(durably_wf: Workflows) -> None:
    assert durably_wf.world_url == "memory://"

    @durably_wf.workflow
    async def hello(name: str) -> str:
        return f"hello {name}"

    assert await (await start(hello, "ada")).return_value(timeout=30) == "hello ada"


async def test_durably_skipping_wf_skips_a_week(
    durably_skipping_wf: Workflows,
    durably_resume_hook: Callable[..., Awaitable[str]],
    durably_read_stream: Callable[..., Awaitable[list[Any]]],
) -> None:
    wf = durably_skipping_wf
    assert isinstance(wf.clock, VirtualClock)

    @wf.step
    async def emit(n: int) -> None:
        w = durably.get_writable()
        await w.write(n)
        await w.close()

    @wf.workflow
    async def week(token: str) -> int:
        await sleep("7d")
        async with Go.wait(token=token) as hook:
            got = await hook
        await emit(got.n)
        return got.n

    run = await start(week, "t1")
    await durably_resume_hook(Go(n=5), "t1", registry=wf)
    assert await run.return_value(timeout=30) == 5
    assert await durably_read_stream(run) == [5]
    assert wf.clock.offset >= 7 * 86_400 - 60


async def test_durably_time_skipping_takes_any_registry(
    durably_time_skipping: Callable[..., Awaitable[VirtualClock]],
) -> None:
    wf = Workflows(world="memory://", worker=False)

    @wf.workflow
    async def nap() -> str:
        await sleep("90d")
        return "rested"

    try:
        clock = await durably_time_skipping(wf)  # starts the embedded worker
        assert await (await start(nap)).return_value(timeout=30) == "rested"
        assert clock.offset >= 90 * 86_400 - 60
    finally:
        await wf.aclose()
