"""Helpers shared by test packages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn server on a free 127.0.0.1 port in the test's
    event loop; yields its base URL. ``config`` adds uvicorn.Config options."""
    cfg = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **config
    )
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def live_hook_token(wf: Any, run_id: str) -> str:
    """The token of the run's (first) live hook, once it has one: the index holds only
    a digest of it, so the token is read back from the sealed ``hook_created`` event."""
    world = await wf.open()
    control = await wf.control()
    for _ in range(3000):
        hooks = await world.list_hooks(run_id=run_id)
        if hooks:
            return str((await control.reveal_hook(hooks[-1])).token)
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never created a hook")
