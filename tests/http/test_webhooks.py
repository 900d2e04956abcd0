"""Webhooks over HTTP: opt-in per hook, scoped to the app's namespace, bodies capped."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

import durably.http
from durably import BaseHook, HookNotFoundError, Limits, PayloadTooLargeError, Workflows
from durably.control import hook_not_found
from durably.hooks import resume_webhook
from tests.support import live_hook_token

from .conftest import serve


@dataclass
class WebApproval(BaseHook):
    approved: bool
    note: str = ""


def _not_found(token: str) -> dict[str, str]:
    return {"error": "hook_not_found", "detail": hook_not_found(token)}


async def test_a_plain_hook_is_resumed_only_by_server_code(
    registry: Workflows, client: httpx.AsyncClient
) -> None:
    @registry.workflow
    async def refund(order: str) -> bool:
        async with WebApproval.wait(token=f"refund:{order}") as hook:
            return (await hook).approved

    async with serve(durably.http.app(registry)) as base:
        run = await registry.start(refund, "o1")
        await live_hook_token(registry, run.run_id)
        [indexed] = await (await registry.open()).list_hooks(run_id=run.run_id)
        for token in ("refund:o1", indexed.token):  # the token, or its digest from the db
            resp = await client.post(f"{base}/hooks/{token}", json={"approved": True})
            assert resp.status_code == 404, resp.text
            assert resp.json() == _not_found(token)  # as for a token nobody holds
        assert await run.status() == "running"
        await WebApproval(approved=True).resume("refund:o1", registry=registry)
        assert await run.return_value(timeout=30) is True


async def test_a_webhook_answers_only_the_app_of_its_namespace(
    world_url: str, client: httpx.AsyncClient
) -> None:
    other = Workflows(world=world_url, namespace="shop-a", deployment="a1")
    owner = Workflows(world=world_url, namespace="shop-b", deployment="b1")
    newer = Workflows(world=world_url, namespace="shop-b", deployment="b2", worker=False)

    @owner.workflow
    async def approve() -> str:
        async with WebApproval.wait(webhook=True) as hook:
            return (await hook).note

    try:
        run = await owner.start(approve)
        token = await live_hook_token(owner, run.run_id)
        async with serve(durably.http.app(other)) as base:
            resp = await client.post(f"{base}/hooks/{token}", json={"approved": True})
            assert resp.status_code == 404 and resp.json() == _not_found(token)
        with pytest.raises(HookNotFoundError):
            await resume_webhook(token, {"approved": True}, registry=other)
        assert await run.status() == "running"
        # An app of a newer deployment of the namespace serves the runs still on older
        # code: they finish where they started.
        async with serve(durably.http.app(newer)) as base:
            resp = await client.post(
                f"{base}/hooks/{token}", json={"approved": True, "note": "from b2"}
            )
            assert resp.status_code == 200, resp.text
        assert await run.return_value(timeout=30) == "from b2"
    finally:
        for wf in (other, owner, newer):
            await wf.aclose()


async def test_bodies_are_capped_and_deep_nesting_is_a_400(
    world_url: str, client: httpx.AsyncClient
) -> None:
    wf = Workflows(world=world_url, limits=Limits(max_payload_bytes=2000))

    @wf.workflow
    async def approve() -> str:
        async with WebApproval.wait(webhook=True) as hook:
            return (await hook).note

    try:
        run = await wf.start(approve)
        token = await live_hook_token(wf, run.run_id)
        big = {"approved": True, "note": "x" * 5000}
        async with serve(durably.http.app(wf)) as base:  # the cap: the payload limit
            resp = await client.post(f"{base}/hooks/{token}", json=big)
            assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"
        deep = ("[" * 100_000 + "]" * 100_000).encode()
        async with serve(durably.http.app(wf, max_body_bytes=1_000_000)) as base:
            resp = await client.post(f"{base}/hooks/{token}", json=big)
            assert resp.status_code == 413, resp.text  # the body fits; the payload does not
            assert "2,000" in resp.json()["detail"]
            resp = await client.post(f"{base}/hooks/{token}", content=deep)
            assert resp.status_code == 400, resp.text
            assert resp.json()["error"] == "invalid_json"
            assert "nested too deeply" in resp.json()["detail"]

            async def chunks() -> object:
                for _ in range(2000):  # no Content-Length: counted as it arrives
                    yield b" " * 1000

            resp = await client.post(f"{base}/runs/approve", content=chunks())  # type: ignore[arg-type]
            assert resp.status_code == 413, resp.text
            assert await run.status() == "running"
            with pytest.raises(PayloadTooLargeError):
                await durably.resume_hook(token, big, registry=wf)
            resp = await client.post(f"{base}/hooks/{token}", json={"approved": True, "note": "ok"})
            assert resp.status_code == 200, resp.text
        assert await run.return_value(timeout=30) == "ok"
    finally:
        await wf.aclose()
