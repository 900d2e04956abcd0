"""A 30-day drip campaign, tested in milliseconds (docs/testing.md shows this file)."""

from datetime import timedelta

import durably
from durably import Workflows, sleep, start


def register(wf: Workflows) -> list[str]:
    sent: list[str] = []

    @wf.step
    async def send_email(to: str, template: str) -> None:
        sent.append(f"{template} -> {to}")

    @wf.workflow
    async def drip_campaign(to: str) -> str:
        signed_up = durably.now()
        await send_email(to, "welcome")
        for day, template in [(1, "getting-started"), (7, "tips"), (30, "upgrade-offer")]:
            await sleep(signed_up + timedelta(days=day))  # a durable timer: no worker waits
            await send_email(to, template)
        return f"done after {(durably.now() - signed_up).days} days"

    return sent


async def test_drip_campaign(durably_skipping_wf: Workflows) -> None:
    sent = register(durably_skipping_wf)  # a memory:// registry under time skipping

    run = await start(durably_skipping_wf.workflows["drip_campaign"], "ada@example.com")

    assert await run.return_value() == "done after 30 days"
    assert sent == [
        "welcome -> ada@example.com",
        "getting-started -> ada@example.com",
        "tips -> ada@example.com",
        "upgrade-offer -> ada@example.com",
    ]
