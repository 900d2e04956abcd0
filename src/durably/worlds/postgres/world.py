"""``postgresql://``: the self-hosted world; any number of workers on any number of
machines share one PostgreSQL database, the only point they coordinate through.

* **Commits** are one statement and one transaction: the shared commit rules
  (:mod:`durably.worlds.ledger`) run here, in memory, on the rows the commit may touch,
  and the statement writes all they changed, checks that the runs they read are still
  the versions read (their ``xmin``), and NOTIFYs. The rows come from the last commit
  this process made to those runs when it has them all (the next step of a run it
  advances: one round trip), else from one read (two). A commit that loses the race
  reads again, then reads locked (``FOR UPDATE``, in run id order), which cannot lose. A
  commit whose connection drops before its outcome is known looks for its events
  before it tries again.
* **Claims** are one statement with ``FOR UPDATE SKIP LOCKED``: they never wait.
* **Wake-ups** come from LISTEN/NOTIFY (:mod:`.hub`), with a slow polling fallback.
* **Connections**: a pool per event loop, retried while the server is away
  (:mod:`.connections`). Streams are a part the world owns (:mod:`.streams`); the reads
  both SQL worlds share are in :class:`~durably.worlds.sql.SqlWorld`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Collection, Sequence
from typing import Any, ClassVar

import asyncpg

from ...clock import wall_time
from ...errors import WorldError
from ...events import TERMINAL_RUN_TYPES
from ..base import (
    TERMINAL_STATUSES,
    ChunkBatch,
    Claim,
    Commit,
    CommitResult,
    PayloadSealer,
    RunFilter,
    RunRecord,
    StreamChunk,
    Task,
)
from ..ledger import OverlayStore, apply_commit
from ..sql.rows import run_row_from_row
from ..sql.world import SqlWorld
from ..urls import NO_DEFAULT_KEY, KeyPolicy
from .config import PostgresConfig, parse_postgres_url
from .connections import LOST_RACE, Connections, Outage, is_disconnect
from .hub import POLL_FALLBACK, Hub, queue_key
from .locks import read_lock_rows, touches_locks, write_lock_rows
from .queries import Statements, list_runs
from .rates_schedules import PostgresFlow
from .schema import migrate
from .store import (
    CommitAttempt,
    CommitReads,
    Preloaded,
    RecentRows,
    woken_namespaces,
    write_params,
)
from .streams import Streams

__all__ = ["PostgresWorld"]

#: A commit that keeps losing races (or meeting a concurrent create) gives up after this.
MAX_COMMIT_ATTEMPTS = 10
#: How often leases skipped because a commit held their row are tried again.
LEASE_RETRIES = 3
RELEASE_RETRIES = 20
#: A deployment's ``last_seen`` is written at most this often by one process (workers
#: touch it every few seconds; "stranded" is judged over minutes).
TOUCH_EVERY = 60.0


class PostgresWorld(SqlWorld):
    """A world in one PostgreSQL database (``postgresql://`` or ``postgres://``).

    Args:
        url: ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`` with optional
            ``?schema=NAME`` (default ``durably``; created if missing), ``pool_size=N``
            (connections per event loop, default 10), ``reconnect_seconds=S`` (default
            30); other parameters go to the driver (``sslmode=require``) or, unknown to
            it, become session settings (``synchronous_commit=off``).

    Raises:
        WorldError: the URL is malformed.
    """

    sql: Statements
    _migrated: ClassVar[set[tuple[str, str]]] = set()
    _touched: ClassVar[dict[tuple[str, str, str, str], float]] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self.config: PostgresConfig = parse_postgres_url(url)
        self.sql = Statements.for_schema(self.config.quoted_schema)
        self.db = Connections(self.config)
        self.recent = RecentRows()
        self.streams = Streams(self.db, self.sql, self._fetch)
        self.flow = PostgresFlow(self.db, self.config.quoted_schema, self._live)
        self._lock = threading.Lock()
        self._hub: Hub | None = None
        self._closed = False

    @classmethod
    def key_policy(cls, url: str) -> KeyPolicy:
        """No default key: workers on many machines must share one, so starting without
        one fails, naming ``durably keygen``."""
        return NO_DEFAULT_KEY

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the schema or bring it up to date; idempotent.

        Raises:
            WorldError: the server cannot be reached or refuses the connection; the
                message names the URL (without its password) and what to check.
        """
        if self._hub is not None:
            return
        self._closed = False
        key = (self.config.dsn, self.config.schema)
        try:
            pool = await self.db.pool()
            async with pool.acquire() as conn:  # connects: an unreachable server shows now
                if key not in self._migrated:
                    await migrate(conn, self.config)
                    self._migrated.add(key)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as e:
            raise self.db.unreachable(e, "connect") from e
        hub = Hub.acquire(self.config)
        with self._lock:
            if self._hub is None:
                self._hub = hub
                return
        hub.release()  # another task opened it meanwhile

    async def migrate(self) -> int:
        """Create the schema or bring it up to date (``durably migrate``); return its
        version. Safe while workers run: every migration takes the same lock."""
        try:
            conn = await self.db.connect()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as e:
            raise self.db.unreachable(e, "connect") from e
        try:
            version = await migrate(conn, self.config)
        finally:
            await conn.close()
        self._migrated.add((self.config.dsn, self.config.schema))
        return version

    async def close(self) -> None:
        """Close this world's connections; idempotent."""
        with self._lock:
            hub, self._hub = self._hub, None
            self._closed = True
        if hub is not None:
            hub.release()
        await self.db.close()

    async def _live(self) -> Hub:
        hub = self._hub
        if hub is not None:
            return hub
        if self._closed:
            raise WorldError(f"the postgres world {self.config.display} is closed; open it again")
        await self.open()
        assert self._hub is not None
        return self._hub

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self._live()
        return await self.db.fetch(what, sql, *args)

    # -- commits -----------------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        """Apply the writes atomically (one transaction) and return one result per write.

        The first try uses the rows this process last wrote, when it has them all (one
        round trip); after a lost race the rows are read (two), and after another they
        are read locked, in a transaction, which cannot lose.
        """
        hub = await self._live()
        reads = CommitReads.of(commit)
        locky = touches_locks(commit)  # lock state changes: see .locks
        outage = Outage(self.db, "commit")
        pending: CommitAttempt | None = None  # sent, then the connection dropped
        races = 0
        while True:
            attempt = CommitAttempt()
            try:
                async with self.db.committer() as conn:
                    if pending is not None:
                        if await self._landed(conn, pending):
                            attempt = pending
                            break
                        pending = None
                    if locky:
                        async with conn.transaction():
                            await self._commit_once(conn, commit, reads, hub, attempt, "locks")
                    elif races > 1:
                        async with conn.transaction():
                            await self._commit_once(conn, commit, reads, hub, attempt, "locked")
                    else:
                        how = "read" if races else "recent"
                        await self._commit_once(conn, commit, reads, hub, attempt, how)
                    break
            except LOST_RACE as e:
                self.recent.forget(reads.run_ids)
                races += 1
                if races >= MAX_COMMIT_ATTEMPTS:
                    raise self.db.failed(e, "commit (it kept meeting others)") from e
            except Exception as e:
                self.recent.forget(reads.run_ids)
                if not is_disconnect(e):
                    if isinstance(e, asyncpg.PostgresError):
                        raise self.db.failed(e, "commit") from e
                    raise
                if attempt.sent:
                    pending = attempt
                await outage.wait(e)
        self._committed(hub, attempt)
        assert attempt.result is not None
        return attempt.result

    def _committed(self, hub: Hub, attempt: CommitAttempt) -> None:
        if attempt.runs:
            hub.runs_changed(attempt.runs)
        if attempt.ended:
            hub.runs_ended(attempt.ended)
        if attempt.namespaces:
            hub.work_arrived(attempt.namespaces)

    async def _commit_once(
        self,
        conn: asyncpg.Connection,
        commit: Commit,
        reads: CommitReads,
        hub: Hub,
        attempt: CommitAttempt,
        how: str,
    ) -> None:
        """Read (``how``: "recent" from :class:`RecentRows` if it has every row, else
        "read"; "locked": read under ``FOR UPDATE``), apply the ledger, write."""
        base = self.recent.source(reads) if how == "recent" else None
        if how == "locks":
            base = await read_lock_rows(conn, self.sql, commit, reads)
        if base is None:
            preload = self.sql.PRELOAD_LOCKED if how == "locked" else self.sql.PRELOAD
            base = Preloaded.read(reads, await conn.fetch(preload, *reads.params()))
        txn = OverlayStore(base)
        now = wall_time()
        result = apply_commit(txn, commit, now)
        runs: dict[str, int] = {}
        for ev in txn.events:
            runs[ev.run_id] = ev.seq  # in order: the last is the run's last_seq
        namespaces = woken_namespaces(txn, base, result.new_work)
        ended = [e.run_id for e in txn.events if e.type in TERMINAL_RUN_TYPES]
        notes = hub.notifications(namespaces, runs, ended=ended)
        params, slim = write_params(txn, base, now, notes)
        attempt.sent = True
        attempt.events = [(e.run_id, e.seq, e.type.value, e.created_at) for e in txn.events]
        attempt.result, attempt.runs, attempt.namespaces = result, runs, namespaces
        attempt.ended = ended
        await write_lock_rows(conn, self.sql, txn)
        written = await conn.fetch(self.sql.WRITE_STEPS if slim else self.sql.WRITE, *params)
        runs_written = {r[1]: r[3] for r in written if r[0] == "r"}
        steps_written = {(r[1], r[2]): r[3] for r in written if r[0] == "s"}
        self.recent.remember(txn, base, runs_written, steps_written)

    async def _landed(self, conn: asyncpg.Connection, attempt: CommitAttempt) -> bool:
        """Whether a commit whose outcome was lost with its connection is in the log."""
        if not attempt.events:
            return False  # nothing but leases and turns: doing it again is harmless
        rows = await conn.fetch(
            self.sql.FIND_EVENTS, [e[0] for e in attempt.events], [e[1] for e in attempt.events]
        )
        found = {(r[0], r[1], r[2], r[3]) for r in rows}
        return all(e in found for e in attempt.events)

    # -- the queue ---------------------------------------------------------------------

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
        hub = await self._live()
        queue = queue_key(deployment, workflows, steps)
        # What the hub knows of an idle queue is on the real time; a claim ahead of it
        # (a virtual clock) asks the database.
        if due_by is None and hub.idle_until(namespace, queue) is not None:
            return Claim()  # known idle: no query
        token = hub.work_token(namespace)

        def claim_args() -> tuple[Any, ...]:
            now = wall_time()  # taken on each try: see Connections.fetch
            return (
                namespace,
                deployment,
                now,
                max(max_runs, 0),
                max(max_tasks, 0),
                owner,
                now + lease_seconds,
                _names(workflows),
                _names(steps),
                now if due_by is None else max(now, due_by),
            )

        rows = await self.db.fetch("claim work", self.sql.CLAIM, make_args=claim_args)
        runs = sorted((r for r in rows if r[0] == "r"), key=lambda r: (r[6], r[1]))
        tasks = sorted((r for r in rows if r[0] == "t"), key=lambda r: (r[6], r[1], r[2]))
        found = bool(rows)
        if found or (max_runs > 0 and max_tasks > 0):
            hub.claimed(namespace, queue, token, found)
        return Claim(
            runs=[r[1] for r in runs],
            tasks=[Task(r[1], r[2], r[3], r[4], r[5]) for r in tasks],
        )

    async def extend_leases(
        self,
        *,
        owner: str,
        run_ids: Sequence[str],
        tasks: Sequence[tuple[str, int]],
        lease_seconds: float,
    ) -> None:
        """Push back the expiry of leases ``owner`` still holds."""
        runs_left, tasks_left = list(run_ids), list(tasks)
        for i in range(LEASE_RETRIES):
            if not runs_left and not tasks_left:
                return
            if i:
                await asyncio.sleep(0.02 * i)
            await self._live()
            rows = await self.db.fetch(
                "extend leases",
                self.sql.EXTEND_LEASES,
                make_args=functools.partial(
                    _lease_args, lease_seconds, list(runs_left), owner, list(tasks_left)
                ),
            )
            done_runs = {r[1] for r in rows if r[0] == "r"}
            done_tasks = {(r[1], r[2]) for r in rows if r[0] == "t"}
            runs_left = [r for r in runs_left if r not in done_runs]
            tasks_left = [t for t in tasks_left if t not in done_tasks]

    async def release(
        self, *, owner: str, run_ids: Sequence[str], tasks: Sequence[tuple[str, int]]
    ) -> None:
        """Hand back leases early: they become claimable again at once, and a step task
        handed back does not count as an attempt. Rows a commit holds at this instant
        are tried again a few times."""
        hub = await self._live()
        runs_left, tasks_left = list(run_ids), list(tasks)
        woken: set[str] = set()
        for i in range(RELEASE_RETRIES):
            if not runs_left and not tasks_left:
                break
            if i:
                await asyncio.sleep(min(0.01 * i, 0.1))
            rows = await self.db.fetch(
                "release leases",
                self.sql.RELEASE,
                runs_left,
                owner,
                [t[0] for t in tasks_left],
                [t[1] for t in tasks_left],
                self.config.channel,
                hub.token,
            )
            woken.update(r[1] for r in rows if r[0] == "w")
            runs_left = [r[1] for r in rows if r[0] == "r?"]
            tasks_left = [(r[1], r[2]) for r in rows if r[0] == "t?"]
        if woken:
            hub.work_arrived(woken)

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
        hub = await self._live()
        queue = queue_key(deployment, workflows, steps)
        idle = hub.idle_until(namespace, queue)
        if idle is not None:
            return idle.due
        token = hub.work_token(namespace)
        at = wall_time()
        rows = await self.db.fetch(
            "read the queue",
            self.sql.NEXT_DUE,
            namespace,
            deployment,
            _names(workflows),
            _names(steps),
        )
        due = [float(x) for x in rows[0] if x is not None]
        best = min(due) if due else None
        hub.learned_next_due(namespace, queue, token, best, at)
        return best

    async def wait_for_work(self, *, namespace: str, timeout: float) -> None:
        """Return when new work may be claimable, or after ``timeout`` seconds.

        Woken by the NOTIFY of any commit or release that makes work claimable in the
        namespace (at once for those of this process); returns after ``POLL_FALLBACK``
        seconds at most, so a missed notification costs no more than that.
        """
        hub = await self._live()
        await hub.listening()
        sig = hub.work_signal(namespace)
        armed = sig.arm()
        if hub.arrived_since_empty_claim(namespace):
            sig.disarm(armed)
            return
        await sig.wait(max(min(timeout, POLL_FALLBACK), 0.0), armed)

    # -- runs --------------------------------------------------------------------------

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching the filter, newest first."""
        args = {
            "status": flt.status,
            "workflow_name": flt.workflow_name,
            "namespace": flt.namespace,
            "attributes": json.dumps(flt.attributes) if flt.attributes else None,
            "deployment": flt.deployment,
            "run_id_prefix": _like_prefix(flt.run_id_prefix),
        }
        sql, names = list_runs(
            self.config.quoted_schema, frozenset(k for k, v in args.items() if v is not None)
        )
        rows = await self._fetch(
            "list runs",
            sql,
            *(args[k] for k in names),
            max(flt.limit, 0),
            max(flt.offset, 0),
        )
        return [run_row_from_row(r).record for r in rows]

    async def wait_for_run(self, run_id: str, *, after_seq: int, timeout: float) -> None:
        """Return when the run's log grows past ``after_seq``, or after ``timeout``.

        Returns at once if the run does not exist. Woken by the NOTIFY of the commit
        that grows the log (at once for commits of this process). While the listener
        has followed the run without a gap, its ``last_seq`` is known without a query;
        the database is read again every ``POLL_FALLBACK`` seconds anyway.
        """
        hub = await self._live()
        await hub.listening()
        sig = await hub.watch_run(run_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            read = False
            while True:
                armed = sig.arm()
                known = None if read else hub.known_last_seq(run_id)
                if known is None:
                    epoch = hub.follow_run(run_id)
                    row = await self._fetch_one("read a run", self.sql.GET_LAST_SEQ, run_id)
                    last = None if row is None else int(row[0])
                    hub.followed(run_id, epoch, last)
                    if last is None or last > after_seq:
                        sig.disarm(armed)
                        return
                elif known > after_seq:
                    sig.disarm(armed)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    sig.disarm(armed)
                    return
                if await sig.wait(min(remaining, POLL_FALLBACK), armed):
                    return
                read = True
        finally:
            hub.unwatch_run(run_id)

    async def wait_for_run_end(self, run_id: str, *, timeout: float) -> RunRecord | None:
        """The run's record once it has ended, or as it is after ``timeout``; ``None``
        if there is no such run.

        Woken at once by the commit of this process that ends the run (not by its
        steps), and by the NOTIFY of another process's commits to the run; the run is
        read again every ``POLL_FALLBACK`` seconds anyway. A run that has ended is
        returned at once, without listening to its channel.
        """
        rec = await self.get_run(run_id)
        if rec is None or rec.status in TERMINAL_STATUSES or timeout <= 0:
            return rec
        hub = await self._live()
        await hub.listening()
        sig = await hub.watch_end(run_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                armed = sig.arm()
                rec = await self.get_run(run_id)
                remaining = deadline - loop.time()
                if rec is None or rec.status in TERMINAL_STATUSES or remaining <= 0:
                    sig.disarm(armed)
                    return rec
                await sig.wait(min(remaining, POLL_FALLBACK), armed)
        finally:
            hub.unwatch_end(run_id)

    # -- streams -----------------------------------------------------------------------

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

        async def close(conn: asyncpg.Connection, commit: Commit, attempt: CommitAttempt) -> None:
            await self._commit_once(conn, commit, CommitReads.of(commit), hub, attempt, "locked")

        counts, attempt = await self.streams.append(batches, sealer, hub, close)
        if attempt is not None:
            self._committed(hub, attempt)
        return counts

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        """Chunks from ``start_index`` on, in order, and whether the reader is done."""
        return await self.streams.read(run_id, namespace, start_index, limit)

    async def wait_for_chunks(
        self, run_id: str, namespace: str, *, after_count: int, timeout: float
    ) -> None:
        """Return when the stream has more than ``after_count`` chunks or is closed, or
        after ``timeout``; woken by the NOTIFY of the append (or of the close)."""
        hub = await self._live()
        await self.streams.wait(hub, run_id, namespace, after_count, timeout)

    # -- deployments -------------------------------------------------------------------

    async def touch_deployment(self, namespace: str, deployment: str) -> None:
        """Record that a worker of ``deployment`` is alive now (written at most once a
        minute per process: an idle worker stays quiet)."""
        key = (self.config.dsn, self.config.schema, namespace, deployment)
        now = wall_time()
        if now - self._touched.get(key, 0.0) < TOUCH_EVERY:
            return
        await self._fetch(
            "record a deployment", self.sql.TOUCH_DEPLOYMENT, namespace, deployment, now
        )
        self._touched[key] = now

    async def move_runs(self, namespace: str, from_deployment: str, to_deployment: str) -> int:
        """Re-pin waiting runs of one deployment (not ended, no step in flight) to
        another; returns how many moved."""
        hub = await self._live()
        channel, payload = hub.notifications([namespace], {})[0]
        rows = await self.db.fetch(
            "move runs",
            self.sql.MOVE_RUNS,
            namespace,
            from_deployment,
            to_deployment,
            wall_time(),
            channel,
            payload,
        )
        moved = int(rows[0][0])
        if moved:
            hub.work_arrived([namespace])
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
        own, in one statement (see ``World.prune_runs``); return their ids."""
        wanted = sorted(statuses if statuses is not None else TERMINAL_STATUSES)
        args = (ended_before, wanted, namespace, max(limit, 0), dry_run)
        rows = await self._fetch("prune runs", self.sql.PRUNE_RUNS, *args)
        ids = [str(r[0]) for r in rows]
        self.recent.forget(ids)
        return ids

    # -- payloads at rest (re-encryption) ----------------------------------------------

    async def swap_payloads(
        self,
        events: Sequence[tuple[str, int, bytes, bytes]],
        chunks: Sequence[tuple[str, str, int, bytes, bytes]],
    ) -> int:
        """Replace stored payloads where they still equal the old ones; returns how many
        were replaced."""
        rows = await self._fetch(
            "replace payloads",
            self.sql.SWAP_PAYLOADS,
            [e[0] for e in events],
            [e[1] for e in events],
            [e[2] for e in events],
            [e[3] for e in events],
            [c[0] for c in chunks],
            [c[1] for c in chunks],
            [c[2] for c in chunks],
            [c[3] for c in chunks],
            [c[4] for c in chunks],
        )
        return int(rows[0][0])


def _lease_args(
    lease_seconds: float, runs: list[str], owner: str, tasks: list[tuple[str, int]]
) -> tuple[Any, ...]:
    """The arguments of EXTEND_LEASES, the lease's end taken now (on each try of the
    statement: see ``Connections.fetch``)."""
    return (wall_time() + lease_seconds, runs, owner, [t[0] for t in tasks], [t[1] for t in tasks])


def _like_prefix(prefix: str | None) -> str | None:
    r"""``prefix`` with LIKE's wildcards escaped (``\`` is LIKE's default escape)."""
    if prefix is None:
        return None
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _names(names: Collection[str] | None) -> list[str] | None:
    """A claim filter as a query parameter (a text array), ``None`` for any."""
    return None if names is None else sorted(names)
