"""The command line and the dashboard show an agent run's steps as what they are: model
requests, tool calls (with their arguments once decrypted), the UI stream's writes; and
the agent's model and tokens. The UI stream is readable with `inspect streams`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

import durably
from durably.agent_steps import agent_step_kind
from durably.ai import DurablyDurability, stream_chat
from durably.cli import cli
from durably.web import create_app
from tests.support import serve

from .chat_support import user


def agent() -> Agent[None, str]:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if any(isinstance(p, ToolReturnPart) for p in messages[-1].parts):
            yield "It has shipped."
            return
        yield {0: DeltaToolCall(name="lookup_order", json_args='{"order_id": "A123"}')}

    a = Agent(
        FunctionModel(stream_function=stream, model_name="scripted"),
        name="support",
        capabilities=[DurablyDurability()],
    )

    @a.tool_plain
    def lookup_order(order_id: str) -> str:
        return "shipped"

    return a


async def test_inspect_run_and_dashboard_show_model_and_tool_steps(
    wf: durably.Workflows, tmp_path: Path
) -> None:
    a = agent()

    @wf.workflow
    async def support_chat(messages: list[dict[str, Any]]) -> str:
        return await stream_chat(a, messages)

    run = await durably.start(support_chat, [user("where is A123?")])
    assert await run.return_value() == "It has shipped."
    world = wf.world_url
    runner = CliRunner()

    out = await asyncio.to_thread(
        runner.invoke, cli, ["inspect", "run", run.run_id, "--world", world, "--json"]
    )
    assert out.exit_code == 0, out.output
    steps = {s["name"]: s for s in json.loads(out.output)["steps"]}
    assert steps["support.model"]["agent_kind"] == "model"
    assert steps["support.tool.lookup_order"]["agent_kind"] == "tool"
    assert steps["support.ui"]["agent_kind"] == "ui"
    assert "args" not in steps["support.tool.lookup_order"]  # encrypted until asked

    out = await asyncio.to_thread(
        runner.invoke, cli, ["inspect", "run", run.run_id, "--world", world, "--decrypt"]
    )
    assert out.exit_code == 0, out.output
    assert "agent     scripted · 2 requests" in out.output
    tool_line = next(line for line in out.output.splitlines() if "lookup_order" in line)
    assert [c for c in tool_line.replace("│", " ").split()][1] == "tool"
    assert "A123" in tool_line  # the tool's arguments, decrypted (and audited)

    out = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["inspect", "streams", run.run_id, "--world", world, "--namespace", "ui", "--decrypt"],
    )
    assert out.exit_code == 0, out.output
    assert "It has shipped." in out.output

    async with serve(create_app(wf)) as base, httpx.AsyncClient() as client:
        page = (await client.get(f"{base}/runs/{run.run_id}")).text
    assert "scripted · 2 requests" in page
    assert '<td class="muted">model</td>' in page
    assert '<td class="muted">tool</td>' in page


def test_agent_step_kind_needs_an_agent_run() -> None:
    assert agent_step_kind("support.model", {"ai.model": "m"}) == "model"
    assert agent_step_kind("support.model", {}) is None  # a user's step of that name
