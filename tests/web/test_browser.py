"""The dashboard in a real browser: Debian's Chromium, driven by Playwright.

Never a downloaded browser: ``/usr/bin/chromium`` (``apt-get install chromium``; ``make
test`` installs it when missing). Without it the test is skipped on a developer's machine
and fails in CI (``$CI`` set), so CI cannot pass without running it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from durably.web import create_app

from .conftest import Scenario, SecretRun, serve

CHROMIUM = os.environ.get("DURABLY_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: a temporary folder, so that a test run leaves the clone clean;
    `make screenshots` sets $DURABLY_SCREENSHOTS to docs/ to refresh the README's."""
    folder = Path(os.environ.get("DURABLY_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (apt-get install chromium)")
    pytest.skip(reason)


@pytest_asyncio.fixture
async def page() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            pg = await context.new_page()
            problems: list[str] = []
            pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: problems.append(str(e)))
            pg.problems = problems
            yield pg
        finally:
            await browser.close()


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


async def test_decrypt_in_a_browser(page: Any, secret_run: SecretRun) -> None:
    from playwright.async_api import expect

    run = secret_run.run
    async with serve(create_app(world=secret_run.world_url)) as base:
        await page.goto(f"{base}/runs/{run.run_id}")
        await expect(page.locator(".io")).to_contain_text("encrypted")
        await expect(page.locator(".io")).not_to_contain_text("o-secret")
        await page.locator("#decrypt-form button").click()
        await expect(page.locator("#decrypted-note")).to_contain_text("data_decrypted")
        await expect(page.locator(".io")).to_contain_text("tracking-o-secret")
        await expect(page.locator("#events tr.ev-data_decrypted")).to_have_count(1)
        await page.locator("#decrypted-note a").click()  # back to the page as stored
        await expect(page.locator("#decrypt-form")).to_be_visible()
        await expect(page.locator(".io")).not_to_contain_text("o-secret")
        await expect(page.locator("#events tr.ev-data_decrypted")).to_have_count(1)
    assert page.problems == []
