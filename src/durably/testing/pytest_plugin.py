"""durably's pytest plugin (entry point ``pytest11``): loaded by pytest wherever durably
is installed.

Fixtures (async ones need pytest-asyncio, as any async test does):

* ``durably_wf``: a fresh registry on a private ``memory://`` world, its embedded worker
  running, closed after the test. Register the workflows under test on it.
* ``durably_skipping_wf``: the same under :func:`~durably.testing.time_skipping`: its
  timers fire as soon as it is idle; ``durably_skipping_wf.clock`` is the virtual clock.
* ``durably_time_skipping``: ``clock = await durably_time_skipping(wf)`` puts an existing
  registry (your application's) under time skipping until the test ends.
* ``durably_resume_hook``: :func:`~durably.testing.resume_when_waiting`, and
  ``durably_read_stream``: :func:`~durably.testing.read_stream`.

Option ``--world URL``: the world the conformance suite
(``pytest --pyargs durably.testing.conformance --world URL``) tests; see
:mod:`durably.testing.conformance`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from ..clock import VirtualClock
from ..registry import Workflows
from .helpers import read_stream, resume_when_waiting
from .timeskip import time_skipping

_F = TypeVar("_F", bound=Callable[..., Any])

try:  # async fixtures in pytest-asyncio's strict mode need its own decorator
    import pytest_asyncio

    _fixture: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - without it, async tests need another plugin
    _fixture = pytest.fixture


def _async_fixture(fn: _F) -> _F:
    return cast(_F, _fixture(fn))


__all__ = [
    "durably_read_stream",
    "durably_resume_hook",
    "durably_skipping_wf",
    "durably_time_skipping",
    "durably_wf",
    "pytest_addoption",
    "pytest_collection_modifyitems",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--world URL`` (the world under test of the conformance suite)."""
    group = parser.getgroup("durably")
    group.addoption(
        "--world",
        action="store",
        default=None,
        metavar="URL",
        help=(
            "the world the durably conformance suite tests "
            "(pytest --pyargs durably.testing.conformance --world URL); '{tmp}' in the URL "
            "is a fresh temporary folder per test, '{unique}' a fresh name per test"
        ),
    )


_CONFORMANCE = Path(__file__).parent / "conformance"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run the shipped conformance suite without ``--world`` (once, clearly,
    rather than an error per test)."""
    if config.getoption("--world"):
        return
    if any(_CONFORMANCE in Path(str(item.path)).parents for item in items):
        raise pytest.UsageError(
            "the durably conformance suite needs the world to test: pytest --pyargs "
            "durably.testing.conformance --world URL ('{tmp}' in the URL is a fresh "
            "temporary folder per test, '{unique}' a fresh name per test)"
        )


@_async_fixture
async def durably_wf() -> AsyncIterator[Workflows]:
    """A fresh registry on a private ``memory://`` world, closed after the test."""
    wf = Workflows(world="memory://")
    try:
        yield wf
    finally:
        await wf.aclose()


@_async_fixture
async def durably_skipping_wf(durably_wf: Workflows) -> AsyncIterator[Workflows]:
    """:func:`durably_wf` under time skipping (its ``clock`` is the virtual clock)."""
    async with time_skipping(durably_wf):
        yield durably_wf


@_async_fixture
async def durably_time_skipping() -> AsyncIterator[Callable[..., Awaitable[VirtualClock]]]:
    """A function putting a registry under time skipping until the test ends:
    ``clock = await durably_time_skipping(wf)`` (it returns the virtual clock)."""
    async with contextlib.AsyncExitStack() as stack:

        async def enter(wf: Workflows, *, auto: bool = True) -> VirtualClock:
            return await stack.enter_async_context(time_skipping(wf, auto=auto))

        yield enter


@pytest.fixture
def durably_resume_hook() -> Callable[..., Awaitable[str]]:
    """:func:`durably.testing.resume_when_waiting`: resume a hook once a run waits on it."""
    return resume_when_waiting


@pytest.fixture
def durably_read_stream() -> Callable[..., Awaitable[list[Any]]]:
    """:func:`durably.testing.read_stream`: a run's stream, read to its close."""
    return read_stream
