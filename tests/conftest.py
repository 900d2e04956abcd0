"""Shared fixtures: registries on every built-in world, with and without the sticky cache.

``make_wf`` builds registries on the world under test. The ``replay`` mode turns the
sticky cache off (``DURABLY_MAX_CACHED_RUNS=0``), so every event replays the body from the
start of its log: each runtime test then doubles as a replay-determinism test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import settings

from durably import Workflows
from tests.worlds.postgres import support as pg

WORLDS = ["memory", "sqlite", "postgres"]

# Property tests (hypothesis): no deadline (the machine is shared and noisy), a bounded
# number of examples each so the suite stays quick; in CI the examples are derived from
# each test's name (derandomize) so a run is repeatable, and no example database is kept.
# HYPOTHESIS_PROFILE=thorough runs many more examples by hand.
settings.register_profile("dev", max_examples=150, deadline=None)
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, database=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def world_url_for(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return f"memory://{tmp_path.name}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'durably.db'}"
    if kind == "postgres":
        return pg.fresh_url()
    raise ValueError(kind)


@pytest.fixture(params=WORLDS)
def world_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "postgres":
        # A schema of its own per test (dropped after it), and the key a postgres
        # world needs (it has no default).
        pg.require_postgres()
        monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", pg.TEST_KEY)
        url = pg.fresh_url()
        request.addfinalizer(lambda: pg.drop_schema(url))
        return url
    return world_url_for(request.param, tmp_path)


@pytest.fixture(params=["sticky", "replay"])
def cache_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "replay":
        monkeypatch.setenv("DURABLY_MAX_CACHED_RUNS", "0")
    return str(request.param)


@pytest_asyncio.fixture
async def make_wf(world_url: str, cache_mode: str) -> AsyncIterator[Callable[..., Workflows]]:
    made: list[Workflows] = []

    def make(**kwargs: Any) -> Workflows:
        kwargs.setdefault("world", world_url)
        wf = Workflows(**kwargs)
        made.append(wf)
        return wf

    yield make
    for wf in made:
        await wf.aclose()


@pytest_asyncio.fixture
async def wf(make_wf: Callable[..., Workflows]) -> Workflows:
    return make_wf()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DURABLY_WORLD", "DURABLY_NAMESPACE", "DURABLY_DEPLOYMENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
