"""The dashboard over plain HTTP: pages, fragments, actions, and what protects them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from durably import BaseHook, Workflows, start
from durably.web import create_app

from .conftest import Scenario, serve


@pytest_asyncio.fixture
async def client(dashboard_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard_url, timeout=30) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no csrf field in the page"
    return found.group(1)


async def form_post(
    client: httpx.AsyncClient, page: str, action: str, **fields: str
) -> httpx.Response:
    """Open ``page`` (which sets the cookie and holds the token), then post the form."""
    html = (await client.get(page)).text
    data = {"csrf": csrf_of(html), **fields}
    return await client.post(action, data=data, headers={"Origin": str(client.base_url)})


async def eventually(check: object, timeout: float = 15.0) -> None:
    until = time.monotonic() + timeout
    while True:
        if await check():  # type: ignore[operator]
            return
        assert time.monotonic() < until, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_runs_page_lists_filters_and_searches(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    page = await client.get("/runs")
    assert page.status_code == 200
    for run in (scenario.completed, scenario.failed, scenario.sleeping, scenario.waiting):
        assert run.run_id in page.text
    assert f"{scenario.completed.run_id}-" in page.text  # its child run
    assert 'data-live="/runs/_rows' in page.text

    failed = (await client.get("/runs", params={"status": "failed"})).text
    assert scenario.failed.run_id in failed and scenario.completed.run_id not in failed
    by_workflow = (await client.get("/runs", params={"workflow": "nightly_report"})).text
    assert scenario.sleeping.run_id in by_workflow and scenario.failed.run_id not in by_workflow
    by_attr = (await client.get("/runs", params={"attr": "customer=c-7"})).text
    assert scenario.completed.run_id in by_attr and scenario.waiting.run_id not in by_attr
    nowhere = (await client.get("/runs", params={"deployment": "v9"})).text
    assert "no runs match" in nowhere
    # A run id's start (as typed: any case) finds it, and nothing else.
    start_of = "RUN_" + scenario.waiting.run_id[4:-2].lower()
    searched = (await client.get("/runs", params={"q": start_of})).text
    assert scenario.waiting.run_id in searched and scenario.failed.run_id not in searched

    exact = await client.get("/runs", params={"q": scenario.failed.run_id})
    assert exact.status_code == 303
    assert exact.headers["location"] == f"/runs/{scenario.failed.run_id}"

    rows = await client.get("/runs/_rows", params={"status": "running"})
    assert rows.status_code == 200 and "<html" not in rows.text
    assert scenario.sleeping.run_id in rows.text and scenario.completed.run_id not in rows.text


async def test_run_page_timeline_payloads_and_errors(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    page = (await client.get(f"/runs/{scenario.completed.run_id}")).text
    assert 'id="timeline"' in page
    for name in ("fetch_order", "charge_card", "pack", "ship"):
        assert name in page
    assert "attempt 1: " in page and "retrying (RetryableError)" in page  # bar titles
    assert "backoff before attempt 2" in page
    assert "tracking-o-1" in page  # the result, decoded
    assert "(&#39;o-1&#39;)" in page  # the input, as a call
    assert "{&#39;packed&#39;: &#39;book&#39;}" in page  # the stream's chunks
    assert f'href="/runs/{scenario.completed.run_id}-5"' in page  # the child run
    assert "data-live=" not in page.split('id="run-live"')[1][:5]  # ended: not polling

    failed = await client.get(f"/runs/{scenario.failed.run_id}")
    assert "FatalError" in failed.text
    assert "<script>alert(1)</script>" not in failed.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in failed.text
    assert "script-src 'self'" in failed.headers["content-security-policy"]
    assert failed.headers["x-frame-options"] == "DENY"

    call = (await client.get(f"/runs/{scenario.failed.run_id}/calls/0")).text
    assert "reserve_stock" in call and "RuntimeError" in call
    assert "warehouse has no sku-9" in call and "Traceback" in call
    assert call.count('class="badge s-retrying"') == 1  # attempt 1 retried, 2 failed

    live = await client.get(f"/runs/{scenario.sleeping.run_id}/_live")
    assert live.status_code == 200 and "x-durably-live" not in live.headers
    assert "sleep" in live.text and "due in" in live.text
    ended = await client.get(f"/runs/{scenario.completed.run_id}/_live")
    assert ended.headers["x-durably-live"] == "done"

    chunks = await client.get(
        f"/runs/{scenario.completed.run_id}/streams/_chunks", params={"start_index": 1}
    )
    assert "lamp" in chunks.text and "book" not in chunks.text
    assert chunks.headers["x-durably-next"] == "2"
    assert chunks.headers["x-durably-live"] == "done"

    hooks = (await client.get("/hooks")).text
    assert "RefundApproval" in hooks and scenario.waiting.run_id in hooks
    assert "refund:o-2" not in hooks  # the index holds a digest of the token

    missing = await client.get("/runs/run_nope")
    assert missing.status_code == 404 and "run_nope" in missing.text


async def test_actions_refuse_cross_site_posts(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    url = f"/runs/{scenario.sleeping.run_id}/cancel"
    no_token = await client.post(url, data={"reason": "x"})
    assert no_token.status_code == 403
    html = (await client.get(f"/runs/{scenario.sleeping.run_id}")).text
    token = csrf_of(html)
    evil = await client.post(url, data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.text
    fetch_site = await client.post(
        url, data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetch_site.status_code == 403
    wrong = await client.post(url, data={"csrf": token + "x"})
    assert wrong.status_code == 403
    async with httpx.AsyncClient(base_url=str(client.base_url)) as fresh:  # no cookie
        no_cookie = await fresh.post(url, data={"csrf": token})
        assert no_cookie.status_code == 403 and "cookie" in no_cookie.text
    assert await scenario.sleeping.status() == "running"


async def test_cancel_wake_rerun_and_resume(
    client: httpx.AsyncClient, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = scenario
    woke = await form_post(client, f"/runs/{s.sleeping.run_id}", f"/runs/{s.sleeping.run_id}/wake")
    assert woke.status_code == 303
    flash = await client.get(woke.headers["location"])
    assert "woke 1 timer(s)" in flash.text
    assert await s.wait_for(s.sleeping, lambda st: st == "completed") == "completed"

    rerun = await form_post(
        client, f"/runs/{s.completed.run_id}", f"/runs/{s.completed.run_id}/rerun"
    )
    assert rerun.status_code == 303
    new_id = rerun.headers["location"].split("/runs/")[1].split("?")[0]
    assert new_id != s.completed.run_id
    new_run = await s.registry.get_run(new_id)
    assert await new_run.return_value(timeout=15) == {
        "charge": "ch_123",
        "packed": 2,
        "tracking": "tracking-o-1",
    }
    assert (await new_run.events())[0].data["rerun_of"] == s.completed.run_id

    bad = await form_post(
        client,
        f"/runs/{s.waiting.run_id}",
        f"/runs/{s.waiting.run_id}/hooks/resume",
        token="refund:o-2",
        payload="{not json",
    )
    assert "the payload is not JSON" in (await client.get(bad.headers["location"])).text
    deep = await form_post(
        client,
        f"/runs/{s.waiting.run_id}",
        f"/runs/{s.waiting.run_id}/hooks/resume",
        token="refund:o-2",
        payload="[" * 100_000 + "]" * 100_000,
    )
    assert deep.status_code == 303, deep.text
    assert "nested too deeply" in (await client.get(deep.headers["location"])).text
    invalid = await form_post(
        client,
        f"/runs/{s.waiting.run_id}",
        f"/runs/{s.waiting.run_id}/hooks/resume",
        token="refund:o-2",
        payload='{"approved": "maybe"}',
    )
    assert "Approval" in (await client.get(invalid.headers["location"])).text
    assert await s.waiting.status() == "running"
    # The dashboard process usually does not define the hook's type: then the fact is
    # recorded as given and the workflow validates it on delivery.
    monkeypatch.setattr(BaseHook, "_types", {})
    resumed = await form_post(
        client,
        f"/runs/{s.waiting.run_id}",
        f"/runs/{s.waiting.run_id}/hooks/resume",
        token="refund:o-2",
        payload='{"approved": true}',
    )
    assert (
        "hook RefundApproval (call 0) resumed"
        in (await client.get(resumed.headers["location"])).text
    )
    assert await s.waiting.return_value(timeout=15) is True

    gone = await form_post(
        client,
        f"/runs/{s.completed.run_id}",
        f"/runs/{s.completed.run_id}/cancel",
    )
    assert "already ended" in (await client.get(gone.headers["location"])).text


async def test_cancel_reaches_a_waiting_run(client: httpx.AsyncClient, scenario: Scenario) -> None:
    run = scenario.waiting
    done = await form_post(client, f"/runs/{run.run_id}", f"/runs/{run.run_id}/cancel", reason="x")
    assert "cancellation requested" in (await client.get(done.headers["location"])).text
    assert await scenario.wait_for(run, lambda st: st == "cancelled") == "cancelled"


async def test_token_is_required_on_every_request(scenario: Scenario) -> None:
    app = create_app(world=scenario.world_url, token="s3cret")
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/runs")).status_code == 401
        assert (await c.get("/static/style.css")).status_code == 401
        assert (await c.get("/runs", params={"token": "nope"})).status_code == 401
        header = await c.get("/runs", headers={"Authorization": "Bearer s3cret"})
        assert header.status_code == 200
        login = await c.get("/runs", params={"token": "s3cret", "status": "failed"})
        assert login.status_code == 303
        assert login.headers["location"] == "/runs?status=failed"  # the token leaves the URL
        assert "durably_web_auth" in login.headers["set-cookie"]
        after = await c.get("/runs?status=failed")  # the cookie now
        assert after.status_code == 200 and scenario.failed.run_id in after.text


async def test_without_a_token_only_loopback_hosts_are_served(scenario: Scenario) -> None:
    async with serve(create_app(world=scenario.world_url)) as base, httpx.AsyncClient() as c:
        rebound = await c.get(base + "/runs", headers={"Host": "attacker.example:8233"})
        assert rebound.status_code == 403
        assert (await c.get(base + "/runs", headers={"Host": "localhost:8233"})).status_code == 200


async def test_encrypted_payloads_stay_opaque(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/enc.db"
    wf = Workflows(world=url)

    @wf.workflow
    async def secret(x: str) -> str:
        return x.upper()

    async with wf:
        run = await start(secret, "classified")
        assert await run.return_value(timeout=10) == "CLASSIFIED"
        app = create_app(world=url)
        async with serve(app) as base, httpx.AsyncClient(base_url=base) as c:
            page = (await c.get(f"/runs/{run.run_id}")).text
            assert "encrypted" in page and "classified" not in page.lower()
            # A rerun opens the input in memory and seals it again for the new run.
            rerun = await form_post(c, f"/runs/{run.run_id}", f"/runs/{run.run_id}/rerun")
            new_id = rerun.headers["location"].split("/runs/")[1].split("?")[0]
            assert await (await wf.get_run(new_id)).return_value(timeout=10) == "CLASSIFIED"
            first = (await (await wf.get_run(new_id)).events())[0]
    assert first.data["rerun_of"] == run.run_id
