"""Quick start: the create_site workflow of the docs, end to end.

Run it:  python examples/quickstart.py
It uses $DURABLY_WORLD when set, else a fresh SQLite file in a temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from durably import Workflows, start

world = os.environ.get("DURABLY_WORLD") or f"sqlite:///{tempfile.mkdtemp()}/quickstart.db"
wf = Workflows(world=world)


@wf.step
async def fetch_user_profile(user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "name": "Grace"}


@wf.step(max_retries=5, retry_after="200ms")
async def create_dns_record(name: str) -> str:
    return f"{name.lower()}.example.com"


@wf.step
def send_email(to: str, body: str) -> None:  # a plain def step runs in a thread
    print(f"email to {to}: {body}")


@wf.workflow
async def create_site(user_id: str) -> dict[str, str]:
    profile = await fetch_user_profile(user_id)
    host = await create_dns_record(profile["name"])
    await send_email(user_id, f"your site is live at https://{host}")
    return {"user": user_id, "host": host}


async def main() -> None:
    async with wf:
        run = await start(create_site, "u1")
        print("started", run.run_id)
        result = await run.return_value(timeout=60)
        print("result", result)
        assert result == {"user": "u1", "host": "grace.example.com"}
        print(f"inspect it: durably inspect run {run.run_id} --world {world}")


if __name__ == "__main__":
    asyncio.run(main())
