"""The fixtures of the conformance suite: ``world_url`` from ``--world`` (each test gets
an empty world), ``world``, that world opened for the test and closed after it, and
``two_worlds``, two world objects on one empty store (two workers racing)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ...worlds import World, open_world

__all__ = ["shared_store_url", "two_worlds", "world", "world_url", "world_url_from_option"]


def world_url_from_option(template: str | None, tmp_path: Path) -> str:
    """The URL of an empty world for one test, from ``--world``: ``{tmp}`` is a fresh
    temporary folder, ``{unique}`` a fresh name."""
    if not template:
        raise pytest.UsageError(
            "the durably conformance suite needs the world to test: "
            "pytest --pyargs durably.testing.conformance --world URL"
        )
    return template.replace("{tmp}", str(tmp_path)).replace("{unique}", uuid.uuid4().hex[:12])


@pytest.fixture
def world_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty world: ``--world`` with its placeholders filled in."""
    return world_url_from_option(request.config.getoption("--world"), tmp_path)


@pytest_asyncio.fixture
async def world(world_url: str) -> AsyncIterator[World]:
    """The world under test, opened for the test and closed after it."""
    w = open_world(world_url)
    await w.open()
    try:
        yield w
    finally:
        await w.close()


def shared_store_url(url: str) -> str:
    """``url``, such that every world object opened on it shares one store: a bare
    ``memory://`` is private to the object that opens it, so it gets a fresh name."""
    if url == "memory://":
        return f"memory://shared-{uuid.uuid4().hex[:12]}"
    return url


@pytest_asyncio.fixture
async def two_worlds(world_url: str) -> AsyncIterator[tuple[World, World]]:
    """Two world objects on one empty store (two connections or pools, as two worker
    processes would have), opened for the test and closed after it."""
    url = shared_store_url(world_url)
    first, second = open_world(url), open_world(url)
    await first.open()
    try:
        await second.open()
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()
