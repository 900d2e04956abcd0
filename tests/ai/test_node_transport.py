"""The real WorkflowChatTransport from npm (@workflow/ai), run by Node against chat_app
served by uvicorn: a dropped answer is resumed by index, an approval is answered through
the chat POST. The npm packages are installed once per session in a temporary folder
(from examples/chat/package.json); under CI a failed install fails the tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from durably import Workflows
from durably.ai import DurablyDurability, chat_app, stream_chat
from durably.worlds.base import RunFilter
from tests.support import serve

HERE = Path(__file__).parent
EXAMPLE = HERE.parent.parent / "examples" / "chat"
WORDS = [f"token{i} " for i in range(25)]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the Node tests")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the example's npm packages installed (once per session)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are not installed (apt-get install nodejs npm)")
    folder = tmp_path_factory.mktemp("npm")
    for name in ("package.json", ".npmrc"):
        shutil.copy(EXAMPLE / name, folder / name)
    out = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        _unavailable(f"npm install failed: {out.stderr[-2000:]}")
    return folder


async def node(folder: Path, base: str, mode: str) -> dict[str, Any]:
    shutil.copy(HERE / "transport.mjs", folder / "transport.mjs")
    proc = await asyncio.create_subprocess_exec(
        "node",
        "transport.mjs",
        base,
        mode,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


def agent() -> Agent[None, str]:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if returns:
            yield f"Done: {returns[-1].content}."
            return
        for w in WORDS:
            await asyncio.sleep(0.01)
            yield w
        if "approve" in os.environ.get("_CHAT_MODE", ""):
            yield {1: DeltaToolCall(name="refund", json_args='{"order": "A1"}')}

    a = Agent(
        FunctionModel(stream_function=stream),
        name="support",
        capabilities=[DurablyDurability()],
    )

    @a.tool_plain(requires_approval=True)
    async def refund(order: str) -> str:
        return f"{order} refunded"

    return a


def text_of(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


async def test_transport_resumes_a_dropped_answer_by_index(
    wf: Workflows, node_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_CHAT_MODE", "drop")
    a = agent()

    @wf.workflow
    async def support_chat(messages: list[dict[str, Any]]) -> str:
        return await stream_chat(a, messages)

    async with serve(chat_app(wf, support_chat)) as base:
        out = await node(node_modules, base, "drop")
    first = out["first"]
    post, *gets = out["requests"]
    assert post == "POST /api/chat"
    run_id = gets[0].split("/")[3]
    assert gets == [f"GET /api/chat/{run_id}/stream?startIndex=6"]  # resumed where it dropped
    assert text_of(first["message"]) == "".join(WORDS)  # nothing lost, nothing twice
    assert [c["type"] for c in first["chunks"]].count("start") == 1
    assert first["chunks"][-1]["type"] == "finish"
    assert await (await wf.get_run(run_id)).return_value() == "".join(WORDS)


async def test_transport_answers_an_approval_through_the_chat_post(
    wf: Workflows, node_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_CHAT_MODE", "approve")
    a = agent()

    @wf.workflow
    async def support_chat(messages: list[dict[str, Any]]) -> str:
        return await stream_chat(a, messages)

    async with serve(chat_app(wf, support_chat)) as base:
        out = await node(node_modules, base, "approve")
    assert out["requests"] == ["POST /api/chat", "POST /api/chat"]
    message = out["second"]["message"]
    tool = next(p for p in message["parts"] if p["type"] == "tool-refund")
    assert tool["state"] == "output-available"
    assert tool["output"] == "A1 refunded"
    assert text_of(message) == "".join(WORDS) + "Done: A1 refunded."
    runs = await (await wf.open()).list_runs(RunFilter())
    assert len(runs) == 1
    assert await (await wf.get_run(runs[0].run_id)).return_value() == "Done: A1 refunded."


def test_the_committed_page_bundle_is_built_from_its_source(node_modules: Path) -> None:
    """examples/chat/static/chat.js is what `npm run build` makes of web/main.jsx with the
    pinned packages (so the page the example serves is the page in the source)."""
    shutil.copytree(EXAMPLE / "web", node_modules / "web", dirs_exist_ok=True)
    (node_modules / "static").mkdir(exist_ok=True)
    out = subprocess.run(
        ["npm", "run", "build"], cwd=node_modules, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    built = (node_modules / "static" / "chat.js").read_bytes()
    assert built == (EXAMPLE / "static" / "chat.js").read_bytes(), (
        "examples/chat/static/chat.js is stale: run `npm install && npm run build` there"
    )
