"""Agents of the AI tests, on pydantic-ai's offline FunctionModel: each model request is
counted, so a test can tell a replayed response from a requested one."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from durably.ai import DurablyDurability


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    last = messages[-1]
    if not isinstance(last, ModelRequest):
        return []
    return [p for p in last.parts if isinstance(p, ToolReturnPart)]


class Script:
    """A model that calls ``tool`` (with ``args``) once per user prompt, then answers with
    what the tool returned. Counts its requests."""

    def __init__(self, tool: str = "lookup_order", args: dict[str, Any] | None = None) -> None:
        self.tool = tool
        self.args = args or {"order_id": "o1"}
        self.requests = 0

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        returns = tool_returns(messages)
        if returns:
            return ModelResponse(parts=[TextPart(f"done: {returns[0].content}")])
        return ModelResponse(
            parts=[ToolCallPart(self.tool, dict(self.args), tool_call_id="call_1")]
        )

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        self.requests += 1
        returns = tool_returns(messages)
        if returns:
            for word in f"done: {returns[0].content}".split(" "):
                yield word + " "
        else:
            yield {0: DeltaToolCall(name=self.tool, json_args=None, tool_call_id="call_1")}
            import json

            yield {0: DeltaToolCall(json_args=json.dumps(self.args))}

    def model(self) -> FunctionModel:
        return FunctionModel(self.respond, stream_function=self.stream, model_name="scripted")


class Chatty:
    """A model that answers every prompt with a fixed-size text (for log growth)."""

    def __init__(self) -> None:
        self.requests = 0

    def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        return ModelResponse(parts=[TextPart(f"answer {self.requests}: " + "x" * 200)])

    def model(self) -> FunctionModel:
        return FunctionModel(self.respond, model_name="chatty")


def make_agent(model: FunctionModel, tools: list[Any], **capability: Any) -> Agent[None, str]:
    return Agent(model, name="support", tools=tools, capabilities=[DurablyDurability(**capability)])


calls: Counter[str] = Counter()
