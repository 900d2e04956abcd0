"""Retries, FatalError, RetryableError, timeouts, errors raised at the await."""

from __future__ import annotations

import asyncio

import pytest

import durably
from durably import FatalError, RetryableError, WorkflowRunFailedError, Workflows, start


class PaymentDeclined(Exception):
    pass


async def test_retries_until_success_with_stable_step_id(wf: Workflows) -> None:
    seen: list[tuple[str, int]] = []

    @wf.step(max_retries=3, retry_after=0.01)
    async def flaky() -> int:
        meta = durably.get_step_metadata()
        seen.append((meta.step_id, meta.attempt))
        if meta.attempt < 3:
            raise ConnectionError("try again")
        return meta.attempt

    @wf.workflow
    async def flow() -> int:
        return int(await flaky())

    run = await start(flow)
    assert await run.return_value(timeout=30) == 3
    assert [a for _, a in seen] == [1, 2, 3]
    assert len({sid for sid, _ in seen}) == 1
    assert seen[0][0].startswith(run.run_id)
    step = (await run.steps())[0]
    assert step.attempts == 3 and step.status == "completed"
    types = [e.type.value for e in await run.events()]
    assert types.count("step_retrying") == 2


async def test_exhausted_retries_raise_at_the_await_with_class_and_message(
    wf: Workflows,
) -> None:
    attempts: list[int] = []

    @wf.step(max_retries=2, retry_after=0.01)
    async def charge(amount: int) -> None:
        attempts.append(durably.get_step_metadata().attempt)
        raise PaymentDeclined(f"card declined for {amount}")

    @wf.step
    async def refund() -> str:
        return "refunded"

    @wf.workflow
    async def saga() -> str:
        try:
            await charge(5)
        except PaymentDeclined as e:
            assert "Remote traceback" in "\n".join(getattr(e, "__notes__", []))
            return f"{await refund()} after: {e}"
        return "charged"

    run = await start(saga)
    assert await run.return_value(timeout=30) == "refunded after: card declined for 5"
    assert attempts == [1, 2, 3]


async def test_fatal_error_is_not_retried(wf: Workflows) -> None:
    attempts: list[int] = []

    @wf.step(max_retries=5, retry_after=0.01)
    async def validate() -> None:
        attempts.append(1)
        raise FatalError("bad input")

    @wf.workflow
    async def flow() -> None:
        await validate()

    run = await start(flow)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=30)
    assert type(info.value.cause) is FatalError
    assert str(info.value.cause) == "bad input"
    assert attempts == [1]
    assert (await run.record()).error_type == "FatalError"
    assert await run.status() == "failed"


async def test_retryable_error_waits_retry_after(wf: Workflows) -> None:
    times: list[float] = []

    @wf.step(max_retries=1)
    async def rate_limited() -> str:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 1:
            raise RetryableError("429", retry_after="300ms")
        return "ok"

    @wf.workflow
    async def flow() -> str:
        return str(await rate_limited())

    run = await start(flow)
    assert await run.return_value(timeout=30) == "ok"
    assert times[1] - times[0] >= 0.29


async def test_step_timeout_counts_as_a_failed_attempt(wf: Workflows) -> None:
    attempts: list[int] = []

    @wf.step(max_retries=1, timeout="50ms", retry_after=0.01)
    async def hang() -> str:
        attempts.append(durably.get_step_metadata().attempt)
        if len(attempts) == 1:
            await asyncio.sleep(10)
        return "second try"

    @wf.workflow
    async def flow() -> str:
        return str(await hang())

    run = await start(flow)
    assert await run.return_value(timeout=30) == "second try"
    assert attempts == [1, 2]


async def test_uncaught_workflow_error_fails_the_run(wf: Workflows) -> None:
    @wf.workflow
    async def boom(x: int) -> None:
        raise ValueError(f"bad {x}")

    run = await start(boom, 7)
    with pytest.raises(WorkflowRunFailedError, match="bad 7") as info:
        await run.return_value(timeout=30)
    assert isinstance(info.value.cause, ValueError)


async def test_unknown_error_class_keeps_its_name(wf: Workflows) -> None:
    @wf.step(max_retries=0)
    async def weird() -> None:
        local_error = type("VendorSpecificError", (Exception,), {})
        raise local_error("vendor says no")

    @wf.workflow
    async def flow() -> str:
        try:
            await weird()
        except durably.StepError as e:
            return f"{type(e).__name__}: {e}"
        return "no error"

    run = await start(flow)
    assert await run.return_value(timeout=30) == "VendorSpecificError: vendor says no"


async def test_workflow_metadata(wf: Workflows) -> None:
    @wf.workflow
    async def meta() -> list[str]:
        m = durably.get_workflow_metadata()
        return [m.run_id, m.workflow_name, m.deployment, m.started_at.tzname() or ""]

    run = await start(meta)
    assert await run.return_value(timeout=30) == [run.run_id, "meta", "default", "UTC"]
    with pytest.raises(RuntimeError, match="inside a workflow"):
        durably.get_workflow_metadata()
    with pytest.raises(RuntimeError, match="inside a step"):
        durably.get_step_metadata()
