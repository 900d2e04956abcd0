"""``start()`` inside a workflow body is refused at the call (it is not a durable call)."""

from __future__ import annotations

import pytest

import durably
from durably import ConfigurationError, WorkflowRunFailedError, Workflows, start


async def test_start_inside_a_body_is_refused_with_the_two_right_ways(wf: Workflows) -> None:
    @wf.workflow
    async def other(x: int) -> int:
        return x + 1

    @wf.workflow
    async def via_function() -> str:
        await start(other, 1)
        return "started"

    @wf.workflow
    async def via_method() -> str:
        await other.start(2)
        return "started"

    for flow in (via_function, via_method):
        run = await start(flow)
        with pytest.raises(WorkflowRunFailedError) as info:
            await run.return_value(timeout=30)
        cause = info.value.cause
        assert isinstance(cause, ConfigurationError)
        assert "await other(...)" in str(cause) and "inside a step" in str(cause)
        # Nothing but the run's own calls: no spurious timer waits were recorded.
        assert [s.kind for s in await run.steps()] == []


async def test_start_from_a_step_is_the_way_to_an_independent_run(wf: Workflows) -> None:
    @wf.workflow
    async def other(x: int) -> int:
        return x + 1

    @wf.step
    async def launch(x: int) -> str:
        return (await start(other, x)).run_id  # recorded as the step's result

    @wf.workflow
    async def parent() -> str:
        run_id = await launch(41)
        await durably.sleep(0.01)  # a replay after this gets the same run id back
        return run_id

    run = await start(parent)
    child_id = await run.return_value(timeout=30)
    assert await (await wf.get_run(child_id)).return_value(timeout=30) == 42
