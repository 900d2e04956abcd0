"""Recursion across runs ("the infinite game"): a long-lived process that never ends,
as a chain of runs. Each run plays one round, then starts its successor on the LATEST
deployment and ends, so new code takes over at the next round while no run is ever
stranded on old code, and no run's history grows without bound.

Run it:  python examples/infinite_game.py
It deploys "v2" after the second round (in this process, for the demo; in production
it is a new release whose workers announce themselves to the world).
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import durably
from durably import Workflows, sleep, start

world = os.environ.get("DURABLY_WORLD") or f"sqlite:///{tempfile.mkdtemp()}/game.db"
ROUNDS = 4


def release(version: str) -> Workflows:
    """The same workflow, as shipped in release ``version``."""
    wf = Workflows(world=world, deployment=version, namespace="game")

    @wf.step
    async def play_round(n: int) -> str:
        return f"round {n} played by {version}"

    @wf.step
    async def continue_as_new(n: int) -> str | None:
        if n >= ROUNDS:
            return None
        successor = await start(game, n + 1, deployment="latest")
        return successor.run_id

    @wf.workflow
    async def game(n: int) -> dict[str, str | None]:
        result = await play_round(n)
        await sleep("50ms")  # between rounds the game waits durably
        nxt = await continue_as_new(n)
        return {"played": result, "next": nxt}

    return wf


async def main() -> None:
    v1 = release("v1")
    await v1.open()
    run = await v1.start("game", 1)
    played = []
    v2: Workflows | None = None
    while run is not None:
        result = await run.return_value(timeout=60)
        played.append(result["played"])
        print(result["played"])
        if len(played) == 2 and v2 is None:
            v2 = release("v2")  # deploy: its worker announces v2 to the world
            await v2.open()
            await asyncio.sleep(0.2)
        nxt = result["next"]
        run = await durably.get_run(nxt) if nxt else None
    assert played[:2] == ["round 1 played by v1", "round 2 played by v1"]
    assert played[-1] == f"round {ROUNDS} played by v2", played
    await v1.aclose()
    if v2 is not None:
        await v2.aclose()


if __name__ == "__main__":
    asyncio.run(main())
