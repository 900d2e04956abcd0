"""Durable streams of the PostgreSQL world: chunks appended in one transaction per
batch (closing a stream is a fact in its run's log, committed with them), read by
index, and waited for with LISTEN/NOTIFY.

:class:`Streams` is a part the world owns: it is given the connections, the statements,
how to read (the world's, which refuses once the world is closed) and, per append, how to
commit the facts that close streams in the append's transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from ..base import ChunkBatch, Commit, PayloadSealer, RunWrite, StreamChunk
from ..sql.rows import chunk_from_row
from ..sql.world import closing_write, refuse_write
from .connections import LOST_RACE, Connections, Outage, is_disconnect
from .hub import POLL_FALLBACK, Hub
from .queries import Statements
from .store import CommitAttempt

__all__ = ["CloseStreams", "Fetch", "Streams"]

#: Commits the facts that close streams, on the append's connection, in its transaction.
CloseStreams = Callable[[asyncpg.Connection, Commit, CommitAttempt], Awaitable[None]]
#: Runs one read statement (``what`` names it in errors) and returns its rows.
Fetch = Callable[..., Awaitable[list[asyncpg.Record]]]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: A chunk to insert: run_id, namespace, index, payload, and the (call, attempt) that
#: wrote it.
_Written = tuple[str, str, int, bytes, int | None, int]

#: An append that keeps meeting other appenders gives up after this.
MAX_APPEND_ATTEMPTS = 10


class _Appended:
    """An append sent before its connection dropped: what to look for."""

    __slots__ = ("closing", "counts", "written")

    def __init__(
        self,
        written: list[_Written],
        closing: list[tuple[str, str]],
        counts: list[int],
    ) -> None:
        self.written = written
        self.closing = closing
        self.counts = counts


class Streams:
    """The durable streams of one PostgreSQL world.

    Args:
        db: the world's connections.
        sql: the world's statements.
        fetch: the world's read (``fetch(what, sql, *args)``).
    """

    def __init__(self, db: Connections, sql: Statements, fetch: Fetch) -> None:
        self.db = db
        self.sql = sql
        self._fetch = fetch

    async def append(
        self,
        batches: Sequence[ChunkBatch],
        sealer: PayloadSealer | None,
        hub: Hub,
        close: CloseStreams,
    ) -> tuple[list[int], CommitAttempt | None]:
        """Append chunks to streams in one transaction (closing those asked to, with
        ``close``) and wake the streams' readers. Returns per batch the stream's chunk
        count after it, and the commit that closed streams (``None``: the append had
        landed before its connection dropped, and is not done again).

        Raises:
            ValueError: a stream is closed, or its run does not exist.
        """
        keys = sorted({(b.run_id, b.namespace) for b in batches})
        run_ids, namespaces = [k[0] for k in keys], [k[1] for k in keys]
        outage = Outage(self.db, "append to a stream")
        pending: _Appended | None = None  # sent, then the connection dropped
        races = 0
        while True:
            attempt = CommitAttempt()
            written: list[_Written] = []
            closing_keys: list[tuple[str, str]] = []
            counts: list[int] = []
            try:
                async with self.db.connection() as conn:
                    if pending is not None and await self._chunks_landed(conn, pending):
                        return pending.counts, None
                    pending = None
                    async with conn.transaction():
                        now = time.time()
                        await conn.execute(self.sql.MAKE_STREAMS, run_ids, namespaces, now)
                        state = {
                            (r[0], r[1]): _State(r[2], r[3], (r[4], r[5]))
                            for r in await conn.fetch(self.sql.LOCK_STREAMS, run_ids, namespaces)
                        }
                        counts, closing, written = _plan_chunks(batches, state, sealer)
                        closing_keys = [
                            (w.run_id, str(w.facts[0].data["namespace"])) for w in closing
                        ]
                        attempt.sent = True
                        await conn.execute(
                            self.sql.WRITE_CHUNKS,
                            [w[0] for w in written],
                            [w[1] for w in written],
                            [w[2] for w in written],
                            [w[3] for w in written],
                            [k[0] for k in keys],
                            [k[1] for k in keys],
                            [state[k].count for k in keys],
                            now,
                            _dumps(hub.notifications((), {}, keys)),
                            [w[4] for w in written],
                            [w[5] for w in written],
                            [state[k].closed for k in keys],
                            [state[k].closer[0] for k in keys],
                            [state[k].closer[1] for k in keys],
                        )
                        if closing:
                            await close(conn, Commit(closing, sealer=sealer), attempt)
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
        return counts, attempt

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

    async def read(
        self, run_id: str, namespace: str, start_index: int, limit: int
    ) -> tuple[list[StreamChunk], bool]:
        """Chunks from ``start_index`` on, in order, and whether the reader is done."""
        start = max(start_index, 0)
        rows = await self._fetch(
            "read a stream", self.sql.READ_CHUNKS, run_id, namespace, start, max(limit, 0)
        )
        if not rows:
            return [], False
        count, closed = rows[0][0], rows[0][1]
        chunks = [chunk_from_row(r, 2) for r in rows if r[2] is not None]
        return chunks, bool(closed) and start + len(chunks) >= count

    async def wait(
        self, hub: Hub, run_id: str, namespace: str, after_count: int, timeout: float
    ) -> None:
        """Return when the stream has more than ``after_count`` chunks or is closed, or
        after ``timeout``; woken by the NOTIFY of the append (or of the close)."""
        await hub.listening()
        key = (run_id, namespace)
        sig = await hub.watch_stream(key)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                armed = sig.arm()
                rows = await self._fetch("read a stream", self.sql.GET_STREAM, *key)
                if rows and (rows[0][0] > after_count or rows[0][1]):
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


class _State:
    """A locked stream: its count, whether it is closed, and the attempt that closed it."""

    __slots__ = ("closed", "closer", "count")

    def __init__(self, count: int, closed: bool, closer: tuple[int | None, int]) -> None:
        self.count = count
        self.closed = closed
        self.closer: tuple[int | None, int] = (closer[0], closer[1] or 0)


def _plan_chunks(
    batches: Sequence[ChunkBatch],
    state: dict[tuple[str, str], _State],
    sealer: PayloadSealer | None,
) -> tuple[list[int], list[RunWrite], list[_Written]]:
    """Give the chunks their indexes (and seal them); ``state`` of each locked stream is
    updated in place (a retry of the step that closed it reopens it; a close names its
    attempt). Returns the counts after each batch, the writes that close streams, and the
    chunks to insert."""
    reopened = set()
    for b in batches:
        got = state.get((b.run_id, b.namespace))
        exists, closed = got is not None, got is not None and got.closed
        if refuse_write(b, exists=exists, closed=closed, closer=got.closer if got else (None, 0)):
            reopened.add((b.run_id, b.namespace))
    counts: list[int] = []
    closing: list[RunWrite] = []
    written: list[_Written] = []
    for b in batches:
        key = (b.run_id, b.namespace)
        st = state[key]
        if key in reopened:
            st.closed, st.closer = False, (None, 0)
        for i, payload in enumerate(b.chunks):
            if sealer is not None:
                payload = sealer.seal_chunk(b.run_id, b.namespace, st.count, payload)
            written.append((b.run_id, b.namespace, st.count, payload, *b.writer(i)))
            st.count += 1
        counts.append(st.count)
        if b.close:
            st.closed, st.closer = True, b.closer
            closing.append(closing_write(b, st.count))
    return counts, closing, written
