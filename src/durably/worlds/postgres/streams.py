"""Durable streams of the PostgreSQL world: chunks appended in one transaction per
batch (closing a stream is a fact in its run's log, committed with them), read by
index, and waited for with LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from ...events import EventType, NewEvent
from ..base import ChunkBatch, Commit, PayloadSealer, RunWrite, StreamChunk, StreamInfo
from .config import PostgresConfig
from .connections import LOST_RACE, Connections, Outage, is_disconnect
from .hub import POLL_FALLBACK, Hub
from .queries import Statements
from .store import CommitAttempt, CommitReads

__all__ = ["Streams"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: An append that keeps meeting other appenders gives up after this.
MAX_APPEND_ATTEMPTS = 10


class _Appended:
    """An append sent before its connection dropped: what to look for."""

    __slots__ = ("closing", "counts", "written")

    def __init__(
        self,
        written: list[tuple[str, str, int, bytes]],
        closing: list[tuple[str, str]],
        counts: list[int],
    ) -> None:
        self.written = written
        self.closing = closing
        self.counts = counts


class Streams:
    """The stream methods of :class:`~.world.PostgresWorld`."""

    sql: Statements
    db: Connections
    config: PostgresConfig

    if TYPE_CHECKING:  # provided by PostgresWorld

        async def _live(self) -> Hub: ...

        async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]: ...

        async def _fetchrow(self, what: str, sql: str, *args: Any) -> asyncpg.Record | None: ...

        async def _commit_once(
            self,
            conn: asyncpg.Connection,
            commit: Commit,
            reads: CommitReads,
            hub: Hub,
            attempt: CommitAttempt,
            how: str,
        ) -> None: ...

        def _committed(self, hub: Hub, attempt: CommitAttempt) -> None: ...

    async def append_chunks(
        self, batches: Sequence[ChunkBatch], sealer: PayloadSealer | None = None
    ) -> list[int]:
        """Append chunks to streams in one transaction (closing those asked to); per
        batch, the stream's chunk count after it.

        Raises:
            ValueError: a stream is closed, or its run does not exist.
        """
        hub = await self._live()
        if not batches:
            return []
        keys = sorted({(b.run_id, b.namespace) for b in batches})
        run_ids, namespaces = [k[0] for k in keys], [k[1] for k in keys]
        outage = Outage(self.db, "append to a stream")
        pending: _Appended | None = None  # sent, then the connection dropped
        races = 0
        while True:
            attempt = CommitAttempt()
            written: list[tuple[str, str, int, bytes]] = []
            closing_keys: list[tuple[str, str]] = []
            counts: list[int] = []
            try:
                async with self.db.connection() as conn:
                    if pending is not None and await self._chunks_landed(conn, pending):
                        return pending.counts
                    pending = None
                    async with conn.transaction():
                        now = time.time()
                        await conn.execute(self.sql.MAKE_STREAMS, run_ids, namespaces, now)
                        state = {
                            (r[0], r[1]): (r[2], r[3])
                            for r in await conn.fetch(self.sql.LOCK_STREAMS, run_ids, namespaces)
                        }
                        counts, closing, written = _plan_chunks(batches, state, sealer)
                        closing_keys = [
                            (w.run_id, str(w.facts[0].data["namespace"])) for w in closing
                        ]
                        attempt.sent = True
                        new_counts = {(r, n): c for (r, n), (c, _) in state.items()}
                        await conn.execute(
                            self.sql.WRITE_CHUNKS,
                            [w[0] for w in written],
                            [w[1] for w in written],
                            [w[2] for w in written],
                            [w[3] for w in written],
                            [k[0] for k in keys],
                            [k[1] for k in keys],
                            [new_counts[k] for k in keys],
                            now,
                            _dumps(hub.notifications((), {}, keys)),
                        )
                        if closing:
                            close = Commit(closing, sealer=sealer)
                            await self._commit_once(
                                conn, close, CommitReads.of(close), hub, attempt, "locked"
                            )
                break
            except ValueError:
                raise
            except LOST_RACE as e:
                races += 1
                if races >= MAX_APPEND_ATTEMPTS:
                    raise self.db.failed(e, "append to a stream") from e
            except Exception as e:
                if not is_disconnect(e):
                    if isinstance(e, asyncpg.PostgresError):
                        raise self.db.failed(e, "append to a stream") from e
                    raise
                if attempt.sent:
                    pending = _Appended(written, closing_keys, counts)
                await outage.wait(e)
        hub.streams_changed(keys)
        self._committed(hub, attempt)
        return counts

    async def _chunks_landed(self, conn: asyncpg.Connection, appended: _Appended) -> bool:
        """Whether an append whose outcome was lost with its connection is stored."""
        written, closing = appended.written, appended.closing
        if written:
            rows = await conn.fetch(
                self.sql.FIND_CHUNKS,
                [w[0] for w in written],
                [w[1] for w in written],
                [w[2] for w in written],
            )
            found = {(r[0], r[1], r[2]): r[3] for r in rows}
            return all(found.get((w[0], w[1], w[2])) == w[3] for w in written)
        for run_id, ns in closing:
            row = await conn.fetchrow(self.sql.GET_STREAM, run_id, ns)
            if row is None or not row[1]:
                return False
        return bool(closing)

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        """Chunks from ``start_index`` on, in order, and whether the reader is done."""
        start = max(start_index, 0)
        rows = await self._fetch(
            "read a stream", self.sql.READ_CHUNKS, run_id, namespace, start, max(limit, 0)
        )
        if not rows:
            return [], False
        count, closed = rows[0][0], rows[0][1]
        chunks = [StreamChunk(r[2], r[3], r[4]) for r in rows if r[2] is not None]
        return chunks, bool(closed) and start + len(chunks) >= count

    async def wait_for_chunks(
        self, run_id: str, namespace: str, *, after_count: int, timeout: float
    ) -> None:
        """Return when the stream has more than ``after_count`` chunks or is closed, or
        after ``timeout``; woken by the NOTIFY of the append (or of the close)."""
        hub = await self._live()
        await hub.listening()
        key = (run_id, namespace)
        sig = await hub.watch_stream(key)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                armed = sig.arm()
                row = await self._fetchrow("read a stream", self.sql.GET_STREAM, *key)
                if row is not None and (row[0] > after_count or row[1]):
                    sig.disarm(armed)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    sig.disarm(armed)
                    return
                if await sig.wait(min(remaining, POLL_FALLBACK), armed):
                    return
        finally:
            hub.unwatch_stream(key)

    async def stream_info(self, run_id: str) -> list[StreamInfo]:
        """The run's streams."""
        rows = await self._fetch("read streams", self.sql.STREAM_INFO, run_id)
        return [StreamInfo(r[0], r[1], bool(r[2]), r[3]) for r in rows]


def _plan_chunks(
    batches: Sequence[ChunkBatch],
    state: dict[tuple[str, str], tuple[int, bool]],
    sealer: PayloadSealer | None,
) -> tuple[list[int], list[RunWrite], list[tuple[str, str, int, bytes]]]:
    """Give the chunks their indexes (and seal them); ``state`` (count, closed) of each
    locked stream is updated in place. Returns the counts after each batch, the writes
    that close streams, and the chunks to insert."""
    for b in batches:
        got = state.get((b.run_id, b.namespace))
        if got is None:
            raise ValueError(f"cannot write to a stream of run {b.run_id}: no such run")
        if got[1] and (b.chunks or b.close):
            raise ValueError(f"stream {b.namespace or '(default)'!r} of run {b.run_id} is closed")
    counts: list[int] = []
    closing: list[RunWrite] = []
    written: list[tuple[str, str, int, bytes]] = []
    for b in batches:
        key = (b.run_id, b.namespace)
        count, closed = state[key]
        for payload in b.chunks:
            if sealer is not None:
                payload = sealer.seal_chunk(b.run_id, b.namespace, count, payload)
            written.append((b.run_id, b.namespace, count, payload))
            count += 1
        state[key] = (count, closed)
        counts.append(count)
        if b.close:
            fact = NewEvent(
                EventType.STREAM_CLOSED, None, {"namespace": b.namespace, "count": count}
            )
            closing.append(RunWrite(b.run_id, facts=[fact]))
    return counts, closing, written
