"""The HTTP app: what a run waits for, why it failed, 202 on start, and a 404 that names
a run's streams when an event stream is asked of one it does not have."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

import durably.http
from durably import BaseHook, FatalError, Workflows, get_writable
from tests.support import live_hook_token

from .conftest import read_events, serve


@dataclass
class Go(BaseHook):
    ok: bool = True


async def test_get_run_says_what_it_waits_for(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    @registry.step
    async def explode() -> None:
        raise FatalError("no")

    @registry.workflow
    async def gated() -> str:
        async with Go.wait(webhook=True) as hook:
            await hook
        return "done"

    @registry.workflow
    async def doomed() -> None:
        await explode()

    async with serve(durably.http.app(registry)) as base:
        resp = await client.post(f"{base}/runs/gated")
        assert resp.status_code == 202, resp.text  # accepted, not done
        run_id = resp.json()["run_id"]
        token = await live_hook_token(registry, run_id)
        for _ in range(1500):
            # The turn that registered the hook may still be running, or its next turn
            # (the hook's registration is a fact the body consumes) not yet claimed.
            body = (await client.get(f"{base}/runs/{run_id}")).json()
            if body["waiting"]["kind"] not in ("turn", "worker"):
                break
            await asyncio.sleep(0.02)
        assert body["status"] == "running"
        assert body["waiting"]["kind"] == "hook" and body["waiting"]["webhook"] is True
        assert "Go" in body["waiting"]["hook_type"] and body["waiting"]["since"]
        assert token not in str(body)
        assert body["failing_step"] is None

        await client.post(f"{base}/hooks/{token}", json={})
        run = await registry.get_run(run_id)
        assert await run.return_value(timeout=30) == "done"
        body = (await client.get(f"{base}/runs/{run_id}")).json()
        assert body["waiting"] is None and body["result"] == "done"

        failed = (await client.post(f"{base}/runs/doomed")).json()["run_id"]
        await (await registry.get_run(failed)).wait(timeout=30)
        body = (await client.get(f"{base}/runs/{failed}")).json()
        assert body["failing_step"] == {"call": 0, "kind": "step", "name": "explode"}
        assert body["error"]["type"] == "FatalError"


async def test_stream_of_a_namespace_the_run_lacks_is_a_404_naming_its_streams(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    @registry.step
    async def write_ui() -> None:
        ui = get_writable("ui")
        await ui.write("a")
        await ui.write("b")

    @registry.step
    async def write_default() -> None:
        out = get_writable()
        await out.write("hello")
        await out.close()

    @registry.workflow
    async def ui_then_wait() -> None:
        await write_ui()
        async with Go.wait() as hook:
            await hook

    @registry.workflow
    async def quiet() -> None:
        pass

    @registry.workflow
    async def wait_then_write() -> None:
        async with Go.wait() as hook:
            await hook
        await write_default()

    async with serve(durably.http.app(registry)) as base:
        # Live, with another stream and none of this one: a missing ?namespace=.
        run_id = (await client.post(f"{base}/runs/ui_then_wait")).json()["run_id"]
        token = await live_hook_token(registry, run_id)
        resp = await client.get(f"{base}/runs/{run_id}/stream")
        assert resp.status_code == 404, resp.text
        body = resp.json()
        assert body["error"] == "stream_not_found"
        assert body["detail"] == (
            f"run {run_id} has no stream '(default)'; its streams: 'ui' (2 chunks) "
            "(pass the namespace)"
        )
        assert [(s["namespace"], s["count"]) for s in body["streams"]] == [("ui", 2)]
        resp = await client.get(f"{base}/runs/{run_id}/stream?namespace=uI")
        assert resp.status_code == 404
        await Go().resume(token, registry=registry)
        events = await read_events(client, f"{base}/runs/{run_id}/stream?namespace=ui")
        assert [e.json() for e in events[:-1]] == ["a", "b"] and events[-1].event == "end"

        # Ended without any stream: nothing will ever come.
        ended = (await client.post(f"{base}/runs/quiet")).json()["run_id"]
        await (await registry.get_run(ended)).wait(timeout=30)
        resp = await client.get(f"{base}/runs/{ended}/stream")
        assert resp.status_code == 404
        assert "it has no streams" in resp.json()["detail"]

        # Live and no stream written yet: its default stream may still come, so it is
        # followed (a client connecting before the first chunk must not be turned away).
        live = (await client.post(f"{base}/runs/wait_then_write")).json()["run_id"]
        token = await live_hook_token(registry, live)
        reading = asyncio.create_task(read_events(client, f"{base}/runs/{live}/stream"))
        await asyncio.sleep(0)  # either order of request and resume reads the chunk
        await Go().resume(token, registry=registry)
        events = await asyncio.wait_for(reading, 30)
        assert [e.json() for e in events[:-1]] == ["hello"] and events[-1].event == "end"
