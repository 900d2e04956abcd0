"""Fixtures of the Postgres tests: a fresh schema on the server under test, and
throwaway clusters of our own for the tests that stop and restart the server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from . import support as pg


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of an empty world: a schema of its own, dropped after the test."""
    pg.require_postgres()
    monkeypatch.setenv("DURABLY_ENCRYPTION_KEY", pg.TEST_KEY)
    url = pg.fresh_url()
    yield url
    pg.drop_schema(url)


@pytest.fixture
def cluster() -> Iterator[pg.Cluster]:
    """A running throwaway cluster (initdb, pg_ctl) on a free port, removed after."""
    reason = pg.Cluster.available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no throwaway cluster can be made: {reason}")
        pytest.skip(reason)
    c = pg.Cluster()
    c.init()
    c.start()
    try:
        yield c
    finally:
        c.destroy()
