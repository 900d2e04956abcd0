"""Chunk latency from a model's delta to a chat client: durably's chat_app against the
plain pydantic-ai Vercel AI adapter, streaming the same offline model, in one run.

A FunctionModel streams tokens 20 ms apart, each token carrying the moment it was
yielded; a client (httpx, over loopback HTTP to uvicorn) notes when the ``text-delta``
holding it arrives. Both servers and the client share this process and its clock.

- ``plain``: ``VercelAIAdapter.dispatch_request`` (pydantic-ai streaming straight into
  the HTTP response, nothing durable).
- ``durably (sqlite)`` / ``durably (memory)``: a workflow running ``stream_chat`` on an
  agent with ``DurablyDurability``; the model step writes each chunk to the run's stream,
  ``chat_app`` reads it and answers the POST (the durable path: stored, encrypted,
  read back).

    .venv/bin/python bench/chat_latency.py [--chats 5] [--tokens 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pydantic_ai.models
import uvicorn
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from durably import Workflows
from durably.ai import DurablyDurability, chat_app, stream_chat

pydantic_ai.models.ALLOW_MODEL_REQUESTS = False
GAP = 0.02


def model(tokens: int) -> FunctionModel:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for _ in range(tokens):
            await asyncio.sleep(GAP)
            yield f"<{time.perf_counter_ns()}>"

    return FunctionModel(stream_function=stream)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def chat(client: httpx.AsyncClient, url: str, n: int) -> list[float]:
    """One chat turn; the latency of each token, in milliseconds."""
    body = {
        "trigger": "submit-message",
        "id": f"chat-{n}",
        "messages": [{"id": f"u{n}", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    }
    out: list[float] = []
    async with client.stream("POST", url, json=body) as resp:
        async for line in resp.aiter_lines():
            arrived = time.perf_counter_ns()
            if line.startswith("data: ") and '"text-delta"' in line:
                for part in line.split("<")[1:]:
                    out.append((arrived - int(part.split(">")[0])) / 1e6)
    return out


async def measure(url: str, chats: int) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60) as client:
        await chat(client, url, -1)  # warm up
        for n in range(chats):
            latencies += await chat(client, url, n)
    return latencies


def durable_app(world: str, tokens: int) -> tuple[Workflows, Any]:
    wf = Workflows(world=world)
    agent = Agent(model(tokens), name="bench", capabilities=[DurablyDurability()])

    @wf.workflow
    async def bench_chat(messages: list[dict[str, Any]]) -> str:
        return await stream_chat(agent, messages)

    return wf, chat_app(wf, bench_chat)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=40)
    args = parser.parse_args()

    plain_agent = Agent(model(args.tokens), name="bench")

    async def plain(request: Request) -> Response:
        return await VercelAIAdapter.dispatch_request(request, agent=plain_agent, sdk_version=6)

    results: dict[str, list[float]] = {}
    async with serve(Starlette(routes=[Route("/api/chat", plain, methods=["POST"])])) as base:
        results["plain pydantic-ai adapter"] = await measure(f"{base}/api/chat", args.chats)
    with tempfile.TemporaryDirectory() as tmp:
        for label, world in [
            ("durably chat_app (sqlite)", f"sqlite:///{Path(tmp) / 'bench.db'}"),
            ("durably chat_app (memory)", "memory://bench"),
        ]:
            wf, app = durable_app(world, args.tokens)
            async with serve(app) as base:
                results[label] = await measure(f"{base}/api/chat", args.chats)
            await wf.aclose()

    print(f"chunk latency, model delta -> client ({args.chats} chats x {args.tokens} tokens)")
    print(f"{'':28} {'median ms':>10} {'p95 ms':>8} {'n':>5}")
    for label, values in results.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{label:28} {statistics.median(values):10.2f} {p95:8.2f} {len(values):5}")


if __name__ == "__main__":
    asyncio.run(main())
