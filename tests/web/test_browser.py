"""The dashboard in a real browser: Debian's Chromium, driven by Playwright.

Never a downloaded browser: ``/usr/bin/chromium`` (``apt-get install chromium``; ``make
test`` installs it when missing). Without it the test is skipped on a developer's machine
and fails in CI (``$CI`` set), so CI cannot pass without running it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durably.web import create_app

from .conftest import Scenario, SecretRun, long_gap_run, serve


async def test_runs_timeline_cancel_and_resume_in_a_browser(
    page: Any, dashboard_url: str, scenario: Scenario, shots: Path
) -> None:
    s = scenario
    from playwright.async_api import expect

    # The runs page: every run, live.
    await page.goto(dashboard_url + "/runs")
    await expect(page.locator("tr.run-row")).to_have_count(5)  # 4 runs + the child
    await expect(page.locator("#runs-rows")).to_contain_text("place_order")

    # Open the completed run from the table; its timeline shows the retried step.
    await page.locator("tr.run-row", has_text="place_order").locator("a").first.click()
    await page.wait_for_url(f"**/runs/{s.completed.run_id}")
    timeline = page.locator("#timeline")
    await expect(timeline).to_be_visible()
    row = timeline.locator("tr.tl-row", has_text="charge_card")
    await expect(row.locator("rect.attempt.retrying")).to_have_count(2)
    await expect(row.locator("rect.attempt.completed")).to_have_count(1)
    await expect(timeline.locator("tr.kind-child a.child-link")).to_be_visible()
    await expect(page.locator("#streams")).to_contain_text("lamp")
    await page.locator("#run-live").screenshot(path=str(shots / "timeline.png"))
    assert (shots / "timeline.png").stat().st_size > 5000

    # A step's detail: its error and traceback, per attempt.
    await page.goto(f"{dashboard_url}/runs/{s.failed.run_id}")
    await page.locator("#timeline a", has_text="reserve_stock").click()
    await expect(page.locator("table.attempts")).to_contain_text("RuntimeError")
    await page.locator("table.attempts summary").first.click()
    await expect(page.locator("pre.traceback").first).to_contain_text("warehouse has no sku-9")

    # Cancel the sleeping run; the page follows it live until it ends.
    await page.goto(f"{dashboard_url}/runs/{s.sleeping.run_id}")
    await expect(page.locator("#timeline tr.kind-wait")).to_contain_text("due in")
    await page.locator("#cancel-form input[name=reason]").fill("not needed")
    await page.locator("#cancel-form button").click()
    await expect(page.locator(".flash")).to_contain_text("cancellation requested")
    await expect(page.locator("#run-live .summary .badge")).to_have_text("cancelled", timeout=15000)
    assert await s.sleeping.status() == "cancelled"

    # Resume the hook with a JSON payload; the run completes with it.
    await page.goto(f"{dashboard_url}/runs/{s.waiting.run_id}")
    form = page.locator("form.resume-form")
    await form.locator("textarea").fill('{"approved": true, "note": "ok by ops"}')
    await form.locator("button").click()
    await expect(page.locator(".flash")).to_contain_text("hook RefundApproval (call 0) resumed")
    await expect(page.locator("#run-live .summary .badge")).to_have_text("completed", timeout=15000)
    assert await s.waiting.return_value(timeout=5) is True
    await expect(page.locator(".io")).to_contain_text("True")

    # No script errors and no Content-Security-Policy violations on the way.
    assert page.problems == []


async def test_decrypt_covers_the_runs_pages_for_the_session(
    page: Any, secret_run: SecretRun
) -> None:
    from playwright.async_api import expect

    run = secret_run.run
    fetch = next(s for s in await run.steps() if s.name == "fetch_order")
    async with serve(create_app(world=secret_run.world_url)) as base:
        await page.goto(f"{base}/runs/{run.run_id}")
        await expect(page.locator(".io")).to_contain_text("encrypted")
        await expect(page.locator(".io")).not_to_contain_text("o-secret")
        await page.locator("#decrypt-form button").click()
        await expect(page.locator("p.flash")).to_contain_text("data_decrypted")
        await expect(page.locator("#decrypted-note")).to_contain_text("browser session")
        await expect(page.locator(".io")).to_contain_text("tracking-o-secret")
        await expect(page.locator("#streams")).to_contain_text("lamp")
        await expect(page.locator("#events tr.ev-data_decrypted")).to_have_count(1)
        # Every page of the run, with no second press and no second record.
        await page.locator("#timeline a", has_text="fetch_order").click()
        await page.wait_for_url(f"**/runs/{run.run_id}/calls/{fetch.call}")
        await expect(page.locator("#decrypted-note")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("'o-secret'")
        await page.go_back()
        await page.reload()
        await expect(page.locator(".io")).to_contain_text("tracking-o-secret")
        await expect(page.locator("#events tr.ev-data_decrypted")).to_have_count(1)
        # Hide: the pages as stored again.
        await page.locator("#decrypted-note button").click()
        await expect(page.locator("#decrypt-form")).to_be_visible()
        await expect(page.locator(".io")).not_to_contain_text("o-secret")
        await expect(page.locator("#events tr.ev-data_decrypted")).to_have_count(1)
    assert page.problems == []


async def test_counts_states_search_and_bulk_cancel_in_a_browser(
    page: Any, dashboard_url: str, scenario: Scenario, shots: Path
) -> None:
    from playwright.async_api import expect

    from durably import start

    s = scenario
    export = await start(s.registry.workflows["export"], 250)
    await _until(lambda: _running(export))

    await page.goto(dashboard_url + "/runs")
    counts = page.locator("#counts")
    await expect(counts.locator("[data-status=failed] .n")).to_have_text("1")
    await expect(counts.locator("[data-status=completed] .n")).to_have_text("2")
    await expect(counts.locator("[data-status=running] .n")).to_have_text("3")
    waits = page.locator("#wait-counts")
    await expect(waits.locator("[data-state=sleeping] .n")).to_have_text("1")
    await expect(waits.locator("[data-state=hook] .n")).to_have_text("1")
    await expect(waits.locator("[data-state=active] .n")).to_have_text("1")

    # Each row says why: the failing step and its error, what a live run waits for.
    failed = page.locator(f"tr[data-run='{s.failed.run_id}'] td.state")
    await expect(failed).to_contain_text("FatalError")
    await expect(failed).to_contain_text("step refund")
    await expect(failed).to_contain_text("refunds are closed on Sundays")
    sleeping = page.locator(f"tr[data-run='{s.sleeping.run_id}'] td.state")
    await expect(sleeping).to_contain_text("sleep until")
    await expect(sleeping).to_contain_text("· for ")
    await expect(page.locator(f"tr[data-run='{s.waiting.run_id}'] td.state")).to_contain_text(
        "RefundApproval"
    )
    await page.screenshot(path=str(shots / "runs.png"), full_page=True)
    assert (shots / "runs.png").stat().st_size > 5000

    # A state's count filters the list.
    await waits.locator("[data-state=hook]").click()
    await expect(page.locator("tr.run-row")).to_have_count(1)
    await expect(page.locator("#runs-rows")).to_contain_text(s.waiting.run_id)

    # Search: by workflow, by attributes, by the start of a run id.
    await page.goto(dashboard_url + "/runs")
    search = page.locator("#search")
    await search.locator("input[name=workflow]").fill("restock")
    await search.locator("button").click()
    await expect(page.locator("tr.run-row")).to_have_count(1)
    await expect(page.locator("#runs-rows")).to_contain_text(s.failed.run_id)
    await search.locator("input[name=workflow]").fill("")
    await search.locator("input[name=attr]").fill("customer=c-7 stage=charging")
    await search.locator("button").click()
    await expect(page.locator("tr.run-row")).to_have_count(1)
    await expect(page.locator("#runs-rows")).to_contain_text(s.completed.run_id)
    await search.locator("input[name=attr]").fill("")
    await search.locator("input[name=q]").fill(s.sleeping.run_id[:-2].lower())
    await search.locator("button").click()
    await expect(page.locator("tr.run-row")).to_have_count(1)
    await expect(page.locator("#runs-rows")).to_contain_text(s.sleeping.run_id)

    # Bulk cancel: tick two live runs (the ticks survive the table's live refresh),
    # confirm on the next page, and both end cancelled.
    await page.goto(dashboard_url + "/runs")
    await page.locator(f"tr[data-run='{s.sleeping.run_id}'] input[name=run]").check()
    await page.locator(f"tr[data-run='{export.run_id}'] input[name=run]").check()
    await page.wait_for_timeout(2500)  # one live refresh of the table
    await expect(page.locator(f"tr[data-run='{export.run_id}'] input[name=run]")).to_be_checked()
    await expect(page.locator(f"tr[data-run='{s.failed.run_id}'] input")).to_have_count(0)
    await page.locator("#cancel-selected").click()
    await expect(page.locator("h1")).to_have_text("Cancel 2 runs?")
    await expect(page.locator("tr.confirm-row")).to_have_count(2)
    assert await s.sleeping.status() == "running"
    await page.locator("#confirm-cancel input[name=reason]").fill("cleanup")
    await page.locator("#confirm-cancel button").click()
    await expect(page.locator(".flash")).to_contain_text("cancellation requested for 2 run(s)")
    for run in (s.sleeping, export):
        assert await s.wait_for(run, lambda st: st == "cancelled") == "cancelled"
    # The counts follow live.
    counted = page.locator("#counts [data-status=cancelled] .n")
    await expect(counted).to_have_text("2", timeout=15000)
    await expect(page.locator("#counts [data-status=running] .n")).to_have_text("1", timeout=15000)
    assert page.problems == []


async def test_worker_and_lease_and_the_workers_page_in_a_browser(
    page: Any, dashboard_url: str, scenario: Scenario, shots: Path
) -> None:
    from playwright.async_api import expect

    from durably import start

    s = scenario
    export = await start(s.registry.workflows["export"], 250)
    await _until(lambda: _running(export))
    await page.goto(f"{dashboard_url}/runs/{export.run_id}")
    held = page.locator("#held")
    await expect(held).to_contain_text("held by worker")
    await expect(held).to_contain_text("step slow_export")
    await expect(held).to_contain_text("lease ends in")
    await expect(page.locator("#waiting")).to_contain_text("slow_export")
    await held.locator("a").first.click()
    await page.wait_for_url("**/workers#worker-*")
    worker = page.locator(".worker.alive")
    await expect(worker).to_have_count(1)
    await expect(worker).to_contain_text(export.run_id)
    await expect(worker).to_contain_text("step slow_export")
    await expect(page.locator("#deployments")).to_contain_text("default")
    await page.screenshot(path=str(shots / "workers.png"), full_page=True)
    assert (shots / "workers.png").stat().st_size > 5000
    await export.cancel()
    assert await s.wait_for(export, lambda st: st == "cancelled") == "cancelled"
    # The page follows live: the worker handed the step back.
    await expect(page.locator(".worker")).to_have_count(0, timeout=15000)
    await expect(page.locator("#no-workers")).to_be_visible()
    assert page.problems == []


async def test_timeline_zoom_in_a_browser(page: Any, shots: Path) -> None:
    from playwright.async_api import expect

    url, run_id = await long_gap_run("zoom-browser")
    async with serve(create_app(world=url)) as base:
        await page.goto(f"{base}/runs/{run_id}")
        timeline = page.locator("#timeline")
        # The hour of sleep is one narrow, labelled gap: the steps are wide enough to see.
        await expect(timeline.locator("thead")).to_contain_text("60.0m idle")
        fetch = timeline.locator("tr.tl-row", has_text="fetch_feed")
        wide = float(await fetch.locator("rect.attempt").get_attribute("width"))
        assert wide > 20
        await page.locator("#run-live").screenshot(path=str(shots / "timeline-gaps.png"))
        # Real time: the steps shrink to slivers; compress again, then zoom in and pan.
        await page.locator("#zoom-scale").click()
        await expect(page.locator("#zoom-scale")).to_have_text("compress gaps")
        await expect(timeline.locator("rect.gap")).to_have_count(0)
        sliver = float(await fetch.locator("rect.attempt").get_attribute("width"))
        assert sliver < 1
        await page.locator("#zoom-scale").click()
        await page.locator("#zoom-in").click()
        await page.wait_for_url("**zoom=25-75**")
        await expect(page.locator("#zoom-fit")).to_be_visible()
        await page.locator("#pan-right").click()
        await page.wait_for_url("**zoom=50-100**")
        await page.locator("#zoom-in").click()  # the last step, after the gap
        await page.wait_for_url("**zoom=62.5-87.5**")
        send = timeline.locator("tr.tl-row", has_text="send_digest")
        await expect(send.locator("rect.attempt")).to_have_count(1)
        await expect(fetch.locator("rect.attempt")).to_have_count(0)  # outside the window
        await page.locator("#zoom-fit").click()  # back to the whole run
        await expect(page.locator("#zoom-fit")).to_have_count(0)
        await expect(fetch.locator("rect.attempt")).to_have_count(1)
        # The brush: drag across the axis, from after the gap to the end.
        box = await page.locator("#brush-area").bounding_box()
        y = box["y"] + box["height"] / 2
        await page.mouse.move(box["x"] + box["width"] * 0.7, y)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] * 0.99, y, steps=5)
        await page.mouse.up()
        await page.wait_for_url("**zoom=*")
        lo, hi = (float(x) for x in page.url.split("zoom=")[1].split("#")[0].split("-"))
        assert 65 < lo < 75 and hi > 95
        await expect(page.locator("#zoom-fit")).to_be_visible()
        await expect(send.locator("rect.attempt")).to_have_count(1)
        await expect(fetch.locator("rect.attempt")).to_have_count(0)
    assert page.problems == []


async def _running(run: Any) -> bool:
    return any(x.status == "running" for x in await run.steps())


async def _until(check: Any) -> None:
    import asyncio
    import time

    until = time.monotonic() + 15
    while not await check():
        assert time.monotonic() < until, "condition not met in time"
        await asyncio.sleep(0.05)
