"""Human input: tool approvals and external-event waits suspend the run on hooks, raced
durably against a timeout; the hook tokens are announced from a step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from pydantic_ai import Agent, Tool
from pydantic_ai.capabilities import RequestInput

import durably.http
from durably import Workflows, start
from durably.ai import (
    ApprovalRequest,
    DurablyDurability,
    EventRequest,
    ExternalEvent,
    ToolApproval,
    step_callbacks,
)

from .agents import Script


async def _first(announced: list[Any], timeout: float = 60) -> Any:
    for _ in range(int(timeout / 0.01)):
        if announced:
            return announced[0]
        await asyncio.sleep(0.01)
    raise AssertionError("nothing was announced")


def _approval_agent(script: Script, ran: list[str], **capability: Any) -> Agent[None, str]:
    async def delete_order(order_id: str) -> str:
        """Delete an order (needs a person's approval)."""
        ran.append(order_id)
        return f"{order_id} deleted"

    return Agent(
        script.model(),
        name="support",
        tools=[Tool(delete_order, requires_approval=True)],
        capabilities=[DurablyDurability(**capability)],
    )


def _workflow(wf: Workflows, agent: Agent[None, str], announced: list[Any]) -> Any:
    async def announce(requests: list[ApprovalRequest]) -> None:
        announced.extend(requests)

    @wf.workflow
    async def support(prompt: str) -> str:
        with step_callbacks(approval_requested=announce):
            return (await agent.run(prompt)).output

    return support


async def test_an_approval_suspends_on_a_hook_until_resumed(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    script, ran, announced = Script("delete_order"), [], []
    agent = _approval_agent(script, ran)
    run = await start(_workflow(wf, agent, announced), "delete o1")
    request: ApprovalRequest = await _first(announced)
    assert (request.tool_name, request.args, request.agent) == (
        "delete_order",
        {"order_id": "o1"},
        "support",
    )
    assert await run.status() == "running" and ran == []
    for _ in range(6000):  # the announcing step commits, then the run waits on the hook
        waiting = await run.waiting()
        if waiting.kind == "hook":
            break
        await asyncio.sleep(0.01)
    assert waiting.kind == "hook" and waiting.name == "ToolApproval", waiting

    await ToolApproval(approved=True).resume(request.token)
    assert await run.return_value(timeout=60) == "done: o1 deleted"
    assert ran == ["o1"] and script.requests == 2
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names == [
        "support.model",
        "support.approval",
        "support.tool.delete_order",
        "support.model",
    ]
    assert len(announced) == 1, "the announcement is a step: never made twice"


async def test_a_denied_call_tells_the_model_why(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    script, ran, announced = Script("delete_order"), [], []
    run = await start(_workflow(wf, _approval_agent(script, ran), announced), "delete o1")
    request = await _first(announced)
    await ToolApproval(approved=False, reason="not on a Friday").resume(request.token)
    assert await run.return_value(timeout=60) == "done: not on a Friday"
    assert ran == []


async def test_an_approval_races_a_durable_timeout(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    script, ran, announced = Script("delete_order"), [], []
    agent = _approval_agent(script, ran, approval_timeout=0.3)
    run = await start(_workflow(wf, agent, announced), "delete o1")
    output = await run.return_value(timeout=60)
    assert output.startswith("done: No decision on this tool call arrived within")
    assert ran == [] and len(announced) == 1
    steps = await run.steps()
    assert any(s.kind == "wait" for s in steps), steps
    # The hook is gone: a late decision finds no run waiting.
    from durably import HookNotFoundError

    try:
        await ToolApproval(approved=True).resume(announced[0].token)
    except HookNotFoundError:
        pass
    else:
        raise AssertionError("the timed-out approval's hook is still live")


async def test_an_approval_webhook_resumes_from_post_hooks(tmp_path: Any) -> None:
    wf = Workflows(world=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        script, ran, announced = Script("delete_order"), [], []
        agent = _approval_agent(script, ran, webhooks=True)
        run = await start(_workflow(wf, agent, announced), "delete o1")
        request = await _first(announced)
        transport = httpx.ASGITransport(app=durably.http.app(wf))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            bad = await client.post(f"/hooks/{request.token}", json={"approved": "maybe"})
            assert bad.status_code == 400, bad.text
            resp = await client.post(f"/hooks/{request.token}", json={"approved": True})
            assert resp.status_code == 200, resp.text
            assert resp.json()["run_id"] == run.run_id
        assert await run.return_value(timeout=60) == "done: o1 deleted"
        assert ran == ["o1"]
    finally:
        await wf.aclose()


async def test_a_plain_approval_hook_is_not_resumable_over_http(tmp_path: Any) -> None:
    wf = Workflows(world=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        script, ran, announced = Script("delete_order"), [], []
        run = await start(_workflow(wf, _approval_agent(script, ran), announced), "delete o1")
        request = await _first(announced)
        transport = httpx.ASGITransport(app=durably.http.app(wf))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            resp = await client.post(f"/hooks/{request.token}", json={"approved": True})
            assert resp.status_code == 404, resp.text
        await ToolApproval(approved=True).resume(request.token)
        assert await run.return_value(timeout=60) == "done: o1 deleted"
    finally:
        await wf.aclose()


def _request_input_agent(
    script: Script, ran: list[str], timeout: timedelta | None = None
) -> Agent[None, str]:
    async def delete_order(order_id: str) -> str:
        """Delete an order (needs a person's approval)."""
        ran.append(order_id)
        return f"{order_id} deleted"

    async def ask(ctx: Any, requests: Any, token: str) -> None:
        return None  # the token goes out through step_callbacks(event_requested=...)

    return Agent(
        script.model(),
        name="support",
        tools=[Tool(delete_order, requires_approval=True)],
        capabilities=[
            RequestInput(ask=ask, timeout=timeout, name="decide"),
            DurablyDurability(approvals=False),
        ],
    )


async def test_an_external_event_wait_suspends_on_a_hook(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()
    script, ran, asked = Script("delete_order"), [], []
    agent = _request_input_agent(script, ran)

    async def event_requested(request: EventRequest) -> None:
        asked.append(request)

    @wf.workflow
    async def support(prompt: str) -> str:
        with step_callbacks(event_requested=event_requested):
            return (await agent.run(prompt)).output

    run = await start(support, "delete o1")
    request: EventRequest = await _first(asked)
    assert (request.name, request.agent) == ("decide", "support")
    payload = {"approvals": {"call_1": True}}  # the JSON form of DeferredToolResults
    await ExternalEvent(payload=payload).resume(request.token)
    out = await run.return_value(timeout=60)
    assert out == "done: o1 deleted", out
    assert ran == ["o1"]
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names == [
        "support.model",
        "support.ask.decide",
        "support.tool.delete_order",
        "support.model",
    ]
    assert len(asked) == 1


async def test_an_external_event_wait_races_its_timeout(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    script, ran = Script("delete_order"), []
    agent = _request_input_agent(script, ran, timeout=timedelta(seconds=0.3))

    @wf.workflow
    async def support(prompt: str) -> str:
        return (await agent.run(prompt)).output

    run = await start(support, "delete o1")
    out = await run.return_value(timeout=60)
    assert out.startswith("done: No decision on this tool call arrived"), out
    assert ran == []


async def test_two_calls_wait_on_a_hook_each(make_wf: Callable[..., Workflows]) -> None:
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from .agents import tool_returns

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        if returns:
            return ModelResponse(
                parts=[TextPart(" | ".join(sorted(str(r.content) for r in returns)))]
            )
        return ModelResponse(
            parts=[
                ToolCallPart("delete_order", {"order_id": "o1"}, tool_call_id="a"),
                ToolCallPart("delete_order", {"order_id": "o2"}, tool_call_id="b"),
            ]
        )

    ran: list[str] = []

    async def delete_order(order_id: str) -> str:
        """Delete an order (needs a person's approval)."""
        ran.append(order_id)
        return f"{order_id} deleted"

    agent = Agent(
        FunctionModel(respond),
        name="support",
        tools=[Tool(delete_order, requires_approval=True)],
        capabilities=[DurablyDurability()],
    )
    wf = make_wf()
    announced: list[ApprovalRequest] = []
    run = await start(_workflow(wf, agent, announced), "delete both")
    await _first(announced)
    assert sorted(r.tool_call_id for r in announced) == ["a", "b"]
    assert len({r.token for r in announced}) == 2
    by_id = {r.tool_call_id: r.token for r in announced}
    await ToolApproval(approved=False, reason="keep o2").resume(by_id["b"])
    assert await run.status() == "running", "one decision of two: still waiting"
    await ToolApproval(approved=True).resume(by_id["a"])
    assert await run.return_value(timeout=60) == "keep o2 | o1 deleted"
    assert ran == ["o1"]


async def test_an_ask_that_answers_at_once_does_not_suspend(
    make_wf: Callable[..., Workflows],
) -> None:
    from pydantic_ai.tools import DeferredToolResults

    wf = make_wf()
    script, ran, asked = Script("delete_order"), [], []

    async def delete_order(order_id: str) -> str:
        """Delete an order (needs a person's approval)."""
        ran.append(order_id)
        return f"{order_id} deleted"

    def policy(ctx: Any, requests: Any, token: str) -> DeferredToolResults:
        asked.append(token)
        return DeferredToolResults(approvals={"call_1": True})

    agent = Agent(
        script.model(),
        name="support",
        tools=[Tool(delete_order, requires_approval=True)],
        capabilities=[RequestInput(ask=policy, name="policy"), DurablyDurability(approvals=False)],
    )

    @wf.workflow
    async def support(prompt: str) -> str:
        return (await agent.run(prompt)).output

    run = await start(support, "delete o1")
    assert await run.return_value(timeout=60) == "done: o1 deleted"
    assert ran == ["o1"] and len(asked) == 1, "ask's answer is recorded: asked once"
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names == [
        "support.model",
        "support.ask.policy",
        "support.tool.delete_order",
        "support.model",
    ]


async def test_cancelling_a_run_that_waits_for_an_approval(
    make_wf: Callable[..., Workflows],
) -> None:
    from durably import HookNotFoundError, RunCancelledError

    wf = make_wf()
    script, ran, announced = Script("delete_order"), [], []
    run = await start(_workflow(wf, _approval_agent(script, ran), announced), "delete o1")
    request = await _first(announced)
    await run.cancel(reason="customer left")
    try:
        await run.return_value(timeout=60)
    except RunCancelledError:
        pass
    else:
        raise AssertionError("the run was not cancelled")
    assert ran == []
    try:
        await ToolApproval(approved=True).resume(request.token)
    except HookNotFoundError:
        pass
    else:
        raise AssertionError("a cancelled run's approval hook is still live")
