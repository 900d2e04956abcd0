"""``durably mcp``: the MCP server, spawned as ``python -m durably mcp`` and driven by the
official ``mcp`` client over stdio, while a worker in the test executes the runs."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

import durably
from durably import BaseHook, Workflows
from durably.mcp_server import TOOLS


@dataclass
class Approval(BaseHook):
    ok: bool


def _app(url: str) -> Workflows:
    wf = Workflows(world=url)

    @wf.step
    async def emit(n: int) -> str:
        out = durably.get_writable()
        for i in range(n):
            await out.write({"i": i})
        await out.close()
        return "secret result"

    @wf.workflow
    async def chatty(n: int) -> str:
        return await emit(n)

    @wf.workflow
    async def gated() -> bool:
        async with Approval.wait(token="mcp-gate") as hook:
            return (await hook).ok

    @wf.workflow
    async def napper() -> str:
        await durably.sleep("1h")
        return "rested"

    return wf


class Tools:
    """Calls the server's tools and returns their structured results."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def __call__(self, name: str, **args: Any) -> Any:
        res = await self.session.call_tool(name, args)
        assert not res.is_error, res.content
        return res.structured_content

    async def error(self, name: str, **args: Any) -> str:
        res = await self.session.call_tool(name, args)
        assert res.is_error
        return str(getattr(res.content[0], "text", ""))


@contextlib.asynccontextmanager
async def connected(tmp_path: Path) -> AsyncIterator[tuple[Tools, Workflows]]:
    """The server spawned over stdio, a session to it, and the app's registry (its
    worker runs the runs). A context manager, not a fixture: the client's task group
    must be left by the task that entered it."""
    url = f"sqlite:///{tmp_path}/mcp.db"
    wf = _app(url)
    await wf.open()  # makes the key file the server reads too
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "durably", "mcp", "--world", url], cwd=str(tmp_path)
    )
    try:
        async with stdio_client(params) as streams, ClientSession(*streams[:2]) as session:
            await session.initialize()
            yield Tools(session), wf
    finally:
        await wf.aclose()


async def _until(check: Any) -> None:
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_mcp_lists_inspects_and_decrypts_with_an_audit(tmp_path: Path) -> None:
    async with connected(tmp_path) as (call, wf):
        await _reads(call, wf)


async def _reads(call: Tools, wf: Workflows) -> None:
    listed = await call.session.list_tools()
    assert [t.name for t in listed.tools] == list(TOOLS)

    run = await wf.start("chatty", 4, attributes={"team": "mcp"})
    assert await run.return_value(timeout=30) == "secret result"
    runs = (await call("list_runs", attributes={"team": "mcp"}))["runs"]
    assert [r["run_id"] for r in runs] == [run.run_id]
    seen = await call("inspect_run", run_id=run.run_id)
    assert seen["run"]["status"] == "completed" and seen["waiting"] is None
    assert [s["name"] for s in seen["steps"]] == ["emit"]

    events = (await call("list_events", run_id=run.run_id))["events"]
    assert events[-1]["type"] == "run_completed"
    assert events[-1]["payload"] == "<encrypted>"  # not without decrypt
    assert "data_decrypted" not in [e["type"] for e in events]
    opened = (await call("list_events", run_id=run.run_id, decrypt=True))["events"]
    assert opened[-1]["payload"] == "secret result"
    audit = [e for e in await run.events() if e.type == "data_decrypted"]
    assert len(audit) == 1 and audit[0].data["via"] == "mcp"

    assert (await call("list_streams", run_id=run.run_id))["streams"][0]["count"] == 4
    tail = await call("read_stream", run_id=run.run_id, start_index=-2)
    assert [c["index"] for c in tail["chunks"]] == [2, 3] and tail["closed"]
    assert tail["chunks"][0]["value"] == "<encrypted>"
    plain = await call("read_stream", run_id=run.run_id, start_index=-1, decrypt=True)
    assert plain["chunks"][0]["value"] == {"i": 3}
    assert len([e for e in await run.events() if e.type == "data_decrypted"]) == 2

    missing = await call.error("inspect_run", run_id="run_nope")
    assert "no run with id 'run_nope'" in missing


async def test_mcp_resumes_wakes_cancels_and_forks(tmp_path: Path) -> None:
    async with connected(tmp_path) as (call, wf):
        await _acts(call, wf)


async def _acts(call: Tools, wf: Workflows) -> None:
    gated = await wf.start("gated")
    await _until(lambda: _has_hooks(call, gated.run_id))
    [hook] = (await call("list_hooks", run_id=gated.run_id))["hooks"]
    wrong = await call.error("resume_hook", run_id=gated.run_id, token="nope", payload={})
    assert "no live hook" in wrong
    done = await call("resume_hook", run_id=gated.run_id, token=hook["token"], payload={"ok": True})
    assert done["resumed"] is True
    assert await gated.return_value(timeout=30) is True

    nap = await wf.start("napper")
    await _until(lambda: _waits(nap, "sleep"))
    assert (await call("wake_run", run_id=nap.run_id))["timers_fired"] == 1
    assert await nap.return_value(timeout=30) == "rested"

    nap2 = await wf.start("napper")
    await _until(lambda: _waits(nap2, "sleep"))
    out = await call("cancel_run", run_id=nap2.run_id, reason="from an agent")
    assert out["cancel_requested"] is True
    assert (await nap2.wait(timeout=30)).status == "cancelled"

    forked = await call("fork_run", run_id=nap.run_id, from_step=1)
    fork = await wf.get_run(forked["run_id"])
    assert await fork.return_value(timeout=30) == "rested"  # the sleep was reused


async def _has_hooks(call: Tools, run_id: str) -> bool:
    return bool((await call("list_hooks", run_id=run_id))["hooks"])


async def _waits(run: Any, kind: str) -> bool:
    return bool((await run.waiting()).kind == kind)
