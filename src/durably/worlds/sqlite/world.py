"""``sqlite:///PATH``: the embedded default world, one database file beside the app.

Every method is ``async`` for the protocol's sake but does its SQLite work inline, on
the calling thread: a commit in WAL mode with ``synchronous=NORMAL`` costs tens of
microseconds, far less than a hop to a thread pool. Writes go through one connection
per world, serialized by a lock shared by every world of the process on the same file,
each inside ``BEGIN IMMEDIATE ... COMMIT``. Reads use one connection per thread, so a
reader never waits behind a writer (WAL gives it the last committed snapshot).

Waiters are woken at once by commits made in this process (any world on the same
file), and by polling one indexed row, with backoff, for commits made by other processes.

The reads both SQL worlds share are in :class:`~durably.worlds.sql.SqlWorld`; the
connections in :mod:`.connections`, what worlds on one file share in :mod:`.hub`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Collection, Sequence
from types import ModuleType
from typing import Any

from ...clock import wall_time
from ..base import (
    TERMINAL_STATUSES,
    ChunkBatch,
    Claim,
    Commit,
    CommitResult,
    PayloadSealer,
    RunFilter,
    RunRecord,
    RunWrite,
    StreamChunk,
    Task,
)
from ..ledger import apply_commit
from ..sql.rows import chunk_from_row, run_row_from_row
from ..sql.world import SqlWorld, closing_write, refuse_write
from ..urls import KeyPolicy
from . import queries as q
from .config import SqliteConfig, key_policy, parse_sqlite_url
from .connections import Connections
from .rates_schedules import SqliteFlow
from .store import SqliteStore

__all__ = ["SqliteConfig", "SqliteWorld", "parse_sqlite_url"]

#: Polling for other processes' commits starts fast and backs off to these intervals.
POLL_START = 0.005
RUN_POLL_MAX = 0.1
WORK_POLL_MAX = 0.25


class SqliteWorld(SqlWorld):
    """A world in one SQLite file (``sqlite:///PATH``), shared by threads and processes.

    Args:
        url: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, with
            optional ``?synchronous=full|normal|off&busy_timeout_ms=N``.

    Raises:
        WorldError: the URL is malformed.
    """

    sql: ModuleType = q

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = parse_sqlite_url(url)
        self.db = Connections(self.config)
        self.flow = SqliteFlow(self.db)

    @classmethod
    def key_policy(cls, url: str) -> KeyPolicy:
        """The default key: a file beside the database (``PATH.key``), made on first use."""
        return key_policy(url)

    # -- lifecycle ---------------------------------------------------------------------

    def missing(self) -> str | None:
        """The database file, if it does not exist yet (opening would create it);
        ``None`` if it does. Read-only commands ask, to create nothing."""
        path = self.config.path
        return None if os.path.isfile(path) else path

    async def open(self) -> None:
        """Create the file and its folder if needed, and bring the schema up to date."""
        self.db.open()

    async def close(self) -> None:
        """Close every connection of this world; idempotent."""
        self.db.close()

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[Any]:
        return self.db.read(sql, args)

    # -- writes ------------------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        """Apply the writes atomically (one transaction) and return one result per write."""

        def work(conn: sqlite3.Connection) -> tuple[CommitResult, SqliteStore]:
            now = wall_time()
            store = SqliteStore(conn, now, self.db.rows)
            result = apply_commit(store, commit, now)
            store.flush()
            if result.new_work:
                conn.execute(q.BUMP_WORK_CLOCK)
            return result, store

        (result, store), hub = self.db.write(work, keeps_rows=True)
        hub.committed(store.changed_runs, new_work=result.new_work, ended=store.ended_runs)
        hub.streams.fire(store.changed_streams)
        return result

    async def claim(
        self,
        *,
        owner: str,
        namespace: str,
        deployment: str,
        max_runs: int,
        max_tasks: int,
        lease_seconds: float,
        workflows: Collection[str] | None = None,
        steps: Collection[str] | None = None,
        due_by: float | None = None,
    ) -> Claim:
        """Lease runs that need a turn and tasks that are due, oldest first: only
        those of ``workflows`` and ``steps`` (see ``World.claim``)."""
        if max_runs <= 0 and max_tasks <= 0:
            return Claim()
        names = _names(workflows, steps)

        def work(conn: sqlite3.Connection) -> Claim:
            now = wall_time()
            until = now + lease_seconds
            out = Claim()
            due = now if due_by is None else max(now, due_by)
            where = {
                "namespace": namespace,
                "deployment": deployment,
                "now": now,
                "due": due,
                **names,
            }
            if max_runs > 0:
                runs = conn.execute(q.DUE_RUNS, {**where, "limit": max_runs}).fetchall()
                out.runs = [r[0] for r in runs]
                conn.executemany(q.LEASE_RUN, [(owner, until, rid) for rid in out.runs])
            if max_tasks > 0:
                for run_id, call, kind, attempt, visible_at in conn.execute(
                    q.DUE_TASKS, {**where, "limit": max_tasks}
                ).fetchall():
                    if kind == "step":
                        attempt += 1
                        conn.execute(q.MARK_STEP_RUNNING, (attempt, now, run_id, call))
                    conn.execute(q.LEASE_TASK, (owner, until, attempt, run_id, call))
                    out.tasks.append(Task(run_id, call, kind, attempt, visible_at))
            # The leases and the steps marked running are not what the memo holds.
            self.db.rows.forget(out.runs, [(t.run_id, t.call) for t in out.tasks])
            return out

        return self.db.write(work, keeps_rows=True)[0]

    async def extend_leases(
        self,
        *,
        owner: str,
        run_ids: Sequence[str],
        tasks: Sequence[tuple[str, int]],
        lease_seconds: float,
    ) -> None:
        """Push back the expiry of leases ``owner`` still holds."""
        if not run_ids and not tasks:
            return

        def work(conn: sqlite3.Connection) -> None:
            until = wall_time() + lease_seconds
            conn.executemany(q.EXTEND_RUN_LEASE, [(until, rid, owner) for rid in run_ids])
            conn.executemany(q.EXTEND_TASK_LEASE, [(until, r, c, owner) for r, c in tasks])

        self.db.write(work)

    async def release(
        self, *, owner: str, run_ids: Sequence[str], tasks: Sequence[tuple[str, int]]
    ) -> None:
        """Hand back leases early (tasks become claimable again at once)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(q.RELEASE_RUN, [(rid, owner) for rid in run_ids])
            conn.executemany(q.RELEASE_TASK, [(r, c, owner) for r, c in tasks])
            conn.execute(q.BUMP_WORK_CLOCK)

        if run_ids or tasks:
            _, hub = self.db.write(work)
        else:
            hub = self.db.hub()
        hub.work.fire()

    # -- reads -------------------------------------------------------------------------

    async def next_due(
        self,
        *,
        namespace: str,
        deployment: str,
        workflows: Collection[str] | None = None,
        steps: Collection[str] | None = None,
    ) -> float | None:
        """When the earliest queued run turn or task that ``claim`` with the same
        arguments would hand out becomes claimable, if any."""
        params = {"namespace": namespace, "deployment": deployment, **_names(workflows, steps)}
        runs, tasks = self.db.read(q.NEXT_DUE, params)[0]
        due = [float(at) for at in (runs, tasks) if at is not None]
        return min(due) if due else None

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching the filter, newest first."""
        params = {
            "status": flt.status,
            "workflow_name": flt.workflow_name,
            "namespace": flt.namespace,
            "deployment": flt.deployment,
            "run_id_prefix": flt.run_id_prefix,
            "attrs": json.dumps(flt.attributes) if flt.attributes else None,
            "limit": flt.limit,
            "offset": max(flt.offset, 0),
        }
        sql = q.list_runs(frozenset(k for k, v in params.items() if v is not None))
        return [run_row_from_row(r).record for r in self.db.read(sql, params)]

    # -- waiting -----------------------------------------------------------------------

    async def wait_for_work(self, *, namespace: str, timeout: float) -> None:
        """Return when new work may be claimable, or after ``timeout`` seconds.

        A commit or release in this process wakes at once; one by another process is
        noticed by polling the work clock (every 5 ms, backing off to 250 ms), which
        every commit that makes work claimable advances.
        """
        hub = self.db.hub()
        version = self.db.read(q.GET_WORK_CLOCK, ())[0][0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = POLL_START
        while (remaining := deadline - loop.time()) > 0:
            if await hub.work.wait(min(interval, remaining)):
                return
            if self.db.read(q.GET_WORK_CLOCK, ())[0][0] != version:
                return
            interval = min(interval * 2, WORK_POLL_MAX)

    async def wait_for_run(self, run_id: str, *, after_seq: int, timeout: float) -> None:
        """Return when the run's log grows past ``after_seq``, or after ``timeout``.

        Returns at once if the run does not exist. A commit in this process wakes at
        once; a commit by another process is noticed by polling the run's ``last_seq``
        (every 5 ms, backing off to 100 ms).
        """
        hub = self.db.hub()
        sig = hub.runs.watch(run_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            interval = POLL_START
            while True:
                rows = self.db.read(q.GET_LAST_SEQ, (run_id,))
                if not rows or rows[0][0] > after_seq:
                    return
                remaining = deadline - loop.time()
                if remaining <= 0 or await sig.wait(min(interval, remaining)):
                    return
                interval = min(interval * 2, RUN_POLL_MAX)
        finally:
            hub.runs.unwatch(run_id)

    async def wait_for_run_end(self, run_id: str, *, timeout: float) -> RunRecord | None:
        """The run's record once it has ended, or as it is after ``timeout``; ``None``
        if there is no such run.

        Woken at once by the commit of this process that ends the run (not by its
        steps); the end of a run advanced by another process is noticed by polling
        (every 5 ms, backing off to 100 ms).
        """
        hub = self.db.hub()
        sig = hub.ends.watch(run_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            interval = POLL_START
            while True:
                armed = sig.arm()
                rec = await self.get_run(run_id)
                remaining = deadline - loop.time()
                if rec is None or rec.status in TERMINAL_STATUSES or remaining <= 0:
                    sig.disarm(armed)
                    return rec
                await sig.wait(min(interval, remaining), armed)
                interval = min(interval * 2, RUN_POLL_MAX)
        finally:
            hub.ends.unwatch(run_id)

    # -- streams -----------------------------------------------------------------------

    async def append_chunks(
        self, batches: Sequence[ChunkBatch], sealer: PayloadSealer | None = None
    ) -> list[int]:
        """Append chunks to streams in one transaction (closing those asked to)."""

        def work(conn: sqlite3.Connection) -> tuple[list[int], SqliteStore]:
            now = wall_time()
            store = SqliteStore(conn, now, self.db.rows)
            counts: list[int] = []
            closing: list[RunWrite] = []
            for b in batches:
                exists = store.get_run_row(b.run_id) is not None
                found = conn.execute(q.GET_STREAM, (b.run_id, b.namespace)).fetchall()
                row = found[0] if found else (0, 0, None, 0)
                count, closed = row[0], bool(row[1])
                closer: tuple[int | None, int] = (row[2], row[3] or 0)
                if refuse_write(b, exists=exists, closed=closed, closer=closer):
                    closed, closer = False, (None, 0)  # a retry of the closing step reopens it
                if b.chunks:
                    seal = sealer.seal_chunk if sealer is not None else None
                    conn.executemany(
                        q.INSERT_CHUNK,
                        [
                            (
                                b.run_id,
                                b.namespace,
                                count + i,
                                seal(b.run_id, b.namespace, count + i, p) if seal else p,
                                now,
                                *b.writer(i),
                            )
                            for i, p in enumerate(b.chunks)
                        ],
                    )
                    count += len(b.chunks)
                if b.close:
                    closed, closer = True, b.closer
                put = (b.run_id, b.namespace, count, int(closed), *closer, now)
                conn.execute(q.PUT_STREAM, put)
                store.changed_streams.add((b.run_id, b.namespace))
                counts.append(count)
                if b.close:
                    closing.append(closing_write(b, count))
            if closing:
                apply_commit(store, Commit(closing, sealer=sealer), now)
            store.flush()
            return counts, store

        (counts, store), hub = self.db.write(work, keeps_rows=True)
        hub.committed(store.changed_runs, new_work=False, ended=store.ended_runs)
        hub.streams.fire(store.changed_streams)
        return counts

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        """Chunks from ``start_index`` on, and whether the reader is done."""
        start = max(start_index, 0)
        state = self.db.read(q.GET_STREAM, (run_id, namespace))
        rows = self.db.read(q.READ_CHUNKS, (run_id, namespace, start, max(limit, 0)))
        chunks = [chunk_from_row(r) for r in rows]
        if not state:
            return chunks, False
        count, closed = state[0][0], bool(state[0][1])
        return chunks, closed and start + len(chunks) >= count

    async def wait_for_chunks(
        self, run_id: str, namespace: str, *, after_count: int, timeout: float
    ) -> None:
        """Return when the stream has more than ``after_count`` chunks or is closed.

        A write in this process wakes at once; one by another process is noticed by
        polling the stream's row (every 5 ms, backing off to 100 ms).
        """
        hub = self.db.hub()
        key = (run_id, namespace)
        sig = hub.streams.watch(key)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            interval = POLL_START
            while True:
                armed = sig.arm()
                rows = self.db.read(q.GET_STREAM, key)
                if rows and (rows[0][0] > after_count or rows[0][1]):
                    sig.disarm(armed)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0 or await sig.wait(min(interval, remaining), armed):
                    return
                interval = min(interval * 2, RUN_POLL_MAX)
        finally:
            hub.streams.unwatch(key)

    # -- deployments -------------------------------------------------------------------

    async def touch_deployment(self, namespace: str, deployment: str) -> None:
        """Record that a worker of ``deployment`` is alive now."""
        now = wall_time()
        self.db.write(
            lambda conn: conn.execute(q.TOUCH_DEPLOYMENT, (namespace, deployment, now, now))
        )

    async def move_runs(self, namespace: str, from_deployment: str, to_deployment: str) -> int:
        """Re-pin waiting runs of one deployment to another."""

        def work(conn: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in conn.execute(
                    q.MOVABLE_RUNS, (namespace, from_deployment, wall_time())
                ).fetchall()
            ]
            for rid in ids:
                conn.execute(q.MOVE_RUN, (to_deployment, rid))
                conn.execute(q.MOVE_RUN_TASKS, (to_deployment, rid))
            if ids:
                conn.execute(q.BUMP_WORK_CLOCK)
            return len(ids)

        moved, hub = self.db.write(work)
        if moved:
            hub.committed(set(), new_work=True)
        return moved

    async def prune_runs(
        self,
        *,
        ended_before: float,
        statuses: Collection[str] | None = None,
        namespace: str | None = None,
        limit: int = 500,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete up to ``limit`` runs that ended before ``ended_before`` with all they
        own, in one transaction (see ``World.prune_runs``); return their ids."""
        wanted = json.dumps(sorted(statuses if statuses is not None else TERMINAL_STATUSES))
        args = (ended_before, wanted, namespace, max(limit, 0))

        def work(conn: sqlite3.Connection) -> list[str]:
            ids = [r[0] for r in conn.execute(q.PRUNABLE_RUNS, args).fetchall()]
            for rid in ids:
                for statement in q.PRUNE_RUN:
                    conn.execute(statement, (rid,))
            return ids

        if dry_run:
            return [r[0] for r in self.db.read(q.PRUNABLE_RUNS, args)]
        ids, _hub = self.db.write(work)
        return ids

    # -- payloads at rest (re-encryption) ----------------------------------------------

    async def swap_payloads(
        self,
        events: Sequence[tuple[str, int, bytes, bytes]],
        chunks: Sequence[tuple[str, str, int, bytes, bytes]],
    ) -> int:
        """Replace stored payloads that still equal the old ones."""

        def work(conn: sqlite3.Connection) -> int:
            n = 0
            for rid, seq, old, new in events:
                n += conn.execute(q.SWAP_EVENT_PAYLOAD, (new, rid, seq, old)).rowcount
            for rid, ns, idx, old, new in chunks:
                n += conn.execute(q.SWAP_CHUNK_PAYLOAD, (new, rid, ns, idx, old)).rowcount
            return n

        return self.db.write(work)[0]


def _names(workflows: Collection[str] | None, steps: Collection[str] | None) -> dict[str, Any]:
    """The claim filter as query parameters: JSON arrays of names, ``None`` for any."""
    return {
        "workflows": None if workflows is None else json.dumps(sorted(workflows)),
        "steps": None if steps is None else json.dumps(sorted(steps)),
    }
