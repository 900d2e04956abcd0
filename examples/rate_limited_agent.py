"""Capping a model API with a rate limit, and a scheduled workflow.

Three agents answer questions at once; every call to the (pretend) model API goes
through one limiter, ``model-api``, allowed 5 starts per second across every run and
every worker of the world. A call over the limit is not an error: its step waits,
durably, until the window lets it begin (its task's due time moves, like a retry's).

A nightly digest runs on a cron schedule: every worker of this code drives it, and each
tick becomes exactly one run, whichever worker gets there first. (This example shows the
schedule registered with its next tick; `durably inspect schedules` shows the same.)

Run it:  python examples/rate_limited_agent.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import datetime

from durably import Workflows, start
from durably.schedules import describe_schedules

world = os.environ.get("DURABLY_WORLD") or f"sqlite:///{tempfile.mkdtemp()}/agent.db"
wf = Workflows(world=world)

LIMIT_PER_SECOND = 5
calls: list[float] = []  # when the model API was called (to check the cap below)


@wf.step(rate_limit=f"model-api:{LIMIT_PER_SECOND}/s", max_retries=5)
async def ask_model(question: str, turn: int) -> str:
    calls.append(time.time())
    await asyncio.sleep(0.01)  # the API call
    return f"answer {turn} to {question!r}"


@wf.workflow
async def agent(question: str) -> list[str]:
    # An agent thinks in a few model calls; some run in parallel.
    first = await ask_model(question, 0)
    more = await asyncio.gather(*(ask_model(question, t) for t in (1, 2, 3)))
    return [first, *more]


@wf.workflow(schedule="0 2 * * *", timezone="Europe/Paris", catch_up="latest")
async def nightly_digest(tick: datetime) -> str:
    # Started once per tick with the tick (an aware datetime in Europe/Paris).
    return f"digest of the day before {tick:%Y-%m-%d}"


async def main() -> None:
    async with wf:
        runs = [await start(agent, q) for q in ("weather?", "news?", "stocks?")]
        answers = [await r.return_value(timeout=60) for r in runs]
        assert all(len(a) == 4 for a in answers), answers
        print(f"{len(calls)} model calls for {len(runs)} agents")
        # The world grants at most 5 starts in any one-second window; a call begins a
        # moment after its start is granted, so a window of call times may hold one more.
        calls.sort()
        busiest = max(sum(1 for c in calls if start_ <= c < start_ + 1.0) for start_ in calls)
        print(f"busiest second: {busiest} calls (limit {LIMIT_PER_SECOND})")
        assert busiest <= LIMIT_PER_SECOND + 1

        # The schedule is registered by the embedded worker when it starts.
        world_ = await wf.open()
        for _ in range(100):
            schedules = await describe_schedules(world_)
            if schedules:
                break
            await asyncio.sleep(0.05)
        (digest,) = schedules
        print(
            f"{digest['workflow']}: {digest['cron']} ({digest['timezone']}),"
            f" next tick {digest['next_tick_local']}"
        )
        assert digest["workflow"] == "nightly_digest"


if __name__ == "__main__":
    asyncio.run(main())
