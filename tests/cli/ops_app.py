"""A registry for the operating commands' tests (``durably start tests.cli.ops_app:wf``).

Its world is given by each test (``--world``, and ``wf.world_url`` in the test process)."""

from __future__ import annotations

import durably
from durably import FatalError, Workflows

wf = Workflows(world="memory://ops-app", worker=False)

#: What the steps did, and whether ``flaky`` fails (a bug, fixed by a test).
ran: list[str] = []
broken = {"flaky": True}


@wf.step
async def hello(name: str) -> str:
    ran.append(f"hello {name}")
    return f"hello {name}"


@wf.step
async def flaky(text: str) -> str:
    ran.append("flaky")
    if broken["flaky"]:
        raise FatalError("flaky is broken")
    return text.upper()


@wf.workflow
async def greet(name: str) -> str:
    return await hello(name)


@wf.workflow
async def shout(name: str) -> str:
    return await flaky(await hello(name))


@wf.workflow
async def napper() -> str:
    await durably.sleep("1h")
    return "rested"


@wf.step
async def emit(n: int) -> None:
    out = durably.get_writable()
    for i in range(n):
        await out.write(i)
    await out.close()


@wf.workflow
async def streamer(n: int) -> int:
    await emit(n)
    return n
