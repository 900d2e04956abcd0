"""A real uvicorn server in the test's event loop, and a small SSE client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio

from durably import Workflows
from tests.support import serve as serve_app


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port (SSE responses end within 2 s of shutdown)."""
    async with serve_app(app, timeout_graceful_shutdown=2) as url:
        yield url


@pytest_asyncio.fixture
async def registry(world_url: str) -> AsyncIterator[Workflows]:
    wf = Workflows(world=world_url)
    yield wf
    await wf.aclose()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


@dataclass
class Event:
    """One server-sent event."""

    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    stop: Callable[[list[Event]], bool] | None = None,
    comments: list[str] | None = None,
) -> list[Event]:
    """Read events from ``url`` until the server ends the response, or until ``stop``
    says so (then the connection is dropped)."""
    events: list[Event] = []
    async with client.stream("GET", url, headers=headers) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in resp.aiter_lines():
            if line.startswith(":"):
                if comments is not None:
                    comments.append(line)
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
                continue
            if fields:
                events.append(
                    Event(fields.get("event", "message"), fields.get("data", ""), fields.get("id"))
                )
                fields = {}
                if stop is not None and stop(events):
                    break
    return events
