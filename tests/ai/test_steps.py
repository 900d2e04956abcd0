"""How agent steps retry and fail, run in parallel, and take options from tool metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic_ai import Agent, Tool
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durably import (
    BaseHook,
    FatalError,
    WorkflowRunFailedError,
    Workflows,
    get_step_metadata,
    start,
)
from durably.ai import DurablyDurability, step_callbacks

from .agents import Script, tool_returns


async def test_a_retried_model_step_is_told_apart_by_its_attempt(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    attempts: list[int] = []

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        attempts.append(get_step_metadata().attempt)
        yield "Hello "
        if len(attempts) == 1:
            raise ConnectionError("the provider hung up mid-answer")
        yield "world"

    seen: list[tuple[str, int, str]] = []

    async def handler(ctx: Any, events: Any) -> None:
        meta = get_step_metadata()
        async for event in events:
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                seen.append((meta.step_id, meta.attempt, event.part.content))
            elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                seen.append((meta.step_id, meta.attempt, event.delta.content_delta))

    agent = Agent(
        FunctionModel(stream_function=stream),
        name="writer",
        capabilities=[DurablyDurability(model_step={"retry_after": 0.01})],
    )

    @wf.workflow
    async def write() -> str:
        with step_callbacks(model_events=handler):
            return (await agent.run("greet")).output

    run = await start(write)
    assert await run.return_value(timeout=60) == "Hello world"
    assert attempts == [1, 2]
    step_ids = {step_id for step_id, _, _ in seen}
    assert len(step_ids) == 1, "a retry is the same step (the same step_id)"
    assert [t for _, a, t in seen if a == 1] == ["Hello "]
    assert "".join(t for _, a, t in seen if a == 2) == "Hello world"
    step = next(s for s in await run.steps() if s.name == "writer.model")
    assert step.attempts == 2


async def test_a_user_error_in_a_tool_fails_its_step_at_once(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    ran: list[str] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        ran.append(order_id)
        raise UserError("the tool is misconfigured")

    agent = Agent(
        Script().model(),
        name="support",
        tools=[lookup_order],
        capabilities=[DurablyDurability(tool_step={"retry_after": 0.01})],
    )

    @wf.workflow
    async def support() -> str:
        try:
            return (await agent.run("where?")).output
        except UserError as e:  # the workflow catches the tool's own error class
            assert isinstance(e, UserError) and not isinstance(e, FatalError)
            return f"caught: {e}"

    run = await start(support)
    assert await run.return_value(timeout=60) == "caught: the tool is misconfigured"
    assert ran == ["o1"], "not retried"


async def test_tool_metadata_sets_step_options(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    ran: list[str] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        ran.append(order_id)
        raise ConnectionError("down")

    agent = Agent(
        Script().model(),
        name="support",
        tools=[Tool(lookup_order, metadata={"durably": {"max_retries": 1, "retry_after": 0.01}})],
        capabilities=[DurablyDurability()],
    )

    @wf.workflow
    async def support() -> str:
        return (await agent.run("where?")).output

    run = await start(support)
    with pytest.raises(WorkflowRunFailedError, match="ConnectionError: down"):
        await run.return_value(timeout=60)
    assert ran == ["o1", "o1"]


async def test_bad_tool_metadata_says_what_to_write(tmp_path: Any) -> None:
    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return order_id

    agent = Agent(
        Script().model(),
        name="support",
        tools=[Tool(lookup_order, metadata={"durably": "sometimes"})],
        capabilities=[DurablyDurability()],
    )
    async with Workflows(world=f"memory://{tmp_path.name}") as wf:

        @wf.workflow
        async def support() -> str:
            return (await agent.run("where?")).output

        run = await start(support)
        with pytest.raises(WorkflowRunFailedError, match='"workflow"'):
            await run.return_value(timeout=60)


async def test_parallel_tool_calls_replay_in_call_order(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    requests: list[int] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        requests.append(1)
        returns = tool_returns(messages)
        if returns:
            text = ", ".join(sorted(str(r.content) for r in returns))
            return ModelResponse(parts=[TextPart(text)])
        return ModelResponse(
            parts=[
                ToolCallPart("lookup_order", {"order_id": "o1"}, tool_call_id="a"),
                ToolCallPart("lookup_order", {"order_id": "o2"}, tool_call_id="b"),
                ToolCallPart("stock", {"sku": "s1"}, tool_call_id="c"),
            ]
        )

    ran: list[str] = []

    async def lookup_order(order_id: str) -> str:
        """Look up an order."""
        ran.append(order_id)
        return f"{order_id} shipped"

    async def stock(sku: str) -> str:
        """How many are in stock."""
        ran.append(sku)
        return f"{sku}: 3"

    agent = Agent(
        FunctionModel(respond),
        name="support",
        tools=[lookup_order, stock],
        capabilities=[DurablyDurability()],
    )

    @wf.workflow
    async def support() -> str:
        return (await agent.run("where?")).output

    run = await start(support)
    assert await run.return_value(timeout=60) == "o1 shipped, o2 shipped, s1: 3"
    assert sorted(ran) == ["o1", "o2", "s1"] and len(requests) == 2
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names[0] == "support.model" and names[-1] == "support.model"
    assert sorted(names[1:-1]) == sorted(
        ["support.tool.lookup_order", "support.tool.lookup_order", "support.tool.stock"]
    )


async def test_a_workflow_tool_may_await_a_hook(make_wf: Callable[..., Workflows]) -> None:
    from dataclasses import dataclass

    @dataclass
    class Answer(BaseHook):
        text: str

    wf = make_wf()
    script = Script(tool="ask_human", args={"question": "size?"})

    async def ask_human(question: str) -> str:
        """Ask a person."""
        async with Answer.wait(token="size-question") as hook:
            return (await hook).text

    agent = Agent(
        script.model(),
        name="support",
        tools=[Tool(ask_human, metadata={"durably": "workflow"})],
        capabilities=[DurablyDurability()],
    )

    @wf.workflow
    async def support() -> str:
        return (await agent.run("help")).output

    run = await start(support)
    for _ in range(6000):
        if (await run.waiting()).kind == "hook":
            break
        import asyncio

        await asyncio.sleep(0.01)
    await Answer(text="large").resume("size-question")
    assert await run.return_value(timeout=60) == "done: large"
    assert script.requests == 2


async def test_a_tool_result_that_is_not_json_fails_its_step_at_once(tmp_path: Any) -> None:
    ran: list[str] = []

    class Opaque:
        pass

    async def lookup_order(order_id: str) -> Any:
        """Look up an order."""
        ran.append(order_id)
        return Opaque()

    agent = Agent(
        Script().model(),
        name="support",
        tools=[lookup_order],
        capabilities=[DurablyDurability(tool_step={"retry_after": 0.01})],
    )
    async with Workflows(world=f"memory://{tmp_path.name}") as wf:

        @wf.workflow
        async def support() -> str:
            return (await agent.run("where?")).output

        run = await start(support)
        with pytest.raises(WorkflowRunFailedError, match="cannot be stored as JSON"):
            await run.return_value(timeout=60)
    assert ran == ["o1"], "not retried"


def test_an_unknown_step_option_is_refused() -> None:
    with pytest.raises(UserError, match="max_retries"):
        DurablyDurability(model_step={"max_retry": 5})
