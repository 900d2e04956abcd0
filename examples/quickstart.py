"""Quick start: the create_site workflow, run to completion (the README shows this file).

Run it in any folder: python quickstart.py
It keeps its runs in .durably/durably.db there ($DURABLY_WORLD chooses another world).
"""

import asyncio

from durably import Workflows, sleep, start

wf = Workflows()  # sqlite:///.durably/durably.db, made on first use


@wf.step  # retried 3 times by default, with backoff
async def fetch_user_profile(user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "name": "Grace"}


@wf.step(max_retries=5, retry_after="1s", timeout="30s")
async def create_dns_record(name: str) -> str:
    return f"{name.lower()}.example.com"


@wf.step
def send_email(to: str, body: str) -> None:  # a plain def step runs in a thread
    print(f"email to {to}: {body}")


@wf.workflow
async def create_site(user_id: str) -> dict[str, str]:
    profile = await fetch_user_profile(user_id)  # recorded once, replayed after
    host = await create_dns_record(profile["name"])
    await sleep("2s")  # durable: no process waits for it ("30d" works alike)
    await send_email(user_id, f"your site is live at https://{host}")
    return {"user": user_id, "host": host}


async def main() -> None:
    async with wf:  # an embedded worker in this process
        run = await start(create_site, "u1")  # durably recorded before it runs
        print("started", run.run_id)
        print("result", await run.return_value())
        print(f"look at it: durably inspect run {run.run_id}")


if __name__ == "__main__":
    asyncio.run(main())
