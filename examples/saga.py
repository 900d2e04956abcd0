"""A payment saga: retries with backoff, a step that fails for good, and compensation.

Run it:  python examples/saga.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile

import durably
from durably import FatalError, RetryableError, Workflows, start

world = os.environ.get("DURABLY_WORLD") or f"sqlite:///{tempfile.mkdtemp()}/saga.db"
wf = Workflows(world=world)


class OutOfStock(Exception):
    pass


@wf.step(max_retries=3, retry_after="50ms")
async def charge_card(order_id: str, cents: int) -> str:
    meta = durably.get_step_metadata()
    # step_id is stable across retries: the payment provider's idempotency key.
    if meta.attempt == 1:
        raise RetryableError("provider busy", retry_after="100ms")
    return f"charge-{meta.step_id}"


@wf.step(max_retries=0)
async def reserve_stock(order_id: str) -> None:
    raise OutOfStock(f"no stock left for order {order_id}")


@wf.step
async def refund(charge_id: str) -> str:
    return f"refunded {charge_id}"


@wf.step
async def validate(cents: int) -> None:
    if cents <= 0:
        raise FatalError(f"amount must be positive, got {cents}")


@wf.workflow
async def checkout(order_id: str, cents: int) -> str:
    await validate(cents)
    charge = await charge_card(order_id, cents)
    try:
        await reserve_stock(order_id)
    except OutOfStock as e:
        # The step's error arrives here with its class and message: compensate.
        return f"{await refund(charge)} because {e}"
    return "shipped"


async def main() -> None:
    async with wf:
        ok = await start(checkout, "o1", 1200)
        outcome = await ok.return_value(timeout=60)
        print(outcome)
        assert outcome.startswith("refunded charge-") and "no stock left" in outcome

        bad = await start(checkout, "o2", -5)
        try:
            await bad.return_value(timeout=60)
        except durably.WorkflowRunFailedError as e:
            print("failed as expected:", type(e.cause).__name__, e.cause)
            assert isinstance(e.cause, FatalError)
        else:
            raise AssertionError("a negative amount must fail the run")


if __name__ == "__main__":
    asyncio.run(main())
