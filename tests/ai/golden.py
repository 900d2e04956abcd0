"""A recorded agent run that every later version must replay: the compatibility promise
of the logs ``durably.ai`` writes (step names, recorded responses and tool results, hooks).

``python -m tests.ai.golden`` records ``tests/ai/histories/agent-<version>.json`` (never
rewriting a file that exists): an agent that looks an order up, asks for approval of a
refund (a ``ToolApproval`` hook, resumed here), refunds and answers, on an unencrypted
in-memory world. ``tests/ai/test_golden.py`` replays every file without a model request or
a tool body.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
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

import durably
from durably import Workflows
from durably.ai import ApprovalRequest, DurablyDurability, ToolApproval, step_callbacks

HISTORIES = Path(__file__).parent / "histories"

#: What ran live: model requests and tool bodies (a replay must add nothing).
RAN: list[str] = []


def _respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    RAN.append("model")
    done = [
        p
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]
    if not done:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "o1"}, "c1")])
    if len(done) == 1:
        return ModelResponse(parts=[ToolCallPart("refund", {"order_id": "o1"}, "c2")])
    return ModelResponse(parts=[TextPart("; ".join(str(p.content) for p in done))])


async def lookup_order(order_id: str) -> str:
    """Look an order up."""
    RAN.append("lookup_order")
    return f"{order_id} arrived broken"


async def refund(order_id: str) -> str:
    """Refund an order."""
    RAN.append("refund")
    return f"{order_id} refunded"


agent = Agent(
    FunctionModel(_respond, model_name="golden"),
    name="support",
    tools=[lookup_order, Tool(refund, requires_approval=True)],
    capabilities=[DurablyDurability()],
)

announced: list[ApprovalRequest] = []


async def _announce(requests: list[ApprovalRequest]) -> None:
    announced.extend(requests)


def register(wf: Workflows) -> None:
    """Register the golden agent workflow on ``wf``."""

    @wf.workflow(name="agent_golden")
    async def agent_golden(question: str) -> str:
        with step_callbacks(approval_requested=_announce):
            return (await agent.run(question)).output


async def record() -> dict[str, Any]:
    """Run the scenario to its end and return its history document."""
    wf = Workflows(world="memory://golden-agent", encryption_key=False)
    register(wf)
    async with wf:
        run = await wf.start("agent_golden", "refund o1")
        for _ in range(3000):
            if announced:
                break
            await asyncio.sleep(0.01)
        await ToolApproval(approved=True).resume(announced[0].token, registry=wf)
        result = await run.return_value(timeout=30)
        events = await run.events()
    return {
        "durably_version": durably.__version__,
        "scenario": "agent",
        "workflow": "agent_golden",
        "status": "completed",
        "result": result,
        "events": [
            {
                **e.to_json(),
                "payload": None if e.payload is None else base64.b64encode(e.payload).decode(),
            }
            for e in events
        ],
    }


async def main() -> None:
    """Record the history unless its file exists."""
    path = HISTORIES / f"agent-{durably.__version__}.json"
    if path.exists():
        print(f"kept {path.name} (histories are never rewritten)")
        return
    doc = await record()
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path.name} ({len(doc['events'])} events)")


if __name__ == "__main__":
    asyncio.run(main())
