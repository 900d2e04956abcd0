"""Cancelling a run reaches the steps it has running, and an abandoned attempt (cancelled,
or a ``def`` step past its timeout) records nothing afterwards.

The cross-process case (a ``durably worker`` subprocess on SQLite) is in
``tests/test_crash.py``, beside the subprocess harness.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

import durably
from durably import Workflows, start
from durably.errors import RunCancelledError, StepAbandonedError, StepTimeoutError
from durably.events import EventType


async def _until(check: Callable[[], bool], what: str, bound: float = 30.0) -> None:
    """Poll ``check`` (a generous bound, no timing assertion)."""
    end = time.monotonic() + bound
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what} never happened")
        await asyncio.sleep(0.01)


async def test_cancelling_a_run_interrupts_its_running_async_step(wf: Workflows) -> None:
    seen: list[str] = []
    started = asyncio.Event()

    @wf.step
    async def forever() -> str:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append(f"cancelled, step_cancelled()={durably.step_cancelled()}")
            raise
        return "woke"

    @wf.step
    async def clean_up() -> None:
        await asyncio.sleep(0.05)  # a cleanup step runs after the cancel, uninterrupted
        seen.append("cleaned up")

    @wf.workflow
    async def job() -> str:
        try:
            return await forever()
        finally:
            await clean_up()

    run = await start(job)
    await asyncio.wait_for(started.wait(), 30)
    await run.cancel(reason="no longer needed")
    with pytest.raises(RunCancelledError):
        await run.return_value(timeout=30)
    await _until(lambda: "cleaned up" in seen, "the cleanup step")
    await _until(lambda: len(seen) == 2, "the step's interruption")
    assert sorted(seen) == ["cancelled, step_cancelled()=True", "cleaned up"]
    # The interrupted attempt is recorded as failed by the cancel, and not retried.
    for _ in range(300):
        steps = {s.name: s for s in await run.steps()}
        if steps["forever"].status == "failed":
            break
        await asyncio.sleep(0.01)
    assert steps["forever"].status == "failed"
    assert steps["forever"].error_type == "RunCancelledError"
    assert steps["forever"].attempts == 1
    assert steps["clean_up"].status == "completed"


async def test_cancelling_a_run_tells_its_def_step(wf: Workflows) -> None:
    started = threading.Event()
    seen: list[str] = []

    @wf.step
    def crunch() -> str:
        started.set()
        end = time.monotonic() + 60
        while not durably.step_cancelled():
            if time.monotonic() > end:
                return "never told"
            time.sleep(0.005)
        seen.append("told")
        return "late result"

    @wf.workflow
    async def job() -> str:
        return await crunch()

    run = await start(job)
    await asyncio.to_thread(started.wait, 30)
    await run.cancel()
    with pytest.raises(RunCancelledError):
        await run.return_value(timeout=30)
    await _until(lambda: seen == ["told"], "the thread noticing the cancel")
    await asyncio.sleep(0.05)  # the thread has returned its late result by now
    types = [e.type for e in await run.events()]
    assert EventType.STEP_COMPLETED not in types


async def test_a_def_step_past_its_timeout_is_abandoned(wf: Workflows) -> None:
    release = threading.Event()
    late: list[str] = []

    @wf.step(timeout="100ms", max_retries=0)
    def slow() -> str:
        release.wait(60)  # runs on after its timeout, until the test lets it go
        late.append(f"step_cancelled()={durably.step_cancelled()}")
        try:
            asyncio.run(durably.set_attributes(late="yes"))
            late.append("recorded")
        except StepAbandonedError as e:
            late.append(f"refused: {e}")
        return "late result"

    @wf.workflow
    async def job() -> str:
        try:
            return await slow()
        except StepTimeoutError:
            return "timed out"

    run = await start(job)
    assert await run.return_value(timeout=30) == "timed out"
    release.set()
    await _until(lambda: len(late) == 2, "the abandoned thread finishing")
    assert late[0] == "step_cancelled()=True"
    assert late[1].startswith("refused: ")
    await asyncio.sleep(0.05)
    assert await run.attributes() == {}
    (step,) = await run.steps()
    assert (step.status, step.error_type, step.attempts) == ("failed", "StepTimeoutError", 1)
    types = [e.type for e in await run.events()]
    assert EventType.STEP_COMPLETED not in types


async def test_a_cancel_another_worker_took_reaches_the_step_at_the_heartbeat(
    make_wf: Callable[..., Workflows], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step runs on a worker that does not take the run's turn after the cancel (as
    when another process's worker does): its heartbeat finds the cancel request."""
    monkeypatch.setenv("DURABLY_LEASE_SECONDS", "0.9")  # a heartbeat every 0.3 s
    wf = make_wf()
    seen: list[str] = []
    started = asyncio.Event()

    @wf.step
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    @wf.workflow
    async def job() -> None:
        await forever()

    run = await start(job)
    await asyncio.wait_for(started.wait(), 30)
    worker = wf.worker
    assert worker is not None and worker._main is not None
    worker._main.cancel()  # this worker claims nothing more: only its heartbeat runs
    other = make_wf(world=wf.world_url)  # another process's worker, in effect
    other.workflows.update(wf.workflows)
    await other.open()
    # The other worker takes the run's turn: the body is cancelled there.
    await (await other.get_run(run.run_id)).cancel()
    await _until(lambda: seen == ["cancelled"], "the step's interruption")
    with pytest.raises(RunCancelledError):
        await run.return_value(timeout=30)
