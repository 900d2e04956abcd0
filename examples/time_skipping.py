"""Time skipping: a 30-day drip campaign run to its end in a moment, as a test would.

Run it: python time_skipping.py (on $DURABLY_WORLD, else the embedded SQLite file).
durably.testing.time_skipping(wf) skips the registry's durable timers whenever it is idle,
and the workflow body reads the virtual clock: it reports 30 days.
"""

import asyncio
import time
from datetime import timedelta

import durably
from durably import Workflows, sleep, start
from durably.testing import time_skipping

wf = Workflows()
sent: list[str] = []


@wf.step
async def send_email(to: str, template: str) -> None:
    sent.append(template)


@wf.workflow
async def drip_campaign(to: str) -> str:
    signed_up = durably.now()
    await send_email(to, "welcome")
    for day, template in [(1, "getting-started"), (7, "tips"), (30, "upgrade-offer")]:
        await sleep(signed_up + timedelta(days=day))
        await send_email(to, template)
    return f"done after {(durably.now() - signed_up).days} days"


async def main() -> None:
    async with wf:
        began = time.monotonic()
        async with time_skipping(wf):
            run = await start(drip_campaign, "ada@example.com")
            result = await run.return_value(timeout=60)
        took = time.monotonic() - began
    assert result == "done after 30 days", result
    assert sent == ["welcome", "getting-started", "tips", "upgrade-offer"], sent
    print(f"{result}, in {took * 1000:.0f} ms of real time ({run.run_id})")


if __name__ == "__main__":
    asyncio.run(main())
