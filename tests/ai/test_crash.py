"""A worker SIGKILLed in the middle of an agent run: the next worker continues from the
log. Recorded model responses are not requested again and a recorded tool call does not
run again (each writes a line to a file, so the test counts them across processes)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_crash import Env

MODULE = """
import asyncio, os
import pydantic_ai.models
from pydantic_ai import Agent
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import FunctionModel
from durably import Workflows
from durably.ai import DurablyDurability

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False
wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=bool(os.environ.get("CRASH_EMBED")))
LOG = os.environ["CRASH_LOG"]
BLOCK = os.environ["CRASH_BLOCK"]


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\\n")


def respond(messages, info):
    done = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts
            if isinstance(p, ToolReturnPart)]
    note(f"model {len(done) + 1}")
    if len(done) == 0:
        return ModelResponse(parts=[ToolCallPart("lookup_order", {"order_id": "o1"})])
    if len(done) == 1:
        return ModelResponse(parts=[ToolCallPart("refund", {"order_id": "o1"})])
    return ModelResponse(parts=[TextPart("; ".join(str(p.content) for p in done))])


async def lookup_order(order_id: str) -> str:
    \"\"\"Look up an order.\"\"\"
    note("tool lookup_order")
    return f"{order_id} shipped"


async def refund(order_id: str) -> str:
    \"\"\"Refund an order.\"\"\"
    note("tool refund start")
    if os.path.exists(BLOCK):
        await asyncio.sleep(3600)  # hangs here until the worker is killed
    note("tool refund end")
    return f"{order_id} refunded"


agent = Agent(FunctionModel(respond), name="support", tools=[lookup_order, refund],
              capabilities=[DurablyDurability(tool_step={"retry_after": 0.05})])


@wf.workflow
async def support(prompt: str) -> str:
    return (await agent.run(prompt)).output
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    saved = dict(os.environ)
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    os.environ.clear()
    os.environ.update(saved)


async def test_sigkill_after_a_tool_step_replays_the_model_and_the_tool(env: Env) -> None:
    (env.dir / "crashmod.py").write_text(MODULE)
    mod = env.module()
    env.block.touch()
    first = env.worker("w1")
    run = await mod.wf.start("support", "refund o1")
    await env.wait_for_line("tool refund start")
    first.send_signal(signal.SIGKILL)
    first.wait()
    env.block.unlink()
    second = env.worker("w2")
    await env.ready("w2")
    try:
        assert await run.return_value(timeout=60) == "o1 shipped; o1 refunded"
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        await mod.wf.aclose()
    lines = env.lines()
    # The recorded model responses were not requested again, the recorded tool call did
    # not run again: the second worker replayed them from the log.
    assert lines["model 1"] == 1 and lines["model 2"] == 1, lines
    assert lines["tool lookup_order"] == 1, lines
    # The tool in flight at the kill ran again and finished once; then the last request.
    assert lines["tool refund start"] == 2 and lines["tool refund end"] == 1, lines
    assert lines["model 3"] == 1, lines
    names = [s.name for s in await run.steps() if s.kind == "step"]
    assert names == [
        "support.model",
        "support.tool.lookup_order",
        "support.model",
        "support.tool.refund",
        "support.model",
    ]
