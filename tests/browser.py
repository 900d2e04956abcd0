"""The browser fixtures of the page tests (tests/web/test_browser.py,
tests/ai/test_chat_browser.py): Debian's Chromium, driven by Playwright.

Never a downloaded browser: ``/usr/bin/chromium`` (or $DURABLY_CHROMIUM; ``apt-get install
chromium``, which ``make test`` does when it is missing). Without it a test is skipped on a
developer's machine and fails in CI (``$CI`` set), so CI cannot pass without running it.
The conftests of tests/web and tests/ai import ``page`` and ``shots`` from here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

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
    """A page of Debian's Chromium (never a downloaded browser); its console errors and
    page errors collect in ``page.problems``."""
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
