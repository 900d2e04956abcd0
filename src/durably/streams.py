"""Durable streams: output a step writes and any process can read, live or later.

In a step, ``get_writable()`` returns a :class:`Writable`; ``await w.write(value)`` and
``await w.close()``. A workflow body may call ``get_writable()`` too and pass the
writable to steps. Chunks get consecutive indexes from 0 per (run, namespace), and a
reader that reconnects with ``start_index=last_seen + 1`` gets exactly the rest.

Chunks are batched: the writes of every step of a worker go to the world together, a
few milliseconds apart, so many small chunks cost few transactions. A step's chunks are
all stored before its completion is recorded. A step that is retried writes its chunks
again (steps run at least once); write idempotent chunks or key them by ``step_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from . import serde
from .errors import PayloadTooLargeError
from .runtime.context import SERVICES, STEP, check_attempt_live, current_instance
from .runtime.limits import Limits
from .worlds.base import ChunkBatch, World

__all__ = ["StreamWriter", "Writable", "get_writable"]

#: How long written chunks may wait to be batched before they are stored.
FLUSH_DELAY = 0.002
#: Past this much buffered data, ``write()`` waits for a flush (back-pressure).
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
#: A writer gives the event loop a turn every this many chunks.
YIELD_EVERY = 64


@dataclass
class Writable:
    """A stream of a run, to write to from a step. Serializable: pass it to steps."""

    run_id: str
    namespace: str = ""
    value_type: Any = field(default=None, repr=False, compare=False)

    def _writer(self) -> StreamWriter:
        services = SERVICES.get()
        if services is None:
            where = "a workflow body" if current_instance() is not None else "here"
            raise RuntimeError(
                f"a stream cannot be written from {where}: write from a step (pass the "
                "writable to the step as an argument)"
            )
        check_attempt_live("a stream write")
        writer: StreamWriter = services.streams
        return writer

    async def write(self, value: Any) -> None:
        """Append a chunk (batched; readable within milliseconds).

        Raises:
            PayloadTooLargeError: the encoded chunk is over the registry's payload limit.
        """
        writer = self._writer()
        if self.value_type is not None:
            value = serde.validate(
                value, self.value_type, where=f"a chunk of stream {self.namespace!r}"
            )
        where = f"a chunk of stream {self.namespace or '(default)'!r}"
        data = serde.encode(value, where=where)
        if len(data) > writer.max_chunk_bytes:
            raise PayloadTooLargeError(
                f"{where} is {len(data):,} bytes serialized, over the limit of "
                f"{writer.max_chunk_bytes:,} bytes per payload (Workflows(limits=...)); "
                "write smaller chunks, or store large data elsewhere and write a reference"
            )
        writer.write(self.run_id, self.namespace, data)
        if writer.buffered > MAX_BUFFERED_BYTES:
            await writer.drain(self.run_id)
        elif writer.queued % YIELD_EVERY == 0:
            # A tight loop of writes would otherwise never let the flush (and readers in
            # this process) run before the step ends.
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Close the stream: readers end after its last chunk. Durable when it returns."""
        writer = self._writer()
        writer.close(self.run_id, self.namespace)
        await writer.drain(self.run_id)


def get_writable(namespace: str | None = None, type: Any = None) -> Writable:
    """The run's stream ``namespace`` (the default stream when ``None``).

    Call it in a step, or in a workflow body to pass to steps. ``type`` validates each
    chunk written through this writable.
    """
    meta = STEP.get()
    if meta is not None:
        run_id = meta.run_id
    else:
        inst = current_instance()
        if inst is None:
            raise RuntimeError("get_writable() works only inside a step or a workflow body")
        run_id = inst.run_id
    return Writable(run_id, namespace or "", type)


class StreamWriter:
    """Batches the chunks of every step of one worker into few world transactions.

    Args:
        world: where the chunks are stored.
        max_chunk_bytes: the largest encoded chunk ``Writable.write`` accepts (the
            registry's ``Limits.max_payload_bytes``).
    """

    def __init__(self, world: World, *, max_chunk_bytes: int | None = None) -> None:
        self.world = world
        self.max_chunk_bytes = (
            Limits().max_payload_bytes if max_chunk_bytes is None else max_chunk_bytes
        )
        self.buffered = 0
        self.queued = 0
        self._pending: dict[tuple[str, str], list[bytes]] = {}
        self._closing: set[tuple[str, str]] = set()
        self._waiters: list[asyncio.Future[None]] = []
        #: What storing a run's chunks raised, reported by that run's next drain().
        self._failed: dict[str, BaseException] = {}
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def write(self, run_id: str, namespace: str, data: bytes) -> None:
        """Queue a chunk; it is stored within ``FLUSH_DELAY``."""
        self._pending.setdefault((run_id, namespace), []).append(data)
        self.buffered += len(data)
        self.queued += 1
        self._schedule(FLUSH_DELAY)

    def close(self, run_id: str, namespace: str) -> None:
        """Queue the closing of a stream (after its queued chunks)."""
        self._closing.add((run_id, namespace))
        self._schedule(0.0)

    async def drain(self, run_id: str | None = None) -> None:
        """Wait until everything queued so far is stored; then raise what storing the
        chunks of ``run_id`` raised, if anything (other runs' failures stay theirs)."""
        if self._pending or self._closing or self._task is not None:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            self._schedule(0.0)
            await fut
        if run_id is not None:
            error = self._failed.pop(run_id, None)
            if error is not None:
                raise error

    def _schedule(self, delay: float) -> None:
        if self._task is not None:
            return  # the running flush picks it up
        loop = asyncio.get_running_loop()
        if delay <= 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._task = loop.create_task(self._flush())
        elif self._timer is None:
            self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending or self._closing or self._waiters:
                pending, self._pending = self._pending, {}
                closing, self._closing = self._closing, set()
                waiters, self._waiters = self._waiters, []
                self.buffered = 0
                keys = list(pending) + [k for k in closing if k not in pending]
                batches = [
                    ChunkBatch(rid, ns, pending.get((rid, ns), []), (rid, ns) in closing)
                    for rid, ns in keys
                ]
                if batches:
                    await self._store(batches)
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        finally:
            self._task = None

    async def _store(self, batches: list[ChunkBatch]) -> None:
        """Store the batches together; if that fails, each on its own, so one run's
        error (a write to a closed stream) never costs another run its chunks."""
        try:
            await self.world.append_chunks(batches)
            return
        except Exception as e:
            if len(batches) == 1:
                self._failed[batches[0].run_id] = e
                return
        for batch in batches:
            try:
                await self.world.append_chunks([batch])
            except Exception as e:
                self._failed[batch.run_id] = e

    async def aclose(self) -> None:
        """Store what is queued (on worker stop)."""
        with contextlib.suppress(Exception):
            await self.drain()
