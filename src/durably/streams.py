"""Durable streams: output a step writes and any process can read, live or later.

In a step, ``get_writable()`` returns a :class:`Writable`; ``await w.write(value)`` and
``await w.close()``. A workflow body may call ``get_writable()`` too and pass the
writable to steps. Chunks get consecutive indexes from 0 per (run, namespace), and a
reader that reconnects with ``start_index=last_seen + 1`` gets exactly the rest.

Chunks are batched: the writes of every step of a worker go to the world together, a
few milliseconds apart, so many small chunks cost few transactions. A step's chunks are
all stored before its completion is recorded. A step that is retried writes its chunks
again (steps run at least once): each chunk records the step attempt that wrote it
(``StreamChunk.call``, ``.attempt``).

Readers (:func:`read_stream`, behind ``Run.readable``/``Run.chunks``, the HTTP stream
and ``durably inspect streams``) are live by default: every chunk as soon as it is
stored, those of attempts that later failed or were killed included. A committed reader
(``committed=True``) yields only the chunks of attempts whose completion is recorded,
in index order, waiting for each attempt to end; it reads that from the run's steps
projection (status and recorded attempt count), once per change of the run. A negative
``start_index`` counts from the end of the chunks written when reading starts.

A close records the step attempt that closed it. If that attempt does not complete (it
fails, or its worker dies between ``close()`` and the recording of its completion), the
stream is not closed for the step's retry: the retry's first write or close reopens it
(the world accepts a later attempt of the step that closed it, and nobody else). A live
reader ends at every close it meets, one that a retry later reopens included; a
committed reader ends at a close only when it is final: the closing attempt's step has
ended (completed, failed or cancelled), or the run has, or the close was not a step
attempt's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from . import serde
from .errors import PayloadTooLargeError, RunNotFoundError
from .runtime.context import SERVICES, STEP, check_attempt_live, current_instance
from .runtime.limits import Limits
from .worlds.base import TERMINAL_STATUSES, ChunkBatch, StepRecord, StreamChunk, World

__all__ = ["StreamWriter", "Writable", "get_writable", "read_stream", "resolve_start"]

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
        writer.write(self.run_id, self.namespace, data, _attempt_writing(self.run_id))
        if writer.buffered > MAX_BUFFERED_BYTES:
            await writer.drain(self.run_id)
        elif writer.queued % YIELD_EVERY == 0:
            # A tight loop of writes would otherwise never let the flush (and readers in
            # this process) run before the step ends.
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Close the stream: readers end after its last chunk.

        When it returns, the close is stored, with the step attempt that closed it, and
        no more chunks are accepted, except from a retry of this step: if this attempt
        does not complete (it fails, or its worker dies before its completion is
        recorded), the next attempt's first write or close reopens the stream and its own
        close closes it again. Live readers end at the close at once, even one that a
        retry later reopens; committed readers (``committed=True``) end at it only when
        it is final: the closing attempt completed (or the step ended otherwise, or the
        run ended).
        """
        writer = self._writer()
        writer.close(self.run_id, self.namespace, _attempt_writing(self.run_id))
        await writer.drain(self.run_id)


def _attempt_writing(run_id: str) -> tuple[int | None, int]:
    """The ``(call, attempt)`` of the running step, if it is a step of ``run_id``; a
    writable passed to a step of another run records ``(None, 0)`` (committed at once:
    that run's steps say nothing about this run's attempts)."""
    meta = STEP.get()
    if meta is None or meta.run_id != run_id or meta.call is None:
        return (None, 0)
    return (meta.call, meta.attempt)


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
        self._writers: dict[tuple[str, str], list[tuple[int | None, int]]] = {}
        #: Streams to close, with the step attempt closing each.
        self._closing: dict[tuple[str, str], tuple[int | None, int]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        #: What storing a run's chunks raised, reported by that run's next drain().
        self._failed: dict[str, BaseException] = {}
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def write(
        self,
        run_id: str,
        namespace: str,
        data: bytes,
        writer: tuple[int | None, int] = (None, 0),
    ) -> None:
        """Queue a chunk written by step attempt ``writer`` (``(call, attempt)``; ``(None,
        0)``: not a step attempt of the run); it is stored within ``FLUSH_DELAY``."""
        key = (run_id, namespace)
        self._pending.setdefault(key, []).append(data)
        self._writers.setdefault(key, []).append(writer)
        self.buffered += len(data)
        self.queued += 1
        self._schedule(FLUSH_DELAY)

    def close(
        self, run_id: str, namespace: str, closer: tuple[int | None, int] = (None, 0)
    ) -> None:
        """Queue the closing of a stream (after its queued chunks) by step attempt
        ``closer`` (``(call, attempt)``, as for :meth:`write`)."""
        self._closing[(run_id, namespace)] = closer
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
                writers, self._writers = self._writers, {}
                closing, self._closing = self._closing, {}
                waiters, self._waiters = self._waiters, []
                self.buffered = 0
                keys = list(pending) + [k for k in closing if k not in pending]
                batches = [
                    ChunkBatch(
                        rid,
                        ns,
                        pending.get((rid, ns), []),
                        (rid, ns) in closing,
                        writers.get((rid, ns), []),
                        closing.get((rid, ns), (None, 0)),
                    )
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


# -- readers -----------------------------------------------------------------------------

#: How long a reader waits for news before it looks again (a backstop: wake-ups come
#: sooner from the world).
READ_WAIT = 5.0
#: A committed reader holds at most about this many chunks whose attempt is undecided.
MAX_HELD = 1000
#: Statuses of a step that will run no more attempts.
_STEP_ENDED = frozenset({"completed", "failed", "cancelled"})


async def resolve_start(world: World, run_id: str, namespace: str, start_index: int) -> int:
    """``start_index`` as an index from 0: a negative one counts from the end of the
    chunks written so far (``-1`` is the last; more negative than their count is 0)."""
    if start_index >= 0:
        return start_index
    infos = await world.stream_info(run_id)
    count = next((i.count for i in infos if i.namespace == namespace), 0)
    return max(count + start_index, 0)


class _Commits:
    """Which step attempts of a run are committed, as a committed reader learns it.

    Read from the ``steps`` projection: a chunk of (call, attempt) is committed when the
    step's status is ``completed`` with that attempt recorded; it never will be when the
    step failed for good, completed with another attempt, has moved on to a later
    attempt (a retry was scheduled, or the attempt's lease expired and the step was
    claimed again: a killed attempt), is ``retrying`` after that very attempt, or the run
    ended without completing it. Otherwise the attempt may still commit: the reader
    waits. The run is read before its steps, so that a run seen ended has final steps.
    One read of the run and its steps answers every chunk held, and is made again only
    after something happened (the run's log grew, or a chunk of an attempt not seen
    before arrived).
    """

    def __init__(self, world: World, run_id: str) -> None:
        self.world = world
        self.run_id = run_id
        self.steps: dict[int, StepRecord] = {}
        self.ended = False
        self.last_seq = 0
        #: Nothing happened since the last read: reading again would tell nothing new.
        self.fresh = False
        self._seen: set[tuple[int | None, int]] = set()

    def note(self, chunks: list[StreamChunk]) -> None:
        """A chunk of an attempt not seen before is news (a retry has begun)."""
        for c in chunks:
            if (c.call, c.attempt) not in self._seen:
                self._seen.add((c.call, c.attempt))
                self.fresh = False

    async def refresh(self) -> None:
        """Read the run, then its steps."""
        rec = await self.world.get_run(self.run_id)
        if rec is None:
            raise RunNotFoundError(self.run_id, self.world.url)
        self.ended = rec.status in TERMINAL_STATUSES
        self.last_seq = rec.last_seq
        self.steps = {s.call: s for s in await self.world.list_steps(self.run_id)}
        self.fresh = True

    def close_final(self, call: int | None) -> bool:
        """Whether a close by an attempt of step ``call`` (``None``: not by a step
        attempt) is final: no retry of that step can reopen the stream any more."""
        if call is None or self.ended:
            return True
        step = self.steps.get(call)
        return step is not None and step.status in _STEP_ENDED

    def verdict(self, chunk: StreamChunk) -> bool | None:
        """Whether ``chunk``'s attempt is committed; ``None``: not decided yet."""
        if chunk.call is None or chunk.attempt <= 0:
            return True  # not written by a step attempt (or before attempts were stored)
        step = self.steps.get(chunk.call)
        if step is None:
            return False if self.ended else None
        if step.status == "completed":
            return step.attempts == chunk.attempt
        if step.status == "failed" or step.attempts > chunk.attempt:
            return False
        if step.status == "retrying" and step.attempts == chunk.attempt:
            return False
        return False if self.ended else None


async def read_stream(
    world: World,
    run_id: str,
    namespace: str = "",
    start_index: int = 0,
    *,
    committed: bool = False,
    follow: bool = True,
) -> AsyncIterator[StreamChunk]:
    """The chunks of a run's stream from ``start_index``, in index order.

    Live (``committed=False``): every chunk as soon as it is stored, whichever attempt
    wrote it; ``committed`` is ``True`` on chunks not written by a step attempt and
    ``None`` on the others (not checked). Committed: only chunks whose attempt's
    completion is recorded (see :class:`_Commits`), each after that completion, with
    ``committed=True``; the chunks of attempts that failed or were killed are skipped.
    Following, a live reader ends at the stream's close, even a close by an attempt
    that does not complete (its retry then reopens the stream); a committed reader ends
    only at a final close (see the module's notes).

    Args:
        world: the world to read (payloads are returned as stored).
        run_id: the run.
        namespace: the stream (``""``: the default one).
        start_index: the first index; negative counts from the end of the chunks written
            when reading starts (``-1``: the last one).
        committed: keep to the chunks of committed attempts.
        follow: tail the stream until it is closed (or the run ended without opening
            it); ``False`` stops at what can be yielded now.

    Raises:
        RunNotFoundError: the run does not exist.
    """
    index = await resolve_start(world, run_id, namespace, start_index)
    commits = _Commits(world, run_id) if committed else None
    held: deque[StreamChunk] = deque()
    closed = False  # the stream is closed and every chunk of it has been read
    last_look = False  # the run has ended: one more read, then stop
    while True:
        got = False
        reopenable = False  # closed by an attempt whose step may yet retry (committed)
        if not closed and len(held) < MAX_HELD:
            chunks, closed = await world.read_chunks(run_id, namespace, start_index=index)
            if chunks:
                index = chunks[-1].index + 1
                got = True
            if commits is None:
                for c in chunks:
                    yield dataclasses.replace(c, committed=True) if c.call is None else c
            else:
                commits.note(chunks)
                held.extend(chunks)
        if commits is not None:
            while held:
                verdict = commits.verdict(held[0])
                if verdict is None and not commits.fresh:
                    await commits.refresh()
                    verdict = commits.verdict(held[0])
                if verdict is None:
                    break
                chunk = held.popleft()
                if verdict:
                    yield dataclasses.replace(chunk, committed=True)
        if closed and not held and commits is not None:
            closed, reopenable = await _close_is_final(world, run_id, namespace, index, commits)
            if not closed and not reopenable:
                continue  # reopened by a retry: read on
        if closed and not held:
            return
        if got:
            continue
        if not follow:
            return
        if reopenable:
            # Until the run's log grows: the closing attempt completed, failed or was
            # retried (not for chunks: the stream is closed, that wait would return at
            # once; a retry's chunks are held until it completes anyway).
            assert commits is not None
            await world.wait_for_run(run_id, after_seq=commits.last_seq, timeout=READ_WAIT)
            continue
        if held:
            # Until the run's log grows (the attempt completed or failed), or a chunk
            # comes (perhaps of a retry: the attempt held was lost). Not for chunks when
            # none would be read: the stream is closed, or enough are held (that wait
            # would return at once).
            assert commits is not None
            waits = [world.wait_for_run(run_id, after_seq=commits.last_seq, timeout=READ_WAIT)]
            if not closed and len(held) < MAX_HELD:
                waits.append(
                    world.wait_for_chunks(run_id, namespace, after_count=index, timeout=READ_WAIT)
                )
            await _first_of(*waits)
            commits.fresh = False
            continue
        if last_look:
            return  # ended without closing this stream: it was never opened
        rec = await world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, world.url)
        if rec.status in TERMINAL_STATUSES:
            # Ended: its streams are closed; read what was written before the end.
            last_look = True
            continue
        await world.wait_for_chunks(run_id, namespace, after_count=index, timeout=READ_WAIT)


async def _close_is_final(
    world: World, run_id: str, namespace: str, index: int, commits: _Commits
) -> tuple[bool, bool]:
    """For a committed reader that has read a stream to its close at ``index``: whether
    the close is final (the reader is done), and if not, whether the stream is still
    closed by an attempt whose step may yet retry and reopen it (``(False, False)``: a
    retry has reopened it already; read on). The steps are read before the stream: a step
    seen ended has stored every chunk and close of its attempts by then."""
    await commits.refresh()
    info = next((i for i in await world.stream_info(run_id) if i.namespace == namespace), None)
    if info is None:
        return True, False  # (not reached: a stream read as closed exists)
    if not info.closed or info.count > index:
        return False, False
    if commits.close_final(info.closer_call):
        return True, False
    return False, True


async def _first_of(*waits: Coroutine[Any, Any, None]) -> None:
    """Return when the first of ``waits`` returns (raising what it raised); cancel the
    others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
