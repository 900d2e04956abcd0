"""The dashboard says what explains each run's status: counts by status and by what
running runs wait for, error type, failing call and message of failed runs (in every
list of runs), what a live run waits for and since when, which worker holds it until
when; search; bulk cancel; the workers page; the timeline's zoom. Over plain HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape

import httpx
import pytest_asyncio

from durably import Run, start
from durably.web import create_app
from durably.web.scale import GAP_WIDTH, Zoom
from durably.web.timeline import build_timeline
from durably.worlds import open_world

from .conftest import Scenario, long_gap_run, serve
from .test_pages import csrf_of, eventually


@pytest_asyncio.fixture
async def client(dashboard_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard_url, timeout=30) as c:
        yield c


def count(html: str, attr: str, value: str) -> int:
    found = re.search(rf'{attr}="{value}"[^>]*><span class="n">(\d+)</span>', html)
    assert found, f"no count {attr}={value}"
    return int(found.group(1))


def text(html: str) -> str:
    """What a reader sees of ``html``: tags dropped, entities decoded."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def row_of(html: str, run_id: str) -> str:
    found = re.search(rf'<tr class="run-row" data-run="{run_id}">(.*?)</tr>', html, re.S)
    assert found, f"no row of {run_id}"
    return unescape(found.group(1))


async def running_step(s: Scenario) -> Run:
    """A run of ``export`` whose step runs (and holds its lease) until cancelled."""
    run = await start(s.registry.workflows["export"], 10)
    await eventually(lambda: _step_running(run))
    return run


async def _step_running(run: Run) -> bool:
    return any(x.status == "running" for x in await run.steps())


async def test_counts_by_status_and_by_what_running_runs_wait_for(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    html = (await client.get("/runs")).text
    # place_order and its child ship completed; restock failed; two runs wait.
    assert count(html, "data-status", "completed") == 2
    assert count(html, "data-status", "failed") == 1
    assert count(html, "data-status", "running") == 2
    assert count(html, "data-status", "pending") == 0
    assert count(html, "data-state", "sleeping") == 1
    assert count(html, "data-state", "hook") == 1
    assert count(html, "data-state", "worker") == 0
    # The counts follow the other filters; the state filters list those runs.
    by_wf = (await client.get("/runs", params={"workflow": "nightly_report"})).text
    assert count(by_wf, "data-status", "running") == 1
    assert count(by_wf, "data-status", "completed") == 0
    sleeping = (await client.get("/runs", params={"status": "sleeping"})).text
    assert scenario.sleeping.run_id in sleeping and scenario.waiting.run_id not in sleeping
    on_hook = (await client.get("/runs/_rows", params={"status": "hook"})).text
    assert scenario.waiting.run_id in on_hook and scenario.sleeping.run_id not in on_hook


async def test_rows_say_why_a_run_failed_and_what_a_live_one_waits_for(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    s = scenario
    html = (await client.get("/runs")).text
    failed = row_of(html, s.failed.run_id)
    assert "FatalError" in failed and "step refund" in failed and "#1" in failed
    assert f'href="/runs/{s.failed.run_id}/calls/1"' in failed
    assert "refunds are closed on Sundays <script>" in failed  # the message, escaped
    assert "<script>alert" not in html
    sleeping = row_of(html, s.sleeping.run_id)
    assert "sleeping" in sleeping and "sleep until" in sleeping and " · for " in sleeping
    waiting = row_of(html, s.waiting.run_id)
    assert "hook" in waiting and "RefundApproval" in waiting
    assert "refund:o-2" not in waiting  # never the token: it is the secret that resumes

    # A run whose child failed: the child's row and the parent's say so, in the runs
    # list and in the parent's list of child runs.
    parent = await start(s.registry.workflows["restock_for"], "o-9")
    assert await s.wait_for(parent, lambda st: st == "failed") == "failed"
    child_id = f"{parent.run_id}-0"
    html = (await client.get("/runs")).text
    assert "FatalError" in row_of(html, child_id) and "step refund" in row_of(html, child_id)
    assert "child restock" in row_of(html, parent.run_id)
    page = (await client.get(f"/runs/{parent.run_id}")).text
    assert 'id="children"' in page and "step refund" in row_of(page, child_id)
    failure = unescape(page.split('id="failure"')[1].split("</div>\n")[0])
    assert "FatalError" in failure and "child" in failure and "restock" in failure
    assert "refunds are closed on Sundays" in failure


async def test_run_page_says_what_it_waits_for_and_who_holds_it(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    s = scenario
    page = unescape((await client.get(f"/runs/{s.sleeping.run_id}")).text)
    waiting = page.split('id="waiting"')[1].split("</div>")[0]
    assert "sleep until" in waiting and "· for " in waiting and "ends in" in waiting
    hook = unescape((await client.get(f"/runs/{s.waiting.run_id}/_live")).text)
    assert "hook 'RefundApproval'" in hook or "RefundApproval" in hook.split('id="waiting"')[1]

    run = await running_step(s)
    world = await s.registry.open()
    [lease] = [x for x in await world.list_leases() if x.run_id == run.run_id]
    live = (await client.get(f"/runs/{run.run_id}/_live")).text
    held = text(live.split('id="held"')[1].split("</div>\n</div>")[0])
    assert f"held by worker {lease.owner}: step slow_export #{lease.call}" in held
    assert "lease ends in" in held
    assert f'href="/workers#worker-{lease.owner}"' in live
    assert "slow_export" in live.split('id="waiting"')[1]  # waiting for the step
    rows = (await client.get("/runs")).text
    assert "active" in row_of(rows, run.run_id) and "slow_export" in row_of(rows, run.run_id)

    # The workers page: that worker, alive, with what it holds and until when.
    workers = unescape((await client.get("/workers")).text)
    block = workers.split(f'data-owner="{lease.owner}"')[1].split("</table>")[0]
    assert "alive" in block and run.run_id in block and "step slow_export" in block
    assert "in " in block  # the lease ends in the future
    assert "default" in workers.split('id="deployments"')[1]  # the deployment's heartbeat
    live = (await client.get("/workers/_live")).text  # what the page polls
    assert "<html" not in live and f'data-owner="{lease.owner}"' in live
    await run.cancel()
    assert await s.wait_for(run, lambda st: st == "cancelled") == "cancelled"


async def test_workers_page_shows_a_worker_that_stopped_beating(scenario: Scenario) -> None:
    from durably.events import EventType as E
    from durably.events import NewEvent
    from durably.worlds.base import Commit, RunMeta, RunWrite

    world = open_world(scenario.world_url)
    await world.open()
    try:
        meta = RunMeta("orphan", "elsewhere", "v0")
        await world.commit(
            Commit(
                [RunWrite("run_ORPHAN", create=meta, facts=[NewEvent(E.RUN_CREATED)], lease=True)],
                owner="gone-host:4242:abc",
                lease_seconds=0.01,
            )
        )
        async with (
            serve(create_app(world=scenario.world_url)) as base,
            httpx.AsyncClient(base_url=base) as c,
        ):
            await eventually(lambda: _expired(world))
            html = unescape((await c.get("/workers")).text)
        block = html.split('data-owner="gone-host:4242:abc"')[1].split("</table>")[0]
        assert "stopped beating" in block and "host gone-host, pid 4242" in block
        assert "run_ORPHAN" in block and "its workflow turn" in block
    finally:
        await world.close()


async def _expired(world: object) -> bool:
    import time

    leases = await world.list_leases(namespace="elsewhere")  # type: ignore[attr-defined]
    return bool(leases) and all(x.lease_until < time.time() for x in leases)


async def test_search_by_workflow_attributes_and_run_id_start(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    s = scenario
    both = (await client.get("/runs", params={"attr": "customer=c-7 stage=charging"})).text
    assert s.completed.run_id in both and s.failed.run_id not in both
    none = (await client.get("/runs", params={"attr": "customer=c-7 stage=shipping"})).text
    assert "no runs match" in none
    child = (await client.get("/runs", params={"attr": "stage=shipping"})).text
    assert f"{s.completed.run_id}-" in child
    wf = (await client.get("/runs", params={"workflow": "restock", "status": "failed"})).text
    assert s.failed.run_id in wf and s.completed.run_id not in wf
    # The start of an id lists that run (and its children, whose ids extend it).
    start_of = s.completed.run_id[:-3]
    found = (await client.get("/runs", params={"q": start_of})).text
    assert s.completed.run_id in found and s.failed.run_id not in found
    assert f'value="{start_of}"' in found  # the search box keeps what was asked


async def test_bulk_cancel_asks_to_confirm_then_cancels_through_the_control_plane(
    client: httpx.AsyncClient, scenario: Scenario
) -> None:
    s = scenario
    slow = await running_step(s)
    page = (await client.get("/runs")).text
    origin = {"Origin": str(client.base_url)}
    form = {"csrf": csrf_of(page), "scope": "selected"}
    chosen = [s.sleeping.run_id, slow.run_id, s.completed.run_id]  # one has ended
    asked = await client.post("/runs/cancel", data={**form, "run": chosen}, headers=origin)
    assert asked.status_code == 200 and "Cancel 2 runs?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert s.completed.run_id not in asked.text  # ended: not offered
    assert await s.sleeping.status() == "running"  # nothing happened yet

    # Every live run matching the filters: the confirmation lists them.
    matching = await client.post(
        "/runs/cancel",
        data={"csrf": csrf_of(page), "scope": "matching", "workflow": "nightly_report"},
        headers=origin,
    )
    assert "Cancel 1 run?" in matching.text and s.sleeping.run_id in matching.text
    assert slow.run_id not in matching.text
    nothing = await client.post(
        "/runs/cancel", data={**form, "status": "completed", "scope": "matching"}, headers=origin
    )
    assert nothing.status_code == 303
    assert "No live run" in (await client.get(nothing.headers["location"])).text

    done = await client.post(
        "/runs/cancel",
        data={
            "csrf": csrf_of(page),
            "confirm": "yes",
            "run": [s.sleeping.run_id, slow.run_id],
            "reason": "cleanup",
        },
        headers=origin,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/runs?flash=")
    assert (
        "cancellation requested for 2 run(s)" in (await client.get(done.headers["location"])).text
    )
    for run in (s.sleeping, slow):
        assert await s.wait_for(run, lambda st: st == "cancelled") == "cancelled"
        end = [e for e in await run.events() if e.type.value == "run_cancelled"]
        assert end and end[0].data.get("reason") == "cleanup"
    # Cross-site: refused, nothing cancelled.
    refused = await client.post(
        "/runs/cancel", data={"confirm": "yes", "run": s.waiting.run_id}, headers=origin
    )
    assert refused.status_code == 403 and await s.waiting.status() == "running"


async def test_a_long_sleep_is_compressed_and_the_timeline_zooms(tmp_path: object) -> None:
    url, run_id = await long_gap_run("zoom-unit")
    world = open_world(url)
    await world.open()
    rec = await world.get_run(run_id)
    assert rec is not None
    events = await world.read_events(run_id)
    compressed = build_timeline(rec, events, now=rec.completed_at or 0)
    [gap] = compressed.gaps
    assert gap.label == "60.0m idle" and gap.w == GAP_WIDTH
    _, fetch, sleep, _ = compressed.rows
    attempt = next(b for b in fetch.bars if b.css == "attempt completed")
    assert attempt.w > 20  # 2 s of the 3.6 s that are not idle
    assert sleep.bars[0].w >= GAP_WIDTH  # the sleep spans the gap
    real = build_timeline(rec, events, now=rec.completed_at or 0, zoom=Zoom(compress=False))
    assert real.gaps == []
    assert next(b for b in real.rows[1].bars if "attempt" in b.css).w < 0.4
    # Zoomed in on the last steps: the window's times, bars outside it dropped.
    late = build_timeline(rec, events, now=0, zoom=Zoom(90, 100))
    assert late.window[0] > rec.created_at + 3600
    assert late.rows[1].bars == [] and late.rows[3].bars
    assert Zoom(0, 100).zoomed_in() == Zoom(25, 75) and Zoom(25, 75).zoomed_out() == Zoom()
    assert Zoom(0, 50).panned(-1) == Zoom(0, 50) and Zoom(0, 50).panned(1) == Zoom(25, 75)
    assert Zoom.parse("10-20", "real") == Zoom(10, 20, compress=False)
    assert Zoom.parse("oops") == Zoom() and Zoom.parse("50-50") == Zoom()

    async with serve(create_app(world=url)) as base, httpx.AsyncClient(base_url=base) as c:
        page = (await c.get(f"/runs/{run_id}")).text
        assert 'class="gap"' in page and "60.0m idle" in page
        assert 'id="zoom-in" href="?zoom=25-75#timeline"' in page
        assert 'href="?scale=real#timeline"' in page
        zoomed = (await c.get(f"/runs/{run_id}", params={"zoom": "25-75"})).text
        assert 'id="zoom-fit"' in zoomed and 'id="pan-left"' in zoomed
        real_page = (await c.get(f"/runs/{run_id}", params={"scale": "real"})).text
        assert 'class="gap"' not in real_page and "compress gaps" in real_page
    await world.close()
