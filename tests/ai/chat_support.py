"""Helpers of the chat tests: UI messages, a UI-stream (SSE) client, and the text parts an
AI SDK client builds from UI chunks."""

from __future__ import annotations

import json
from typing import Any

import httpx


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
