"""A run's stream as server-sent events.

Each chunk is one event whose ``id`` is the chunk's index and whose ``data`` is the
chunk's value as JSON (see :mod:`durably.http.payloads`). A client that reconnects sends
the last id it saw as ``Last-Event-ID`` (browsers' ``EventSource`` does it by itself) and
gets exactly the rest. When the stream is closed a last event of type ``end`` (without an
id) says so: an ``EventSource`` should ``close()`` on it rather than reconnect. A comment
line is sent while nothing is written, so that proxies keep the connection open.

With ``?committed=true`` the events are those of a committed reader
(``Run.readable(committed=True)``): only chunks of step attempts whose completion is
recorded, each sent once its attempt completed; ids are still chunk indexes (with gaps
where a failed or killed attempt's chunks were skipped), so ``Last-Event-ID`` resumes
exactly as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from .. import serde
from ..worlds.base import StreamChunk
from .payloads import to_json_text

__all__ = ["KEEPALIVE", "sse_events"]

#: The comment sent while the stream is idle.
KEEPALIVE = ": keep-alive\n\n"


def _event(data: str, *, event: str | None = None, id: int | None = None) -> str:
    head = ""
    if event is not None:
        head += f"event: {event}\n"
    if id is not None:
        head += f"id: {id}\n"
    # JSON text has no raw line breaks, so one data line always suffices.
    return f"{head}data: {data}\n\n"


async def sse_events(
    chunks: AsyncIterator[StreamChunk], *, where: str, heartbeat: float
) -> AsyncIterator[str]:
    """Server-sent events for ``chunks`` (from :meth:`durably.Run.chunks`), then ``end``.

    A chunk that cannot be read ends the stream with an ``error`` event carrying
    ``{"error", "detail"}``.
    """
    pending: asyncio.Future[StreamChunk] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(chunks))
            # Wait for the next chunk without cancelling the read when the heartbeat is
            # due: cancelling an async generator mid-read would end it.
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield KEEPALIVE
                continue
            task, pending = pending, None
            try:
                chunk = task.result()
                text = to_json_text(serde.decode(chunk.payload, where=where), where=where)
            except StopAsyncIteration:
                yield _event("{}", event="end")
                return
            except Exception as e:
                detail = f"{type(e).__name__}: {e}"
                yield _event(
                    json.dumps({"error": "stream_read_failed", "detail": detail}), event="error"
                )
                return
            yield _event(text, id=chunk.index)
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})  # let the read finish before closing the reader
            if not pending.cancelled():
                pending.exception()  # retrieved: no "exception never retrieved" warning
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
