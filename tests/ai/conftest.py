"""Offline only: pydantic-ai may not reach a model provider from the tests. A registry on a
fresh SQLite world for the chat tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pydantic_ai.models
import pytest_asyncio

from durably import Workflows
from tests.browser import page, shots  # noqa: F401 (test_chat_browser.py's fixtures)

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False


@pytest_asyncio.fixture
async def wf(tmp_path: Path) -> AsyncIterator[Workflows]:
    reg = Workflows(world=f"sqlite:///{tmp_path / 'chat.db'}")
    yield reg
    await reg.aclose()
