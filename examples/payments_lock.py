"""Payments serialized per account with a lock; statements limited to one at a time.

Without the lock, two payments of one account could both read the balance before either
writes it (a lost update). `durably.lock(key)` is a semaphore shared by every run and
worker of the world: a payment waiting for its account's lock is suspended (no worker,
no memory) and goes next in line; the lock is released when the block exits, and by the
run's end whatever happens. `@wf.workflow(concurrency=1)` keeps the other statement runs
`pending` until one ends; `start(..., priority=)` puts an urgent one first. Each payment
asks a fraud model first, an API capped by a rate limit shared by every run and worker:
a call over it waits (durably) for the window, it never fails for it.

Run it:  python examples/payments_lock.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import durably
from durably import Workflows, start

world = os.environ.get("DURABLY_WORLD") or f"sqlite:///{tempfile.mkdtemp()}/payments.db"
wf = Workflows(world=world)

#: The bank's ledger, outside durably (in real life: another service or database).
BALANCES = {"alice": 100, "bob": 50}
statements_running = [0, 0]  # now, most at once


@wf.step
async def read_balance(account: str) -> int:
    await asyncio.sleep(0.01)  # a round trip: wide open to a lost update without the lock
    return BALANCES[account]


@wf.step
async def write_balance(account: str, cents: int) -> None:
    BALANCES[account] = cents


@wf.step(rate_limit="fraud-model:8/s")
async def fraud_score(account: str, cents: int) -> float:
    return 0.01  # a model API call: at most 8 begin in any second, across all workers


@wf.workflow
async def pay(account: str, cents: int) -> str:
    if await fraud_score(account, cents) > 0.9:
        return "declined"
    async with durably.lock(f"account:{account}"):
        balance = await read_balance(account)
        if balance < cents:
            return "declined"
        await write_balance(account, balance - cents)
        return "paid"


@wf.step
async def render_statement(account: str) -> str:
    statements_running[0] += 1
    statements_running[1] = max(statements_running)
    await asyncio.sleep(0.02)
    statements_running[0] -= 1
    return f"statement of {account}: {BALANCES[account]} cents"


@wf.workflow(concurrency=1)
async def statement(account: str) -> str:
    return await render_statement(account)


async def main() -> None:
    async with wf:
        payments = [await start(pay, "alice", 10) for _ in range(10)]
        payments += [await start(pay, "bob", 10) for _ in range(6)]
        outcomes = [await r.return_value(timeout=60) for r in payments]
        print("alice:", outcomes[:10].count("paid"), "paid, balance", BALANCES["alice"])
        print(
            "bob:",
            outcomes[10:].count("paid"),
            "paid,",
            outcomes[10:].count("declined"),
            "declined, balance",
            BALANCES["bob"],
        )
        assert BALANCES == {"alice": 0, "bob": 0}
        assert outcomes[10:].count("declined") == 1

        runs = [await start(statement, name) for name in ("alice", "bob", "alice")]
        urgent = await start(statement, "bob", priority=10)
        for run in (*runs, urgent):
            print(await run.return_value(timeout=60))
        assert statements_running[1] == 1  # never two statements at once


if __name__ == "__main__":
    asyncio.run(main())
