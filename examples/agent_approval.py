"""A durable pydantic-ai agent: model requests and tool calls are steps, and a refund
waits for a person's approval on a hook (no compute while it waits).

The agent runs inside a workflow with the ``DurablyDurability`` capability. Each model
request is recorded as the step ``support.model``, each tool call as
``support.tool.{name}``; a crash in the middle continues from the log without asking the
model again or running a tool twice. ``refund`` needs approval (``requires_approval=True``):
the run suspends on a ``ToolApproval`` hook whose token is announced from a step (here to
an in-process queue; ``durably.ai.stream_chat`` writes it to the UI stream), and a person
resumes it with ``ToolApproval(approved=True).resume(token)`` (or ``POST /hooks/{token}``
with ``DurablyDurability(webhooks=True)``).

The model here is pydantic-ai's offline ``FunctionModel`` scripted to look the order up,
then ask for the refund, then answer; pass ``--model openai:gpt-5`` (with a key in the
environment) to use a real one.

    pip install "durably[ai]"
    python examples/agent_approval.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic_ai import Agent, Tool
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durably import Workflows, start
from durably.ai import ApprovalRequest, DurablyDurability, ToolApproval, step_callbacks

wf = Workflows()  # $DURABLY_WORLD, else sqlite:///.durably/durably.db

#: Stands in for the approver's inbox (a Slack message, an email, the chat UI).
inbox: asyncio.Queue[ApprovalRequest] = asyncio.Queue()


def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """An offline model: look the order up, ask for the refund, then answer."""
    returns = [
        p
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]
    if not returns:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "o-17"})])
    if len(returns) == 1:
        return ModelResponse(parts=[ToolCallPart("refund", {"order_id": "o-17", "amount": 40})])
    return ModelResponse(parts=[TextPart(f"Done: {returns[-1].content}.")])


async def lookup_order(order_id: str) -> dict[str, Any]:
    """Look an order up."""
    return {"order_id": order_id, "status": "damaged in transit", "paid": 40}


async def refund(order_id: str, amount: float) -> str:
    """Refund an order (a person approves it first)."""
    return f"refunded {amount} on {order_id}"


model: Any = sys.argv[2] if sys.argv[1:2] == ["--model"] else FunctionModel(scripted)
agent = Agent(
    model,
    name="support",
    tools=[lookup_order, Tool(refund, requires_approval=True)],
    capabilities=[DurablyDurability(approval_timeout="2d")],
)


async def announce(requests: list[ApprovalRequest]) -> None:
    for request in requests:  # runs inside the step "support.approval"
        await inbox.put(request)


@wf.workflow
async def support(question: str) -> str:
    with step_callbacks(approval_requested=announce):
        result = await agent.run(question)
    return result.output


async def main() -> None:
    async with wf:
        run = await start(support, "My order o-17 arrived broken, can I get my money back?")
        request = await asyncio.wait_for(inbox.get(), 60)
        print(f"approval asked: {request.tool_name}({request.args}) token={request.token[:8]}...")
        print("status while it waits:", await run.status())
        await ToolApproval(approved=True).resume(request.token)
        answer = await run.return_value(timeout=60)
        print("answer:", answer)
        print("steps:", [s.name for s in await run.steps() if s.kind == "step"])
        print("attributes:", await run.attributes())
        assert answer == "Done: refunded 40.0 on o-17.", answer


if __name__ == "__main__":
    asyncio.run(main())
