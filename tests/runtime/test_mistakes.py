"""Silent mistakes made loud: each warns (DurablyWarning) or fails at the line that did
it, and says what to use instead."""

from __future__ import annotations

import asyncio
import gc
import random
import time
import warnings
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import pytest_asyncio

import durably
from durably import DurablyWarning, SandboxError, WorkflowRunFailedError, Workflows, start
from durably.events import EventType, NewEvent
from durably.runtime.divergence import divergence_message


@pytest_asyncio.fixture
async def wf() -> AsyncIterator[Workflows]:
    registry = Workflows(world="memory://")
    yield registry
    await registry.aclose()


def _ours(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, DurablyWarning)]


async def test_a_workflow_called_as_a_function_warns_at_the_call(wf: Workflows) -> None:
    @wf.workflow
    async def greet(name: str) -> str:
        return f"hello {name}"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert await greet("you") == "hello you"
        line = _line() - 1
    (w,) = _ours(caught)
    assert w.filename == __file__ and w.lineno == line
    assert "this ran greet as a plain function: nothing was recorded" in str(w.message)
    assert "await start(greet, ...)" in str(w.message)


def _line() -> int:
    import sys

    return sys._getframe(1).f_lineno


async def test_time_sleep_in_a_body_fails_the_run_naming_durable_sleep(wf: Workflows) -> None:
    @wf.workflow
    async def dozer() -> None:
        time.sleep(0.01)

    run = await start(dozer)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=30)
    assert type(info.value.cause).__name__ == SandboxError.__name__
    assert "durably.sleep" in str(info.value.cause) and "asyncio.sleep" in str(info.value.cause)


async def test_clock_and_random_in_a_body_warn_at_the_line(wf: Workflows) -> None:
    lines: dict[str, int] = {}

    @wf.workflow
    async def reader() -> bool:
        t = time.time()
        lines["time"] = _line() - 1
        r = random.random()
        lines["random"] = _line() - 1
        return t > 0 and r >= 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = await start(reader)
        assert await run.return_value(timeout=30) is True
    found = {(w.lineno, str(w.message).split("(")[0]) for w in _ours(caught)}
    assert (lines["time"], "time.time") in found and (lines["random"], "random.random") in found
    messages = " ".join(str(w.message) for w in _ours(caught))
    assert "durably.now()" in messages and "durably.random()" in messages
    assert all(w.filename == __file__ for w in _ours(caught))


async def test_the_durable_replacements_and_steps_do_not_warn(wf: Workflows) -> None:
    @wf.step
    async def outside_the_body() -> float:
        time.sleep(0.001)  # a step runs on the worker's real loop: all of this is fine
        return time.time() + random.random()

    @wf.workflow
    async def careful() -> bool:
        durably.now()
        durably.random().random()
        durably.uuid4()
        return await outside_the_body() > 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        time.time()
        random.random()
        run = await start(careful)
        assert await run.return_value(timeout=30) is True
    assert _ours(caught) == []


def test_a_divergence_names_the_usual_causes_and_the_durable_replacements() -> None:
    ev = SimpleNamespace(type=EventType.STEP_CREATED, data={"name": "charge"}, call=0, seq=3)
    issued = NewEvent(EventType.STEP_CREATED, 0, {"name": "refund"})
    for msg in (
        divergence_message("run_1", "order", ev, issued, []),  # type: ignore[arg-type]
        divergence_message("run_1", "order", ev, None, []),  # type: ignore[arg-type]
    ):
        for name in ("durably.random()", "durably.now()", "durably.uuid4()", "set"):
            assert name in msg, msg


async def test_a_step_call_never_awaited_warns_naming_the_step_and_the_line(
    wf: Workflows,
) -> None:
    lines: dict[str, int] = {}

    @wf.step
    async def forgotten(i: int) -> int:
        return i

    @wf.workflow
    async def sloppy() -> str:
        forgotten(1)
        lines["call"] = _line() - 1
        both = await asyncio.gather(forgotten(2), forgotten(3))  # used: no warning
        kept = forgotten(4)
        await asyncio.sleep(0)
        return f"done {both} {await kept}"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = await start(sloppy)
        assert await run.return_value(timeout=30) == "done [2, 3] 4"
        gc.collect()
    (w,) = _ours(caught)
    assert (w.filename, w.lineno) == (__file__, lines["call"])
    assert "step 'forgotten' was never awaited" in str(w.message)
    assert "await forgotten(...)" in str(w.message)
