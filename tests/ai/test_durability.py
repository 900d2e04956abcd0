"""DurablyDurability: model requests and tool calls as recorded steps, on every world,
with the sticky cache on and off (off: every event replays the body from the start)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_ai import Agent, Tool

from durably import Workflows, get_step_metadata, in_step, in_workflow, start
from durably.ai import DurablyDurability

from .agents import Script, make_agent


async def test_model_requests_and_tool_calls_are_named_steps(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    script = Script()
    ran: list[str] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        assert in_step() and not in_workflow()
        ran.append(order_id)
        return f"{order_id} shipped"

    agent = make_agent(script.model(), [lookup_order])

    @wf.workflow
    async def support(prompt: str) -> str:
        result = await agent.run(prompt)
        return result.output

    run = await start(support, "where is o1?")
    assert await run.return_value(timeout=60) == "done: o1 shipped"
    steps = await run.steps()
    assert [s.name for s in steps if s.kind == "step"] == [
        "support.model",
        "support.tool.lookup_order",
        "support.model",
    ]
    # Recorded responses are not requested again and the tool ran once, even when every
    # event of the run replayed the body from its start (the "replay" cache mode).
    assert script.requests == 2
    assert ran == ["o1"]


async def test_a_second_agent_run_in_one_body_gets_its_own_call_identity(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    script = Script()

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return f"{order_id} shipped"

    agent = make_agent(script.model(), [lookup_order])

    @wf.workflow
    async def twice() -> list[str]:
        first = await agent.run("one")
        second = await agent.run("two", message_history=first.all_messages())
        return [first.output, second.output]

    run = await start(twice)
    assert await run.return_value(timeout=60) == ["done: o1 shipped"] * 2
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names == ["support.model", "support.tool.lookup_order", "support.model"] * 2
    assert script.requests == 4


async def test_outside_a_workflow_the_agent_is_plain_pydantic_ai() -> None:
    script = Script()
    seen: list[bool] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        seen.append(in_step())
        return f"{order_id} shipped"

    agent = make_agent(script.model(), [lookup_order])
    result = await agent.run("where is o1?")
    assert result.output == "done: o1 shipped"
    assert seen == [False] and script.requests == 2


async def test_attributes_follow_the_model_requests(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    script = Script()

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return "shipped"

    agent = make_agent(script.model(), [lookup_order])

    @wf.workflow
    async def support(prompt: str) -> str:
        return (await agent.run(prompt)).output

    run = await start(support, "where?")
    await run.return_value(timeout=60)
    attrs = await run.attributes()
    usage = (await agent.run("where?")).usage  # the same conversation, not durable
    assert attrs["ai.model"] == "scripted"
    assert attrs["ai.requests"] == "2"
    assert attrs["ai.input_tokens"] == str(usage.input_tokens)
    assert attrs["ai.output_tokens"] == str(usage.output_tokens)
    assert usage.input_tokens > 0


async def test_a_workflow_tool_runs_in_the_body_and_may_sleep(
    make_wf: Callable[..., Workflows],
) -> None:
    from durably import sleep

    wf = make_wf()
    script = Script(tool="wait_a_bit", args={"seconds": 0.2})
    where: list[tuple[bool, bool]] = []

    async def wait_a_bit(seconds: float) -> str:
        """Wait a little, durably."""
        where.append((in_workflow(), in_step()))
        await sleep(seconds)
        return "rested"

    agent = Agent(
        script.model(),
        name="support",
        tools=[Tool(wait_a_bit, metadata={"durably": "workflow"})],
        capabilities=[DurablyDurability()],
    )

    @wf.workflow
    async def napper() -> str:
        return (await agent.run("rest")).output

    run = await start(napper)
    assert await run.return_value(timeout=60) == "done: rested"
    steps = await run.steps()
    assert [s.name for s in steps if s.kind == "step"] == ["support.model", "support.model"]
    assert any(s.kind == "wait" for s in steps), steps
    assert where and all(w == (True, False) for w in where)


async def test_streamed_model_events_reach_the_handler_inside_the_model_step(
    make_wf: Callable[..., Workflows],
) -> None:
    from durably.ai import step_callbacks

    wf = make_wf()
    script = Script()
    seen: list[tuple[str, int, str]] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return "shipped"

    async def handler(ctx: Any, events: Any) -> None:
        meta = get_step_metadata()  # inside the model step
        async for event in events:
            seen.append((meta.step_name, meta.attempt, type(event).__name__))

    agent = make_agent(script.model(), [lookup_order])

    @wf.workflow
    async def support(prompt: str) -> str:
        with step_callbacks(model_events=handler):
            return (await agent.run(prompt)).output

    run = await start(support, "where?")
    assert (await run.return_value(timeout=60)).strip() == "done: shipped"
    # The model's own events arrive live inside the model step; the run's other events
    # (tool calls and results) each in a step of their own.
    model = [kind for name, _, kind in seen if name == "support.model"]
    others = {kind for name, _, kind in seen if name != "support.model"}
    assert "PartDeltaEvent" in model and "PartStartEvent" in model
    assert {"FunctionToolCallEvent", "FunctionToolResultEvent"} <= others
    assert {name for name, _, _ in seen} == {"support.model", "support.events"}
    assert {attempt for _, attempt, _ in seen} == {1}
    assert script.requests == 2


async def test_run_events_false_keeps_only_the_model_events_in_steps(
    make_wf: Callable[..., Workflows],
) -> None:
    from durably.ai import step_callbacks

    wf = make_wf()
    script = Script()
    seen: list[str] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return "shipped"

    async def handler(ctx: Any, events: Any) -> None:
        name = get_step_metadata().step_name
        async for _ in events:
            seen.append(name)

    agent = make_agent(script.model(), [lookup_order])

    @wf.workflow
    async def support(prompt: str) -> list[str]:
        kinds: list[str] = []
        with step_callbacks(model_events=handler, run_events=False):
            async with agent.run_stream_events(prompt) as stream:
                async for event in stream:  # the whole run, workflow-side
                    kinds.append(type(event).__name__)
        return kinds

    run = await start(support, "where?")
    kinds = await run.return_value(timeout=60)
    assert "FunctionToolResultEvent" in kinds and "AgentRunResultEvent" in kinds
    assert seen and set(seen) == {"support.model"}
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names == ["support.model", "support.tool.lookup_order", "support.model"]
