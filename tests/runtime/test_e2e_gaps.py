"""What Vercel's end-to-end suite expects: workflow metadata inside a step, steps that
are methods, error causes across the step boundary, the first attempt's start."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

import durably
from durably import FatalError, Workflows, start
from durably.errors import WorkflowRunFailedError


async def test_get_workflow_metadata_inside_a_step(wf: Workflows) -> None:
    @wf.step
    async def whoami() -> dict[str, str]:
        meta = durably.get_workflow_metadata()
        return {
            "run_id": meta.run_id,
            "workflow": meta.workflow_name,
            "deployment": meta.deployment,
            "started": meta.started_at.isoformat(),
        }

    @wf.workflow
    async def outer() -> dict[str, str]:
        return await whoami()

    run = await start(outer)
    got = await run.return_value(timeout=30)
    assert got["run_id"] == run.run_id
    assert got["workflow"] == "outer" and got["deployment"] == wf.deployment
    assert datetime.fromisoformat(got["started"]).tzinfo is not None
    with pytest.raises(RuntimeError, match="workflow body or a step"):
        durably.get_workflow_metadata()


async def test_first_attempt_started_at_stays_across_retries(wf: Workflows) -> None:
    seen: list[tuple[int, datetime, datetime | None]] = []

    @wf.step(max_retries=3, retry_after=0.01)
    async def wobbly() -> int:
        meta = durably.get_step_metadata()
        seen.append((meta.attempt, meta.step_started_at, meta.first_attempt_started_at))
        if meta.attempt < 3:
            raise RuntimeError("not yet")
        return meta.attempt

    @wf.workflow
    async def body() -> int:
        return await wobbly()

    assert await (await start(body)).return_value(timeout=30) == 3
    (a1, start1, first1), (_, start2, first2), (_, start3, first3) = seen
    assert a1 == 1 and first1 == start1
    assert first2 == start1 and first3 == start1  # the first attempt's start, kept
    assert start1 < start2 < start3  # step_started_at: the current attempt's


class Greeter:
    """Steps that are methods: bound to ``self`` or ``cls``, never recorded."""

    tries: int = 0

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting


def _methods(wf: Workflows) -> type[Greeter]:
    class Bound(Greeter):
        @wf.step(max_retries=2, retry_after=0.01)
        async def greet(self, name: str) -> str:
            type(self).tries += 1
            if type(self).tries == 1:
                raise RuntimeError("a retry: another worker path")
            return f"{self.greeting} {name}"

        @wf.step
        @classmethod
        async def shout(cls, name: str) -> str:
            return f"{cls.__name__}:{name.upper()}"

        @wf.step
        @staticmethod
        async def plain(name: str) -> str:
            return f"plain {name}"

    return Bound


async def test_steps_that_are_instance_and_class_methods(wf: Workflows) -> None:
    bound = _methods(wf)

    @wf.workflow
    async def greetings(name: str) -> list[str]:
        g = bound("hello")
        return [await g.greet(name), await bound.shout(name), await bound.plain(name)]

    run = await start(greetings, "ada")
    assert await run.return_value(timeout=30) == ["hello ada", "Bound:ADA", "plain ada"]
    created = [e for e in await run.events() if e.type == "step_created"]
    assert [e.data.get("bound", False) for e in created] == [True, True, False]
    assert json.loads(created[0].payload or b"") == {"a": ["ada"], "k": {}}  # no self
    # Outside a workflow they are plain calls, bound the same way.
    assert await bound("hi").greet("bo") == "hi bo"
    assert await bound.shout("bo") == "Bound:BO"


async def test_an_errors_cause_crosses_the_step_boundary(wf: Workflows) -> None:
    @wf.step
    async def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError as e:
            raise FatalError(f"cannot parse {text!r}") from TypeError(f"bad input: {e}")

    @wf.workflow
    async def caught(text: str) -> list[str]:
        try:
            await parse(text)
        except FatalError as e:
            cause = e.__cause__
            assert cause is not None
            return [type(cause).__name__, str(cause)]
        return []

    @wf.workflow
    async def uncaught(text: str) -> int:
        return await parse(text)

    got = await (await start(caught, "x")).return_value(timeout=30)
    assert got == ["TypeError", "bad input: invalid literal for int() with base 10: 'x'"]

    with pytest.raises(WorkflowRunFailedError) as info:
        await (await start(uncaught, "y")).return_value(timeout=30)
    err = info.value.cause
    assert type(err).__name__ == "FatalError" and str(err) == "cannot parse 'y'"
    assert isinstance(err.__cause__, TypeError)
    assert str(err.__cause__).startswith("bad input")
