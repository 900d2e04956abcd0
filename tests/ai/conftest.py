"""Agents on scripted models (pydantic-ai's FunctionModel; real model requests are
refused in these tests), a registry on a fresh world, and a UI-stream client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic_ai import models

from durably import Workflows


@pytest.fixture(autouse=True)
def _no_model_requests() -> Iterator[None]:
    with models.override_allow_model_requests(False):
        yield


@pytest_asyncio.fixture
async def wf(tmp_path: Path) -> AsyncIterator[Workflows]:
    reg = Workflows(world=f"sqlite:///{tmp_path / 'chat.db'}")
    yield reg
    await reg.aclose()


def user(text: str, id: str = "u1") -> dict[str, Any]:
    return {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def sse(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    stop_after: int | None = None,
) -> tuple[httpx.Headers, list[dict[str, Any]]]:
    """The ``data:`` events of a UI stream response, all of them or the first
    ``stop_after`` (then the connection is dropped)."""
    events: list[dict[str, Any]] = []
    async with client.stream(method, url, json=json_body) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if stop_after is not None and len(events) >= stop_after:
                    break
        return resp.headers, events


def texts(events: list[dict[str, Any]]) -> list[str]:
    """The text parts a client builds from ``events`` (as the AI SDK's
    processUIMessageStream does: a part per text-start, deltas appended by id), without
    the parts marked discarded."""
    parts: list[dict[str, Any]] = []
    active: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "text-start":
            active[e["id"]] = {"text": "", "discarded": False}
            parts.append(active[e["id"]])
        elif e["type"] == "text-delta":
            active[e["id"]]["text"] += e["delta"]
        elif e["type"] == "text-end":
            meta = e.get("providerMetadata") or {}
            active[e["id"]]["discarded"] = bool(meta.get("durably", {}).get("discarded"))
    return [p["text"] for p in parts if not p["discarded"]]
