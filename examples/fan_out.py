"""Parallel steps, child workflows, a durable race and a durable sleep.

Run it:  python examples/fan_out.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import durably
from durably import Workflows, sleep, start

world = os.environ.get("DURABLY_WORLD") or f"sqlite:///{tempfile.mkdtemp()}/fan_out.db"
wf = Workflows(world=world)


@wf.step
async def thumbnail(image: str, size: int) -> str:
    await asyncio.sleep(0.01)
    return f"{image}@{size}px"


@wf.step
async def slow_virus_scan(image: str) -> bool:
    await asyncio.sleep(1)
    return True


@wf.workflow
async def process_image(image: str) -> dict[str, object]:
    # Results come back in call order, and replay identically on any worker.
    thumbs = await asyncio.gather(*[thumbnail(image, s) for s in (64, 256, 1024)])
    # A durable race: the timer is recorded, so a replay picks the same winner.
    try:
        scanned = await asyncio.wait_for(slow_virus_scan(image), timeout=0.2)
    except TimeoutError:
        scanned = False
    return {"image": image, "thumbs": list(thumbs), "scanned": scanned}


@wf.workflow
async def album(images: list[str]) -> list[dict[str, object]]:
    started = durably.now()
    results = await asyncio.gather(*[process_image(i) for i in images])  # child runs
    await sleep("100ms")  # durable: holds no worker slot while it waits
    assert durably.now() > started
    return list(results)


async def main() -> None:
    async with wf:
        run = await start(album, ["a.png", "b.png"])
        result = await run.return_value(timeout=60)
        print(result)
        assert [r["thumbs"] for r in result] == [
            ["a.png@64px", "a.png@256px", "a.png@1024px"],
            ["b.png@64px", "b.png@256px", "b.png@1024px"],
        ]
        assert all(r["scanned"] is False for r in result)
        kinds = [s.kind for s in await run.steps()]
        assert kinds == ["child", "child", "wait"], kinds


if __name__ == "__main__":
    asyncio.run(main())
