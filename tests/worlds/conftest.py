"""Fixtures for the world conformance suite.

``WORLDS`` lists one factory per world: each takes a fresh temporary folder and returns
the URL of an empty world. To run the whole suite against another world, append one
``pytest.param(factory, id="name")`` (skip it with ``marks=`` when its server is absent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from durably.testing.conformance.fixtures import two_worlds
from durably.worlds import World, open_world
from tests.worlds.postgres.support import drop_schema, fresh_url, require_postgres

WorldUrl = Callable[[Path], str]

__all__ = ["WORLDS", "two_worlds", "world", "world_url"]


def _postgres(tmp: Path) -> str:
    require_postgres()
    return fresh_url()  # a schema of its own, dropped after the test


WORLDS: list[object] = [
    pytest.param(lambda tmp: "memory://", id="memory"),
    pytest.param(lambda tmp: f"sqlite:///{tmp}/w.db", id="sqlite"),
    pytest.param(_postgres, id="postgres"),
]


@pytest.fixture(params=WORLDS)
def world_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty world of each kind."""
    factory: WorldUrl = request.param
    url = factory(tmp_path)
    if url.startswith("postgres"):
        request.addfinalizer(lambda: drop_schema(url))
    return url


@pytest.fixture
async def world(world_url: str) -> AsyncIterator[World]:
    """A fresh world of each kind, open for the test and closed after it."""
    w = open_world(world_url)
    await w.open()
    try:
        yield w
    finally:
        await w.close()
