"""Fixtures for the world conformance suite.

``WORLDS`` lists one factory per world: each takes a fresh temporary folder and returns
the URL of an empty world. To run the whole suite against another world, append one
``pytest.param(factory, id="name")`` (skip it with ``marks=`` when its server is absent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from durably.worlds import World, open_world

WorldUrl = Callable[[Path], str]

WORLDS: list[object] = [
    pytest.param(lambda tmp: "memory://", id="memory"),
    pytest.param(lambda tmp: f"sqlite:///{tmp}/w.db", id="sqlite"),
]


@pytest.fixture(params=WORLDS)
def world_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty world of each kind."""
    factory: WorldUrl = request.param
    return factory(tmp_path)


@pytest.fixture
async def world(world_url: str) -> AsyncIterator[World]:
    """A fresh world of each kind, open for the test and closed after it."""
    w = open_world(world_url)
    await w.open()
    try:
        yield w
    finally:
        await w.close()
