"""The example chat page (examples/chat) in Debian's Chromium, driven by Playwright: the
AI SDK's useChat with @workflow/ai's WorkflowChatTransport against chat_app. A message's
tokens arrive live; a reload in the middle of the answer resumes it where it was (the
same text, once); a tool call is approved on the page and the run finishes.

Screenshots go to a temporary folder, or to $DURABLY_SCREENSHOTS (`make screenshots`
sets docs/)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from durably.worlds.base import RunFilter
from tests.support import serve

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "chat" / "app.py"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """examples/chat/app.py on a fresh SQLite world, its model slow enough to reload in
    the middle of an answer."""
    monkeypatch.setenv("DURABLY_WORLD", f"sqlite:///{tmp_path / 'chat.db'}")
    monkeypatch.setenv("CHAT_TOKEN_DELAY", "0.12")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = importlib.util.spec_from_file_location("chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chat_example"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("chat_example", None)


async def test_chat_page_streams_resumes_after_reload_and_approves(
    page: Any,
    shots: Path,
    example: ModuleType,
) -> None:
    from playwright.async_api import expect

    async with serve(example.app, timeout_graceful_shutdown=2) as base:
        await page.goto(base)
        await page.locator("#prompt").fill("Hello there")
        await page.locator("#send").click()
        answer = page.locator("li.assistant").first
        # Tokens arrive one after another.
        await expect(answer).to_contain_text("Hello!", timeout=15000)
        await expect(answer).to_contain_text("durable workflow", timeout=15000)
        partial = await answer.inner_text()
        assert partial != example.GREETING.strip()  # the middle of the answer
        await page.screenshot(path=str(shots / "chat-streaming.png"))

        # Reload in the middle: the page resumes the run's stream where it was.
        await page.reload()
        answer = page.locator("li.assistant")
        await expect(answer).to_have_count(1, timeout=15000)
        await expect(answer).to_have_text(example.GREETING.strip(), timeout=30000)
        await expect(page.locator("#status")).to_have_attribute("data-status", "ready")
        await expect(page.locator("li.user")).to_have_count(1)

        # A tool call, then one that needs approval.
        await page.locator("#prompt").fill("Please refund order A123")
        await page.locator("#send").click()
        approve = page.get_by_test_id("approve")
        await expect(approve).to_be_visible(timeout=30000)
        await expect(page.locator(".tool").first).to_contain_text("lookup_order")
        await expect(page.locator("li.assistant").last).to_contain_text("shipped on Monday")
        await page.screenshot(path=str(shots / "chat-approval.png"))
        await approve.click()
        done = "Done: order A123 is refunded."
        await expect(page.locator("li.assistant").last).to_contain_text(done, timeout=30000)
        await expect(page.locator("#status")).to_have_attribute("data-status", "ready")
        await expect(page.locator(".tool[data-state=output-available]")).to_have_count(2)
        await page.screenshot(path=str(shots / "chat-done.png"))

        runs = await (await example.wf.open()).list_runs(RunFilter())
        assert sorted(r.status for r in runs) == ["completed", "completed"]
    assert not [p for p in page.problems if "Failed to load resource" not in p], page.problems
