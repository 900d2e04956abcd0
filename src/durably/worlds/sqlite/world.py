"""``sqlite:///PATH``: the embedded default world, one database file beside the app.

Every method is ``async`` for the protocol's sake but does its SQLite work inline, on
the calling thread: a commit in WAL mode with ``synchronous=NORMAL`` costs tens of
microseconds, far less than a hop to a thread pool. Writes go through one connection
per world, serialized by a lock shared by every world of the process on the same file,
each inside ``BEGIN IMMEDIATE ... COMMIT``. Reads use one connection per thread, so a
reader never waits behind a writer (WAL gives it the last committed snapshot).

Waiters are woken at once by commits made in this process (any world on the same
file), and by polling one indexed row, with backoff, for commits made by other processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote

from ...errors import WorldError
from ...events import Event, EventType, NewEvent
from ..base import (
    ChunkBatch,
    Claim,
    Commit,
    CommitResult,
    DeploymentRecord,
    HookRecord,
    PayloadSealer,
    RunFilter,
    RunRecord,
    RunWrite,
    StepRecord,
    StreamChunk,
    StreamInfo,
    Task,
)
from ..ledger import apply_commit
from ..notify import Signal, WatchedSignals
from . import queries as q
from .schema import migrate
from .store import SqlStore, event_from_row, hook_from_row, run_row_from_row, step_from_row

__all__ = ["SqliteConfig", "SqliteWorld", "parse_sqlite_url"]

T = TypeVar("T")

#: Polling for other processes' commits starts fast and backs off to these intervals.
POLL_START = 0.005
RUN_POLL_MAX = 0.1
WORK_POLL_MAX = 0.25

_SYNCHRONOUS = ("full", "normal", "off")
_EXAMPLE = "sqlite:///.durably/durably.db (relative) or sqlite:////var/app/durably.db (absolute)"


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    """What a ``sqlite://`` URL says.

    Attributes:
        path: the database file, absolute.
        synchronous: ``"full"``, ``"normal"`` (default) or ``"off"``.
        busy_timeout_ms: how long a write waits for another process's write lock.
    """

    path: str
    synchronous: str = "normal"
    busy_timeout_ms: int = 5000


def parse_sqlite_url(url: str) -> SqliteConfig:
    """Read a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL.

    Query parameters: ``synchronous=full|normal|off``, ``busy_timeout_ms=N``. A relative
    path is taken relative to the current working directory, now.

    Raises:
        WorldError: the URL is malformed; the message says how to write it.
    """
    prefix = "sqlite://"
    if not url.lower().startswith(prefix):
        raise WorldError(f"not a sqlite world URL: {url!r}; write it as {_EXAMPLE}")
    rest, _, query = url[len(prefix) :].partition("?")
    if not rest.startswith("/"):
        host = rest.split("/", 1)[0]
        raise WorldError(
            f"the sqlite URL {url!r} has a host part ({host!r}); a sqlite URL has no host, "
            f"so it starts with three slashes: {_EXAMPLE}"
        )
    path = unquote(rest[1:])
    if not path or path.endswith(("/", os.sep)):
        raise WorldError(f"the sqlite URL {url!r} names no database file; write it as {_EXAMPLE}")
    if path == ":memory:":
        raise WorldError(
            "an in-memory SQLite database cannot be shared by durably's connections; "
            "use the 'memory://' world for tests"
        )
    synchronous = "normal"
    busy_timeout_ms = 5000
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "synchronous":
            if value.lower() not in _SYNCHRONOUS:
                raise WorldError(
                    f"the sqlite URL {url!r} has synchronous={value!r}; "
                    f"use one of {', '.join(_SYNCHRONOUS)}"
                )
            synchronous = value.lower()
        elif key == "busy_timeout_ms":
            try:
                busy_timeout_ms = int(value)
            except ValueError:
                busy_timeout_ms = -1
            if busy_timeout_ms < 0:
                raise WorldError(
                    f"the sqlite URL {url!r} has busy_timeout_ms={value!r}; "
                    "use a whole number of milliseconds, e.g. busy_timeout_ms=5000"
                )
        else:
            raise WorldError(
                f"the sqlite URL {url!r} has an unknown parameter {key!r}; "
                "known parameters are synchronous=full|normal|off and busy_timeout_ms=N"
            )
    return SqliteConfig(os.path.abspath(path), synchronous, busy_timeout_ms)


#: WAL pages after which a writer checkpoints itself (the checkpointer thread normally
#: keeps the WAL far smaller; this only bounds it if that thread falls behind).
WAL_SAFETY_PAGES = 20_000
#: How often the checkpointer thread copies the WAL back into the database.
CHECKPOINT_INTERVAL = 0.05


class _Checkpointer:
    """Copies the WAL back into the database on a thread of its own, so commits never
    pay for it (SQLite's automatic checkpoint runs inside a commit: ~25 us each)."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.dirty = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="durably-checkpoint", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None
            )
        except sqlite3.Error:
            return
        try:
            while not self.stopping.is_set():
                if not self.dirty.wait(0.5):
                    continue
                self.stopping.wait(CHECKPOINT_INTERVAL)  # let commits pile up a little
                self.dirty.clear()
                try:
                    conn.execute(q.WAL_CHECKPOINT_PASSIVE).fetchall()
                except sqlite3.Error:
                    pass  # busy: the next round catches up
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.dirty.set()
        self.thread.join(timeout=5)


class _Hub:
    """What every world of this process open on one database file shares."""

    def __init__(self) -> None:
        self.refs = 0
        self.checkpointer: _Checkpointer | None = None
        #: Serializes this process's writers on the file, so they never wait on each
        #: other in SQLite's busy handler (which sleeps in coarse steps).
        self.write_lock = threading.Lock()
        self.work = Signal()
        self.runs: WatchedSignals[str] = WatchedSignals()
        self.streams: WatchedSignals[tuple[str, str]] = WatchedSignals()

    def committed(self, run_ids: set[str], *, new_work: bool) -> None:
        self.runs.fire(run_ids)
        if new_work:
            self.work.fire()


class _Reader:
    """One thread's read connection (a weak-referenceable holder for it)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class SqliteWorld:
    """A world in one SQLite file (``sqlite:///PATH``), shared by threads and processes.

    Args:
        url: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, with
            optional ``?synchronous=full|normal|off&busy_timeout_ms=N``.

    Raises:
        WorldError: the URL is malformed.
    """

    _hubs: ClassVar[dict[str, _Hub]] = {}
    _hubs_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = parse_sqlite_url(url)
        self._state_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._hub: _Hub | None = None
        self._hub_key = ""
        self._closed = False
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._local = threading.local()

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file and its folder if needed, and bring the schema up to date."""
        self._open_sync()

    def _open_sync(self) -> tuple[sqlite3.Connection, _Hub]:
        with self._state_lock:
            if self._writer is not None and self._hub is not None:
                return self._writer, self._hub
            cfg = self.config
            try:
                os.makedirs(os.path.dirname(cfg.path) or ".", exist_ok=True)
                conn = self._connect()
                try:
                    conn.execute(q.PRAGMA_SYNCHRONOUS.format(level=cfg.synchronous.upper()))
                    # Only takes effect on a new, empty file (before WAL mode is set):
                    # a commit writes whole pages, and small rows need small pages.
                    conn.execute(q.PRAGMA_PAGE_SIZE)
                    conn.execute(q.PRAGMA_WAL).fetchall()
                    conn.execute(q.PRAGMA_WAL_AUTOCHECKPOINT.format(pages=WAL_SAFETY_PAGES))
                    migrate(conn, cfg.path)
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.Error as e:
                raise self._error("open", e) from e
            except OSError as e:
                raise WorldError(
                    f"cannot create the folder of the sqlite world {cfg.path}: {e}; "
                    "check the path and its permissions, or set another with --world / "
                    "$DURABLY_WORLD"
                ) from e
            key = os.path.realpath(cfg.path)
            with self._hubs_lock:
                hub = self._hubs.get(key)
                if hub is None:
                    hub = self._hubs[key] = _Hub()
                    hub.checkpointer = _Checkpointer(cfg.path, cfg.busy_timeout_ms)
                hub.refs += 1
            self._writer, self._hub, self._hub_key = conn, hub, key
            self._local = threading.local()
            self._closed = False
            return conn, hub

    async def close(self) -> None:
        """Close every connection of this world; idempotent."""
        with self._state_lock:
            self._closed = True
            writer, hub = self._writer, self._hub
            self._writer = self._hub = None
            readers, self._readers = list(self._readers), weakref.WeakSet()
            self._local = threading.local()
        for reader in readers:
            reader.conn.close()
        if writer is not None and hub is not None:
            with hub.write_lock:
                writer.close()
            with self._hubs_lock:
                hub.refs -= 1
                last = hub.refs <= 0 and self._hubs.get(self._hub_key) is hub
                if last:
                    del self._hubs[self._hub_key]
            if last and hub.checkpointer is not None:
                hub.checkpointer.stop()

    def _connect(self) -> sqlite3.Connection:
        cfg = self.config
        conn = sqlite3.connect(
            cfg.path,
            timeout=cfg.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        conn.execute(q.PRAGMA_BUSY_TIMEOUT.format(ms=cfg.busy_timeout_ms))
        return conn

    def _live(self) -> tuple[sqlite3.Connection, _Hub]:
        writer, hub = self._writer, self._hub
        if writer is not None and hub is not None:
            return writer, hub
        if self._closed:
            raise WorldError(f"the sqlite world {self.config.path} is closed; open it again")
        return self._open_sync()

    def _reader(self) -> sqlite3.Connection:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is not None:
            return reader.conn
        self._live()
        try:
            conn = self._connect()
            conn.execute(q.PRAGMA_QUERY_ONLY)
        except sqlite3.Error as e:
            raise self._error("open", e) from e
        # The thread's local holds the only strong reference: when the thread ends,
        # the connection is closed with it; close() closes those still alive.
        reader = _Reader(conn)
        with self._state_lock:
            self._readers.add(reader)
        self._local.reader = reader
        return conn

    def _error(self, action: str, e: sqlite3.Error) -> WorldError:
        msg = f"sqlite world {self.config.path}: cannot {action}: {e}"
        if "locked" in str(e) or "busy" in str(e):
            msg += (
                f"; another process held the database longer than busy_timeout_ms="
                f"{self.config.busy_timeout_ms}: raise it in the URL "
                "(?busy_timeout_ms=N) or find the process holding the file"
            )
        return WorldError(msg)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> tuple[T, _Hub]:
        """Run ``work`` inside ``BEGIN IMMEDIATE ... COMMIT``; roll back on any error."""
        conn, hub = self._live()
        with hub.write_lock:
            if conn is not self._writer:  # closed by another thread meanwhile
                conn, hub = self._live()
            try:
                conn.execute(q.BEGIN_IMMEDIATE)
            except sqlite3.OperationalError as e:
                raise self._error("write", e) from e
            try:
                result = work(conn)
                conn.execute(q.COMMIT)
                if hub.checkpointer is not None:
                    hub.checkpointer.dirty.set()
            except BaseException:
                if conn.in_transaction:
                    conn.execute(q.ROLLBACK)
                raise
        return result, hub

    # -- writes ------------------------------------------------------------------------

    async def commit(self, commit: Commit) -> CommitResult:
        """Apply the writes atomically (one transaction) and return one result per write."""

        def work(conn: sqlite3.Connection) -> tuple[CommitResult, SqlStore]:
            now = time.time()
            store = SqlStore(conn, now)
            result = apply_commit(store, commit, now)
            if result.new_work:
                conn.execute(q.BUMP_WORK_CLOCK)
            return result, store

        (result, store), hub = self._write(work)
        hub.committed(store.changed_runs, new_work=result.new_work)
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
    ) -> Claim:
        """Lease runs that need a turn and tasks that are due, oldest first."""
        if max_runs <= 0 and max_tasks <= 0:
            return Claim()

        def work(conn: sqlite3.Connection) -> Claim:
            now = time.time()
            until = now + lease_seconds
            out = Claim()
            where = {"namespace": namespace, "deployment": deployment, "now": now}
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
            return out

        return self._write(work)[0]

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
            until = time.time() + lease_seconds
            conn.executemany(q.EXTEND_RUN_LEASE, [(until, rid, owner) for rid in run_ids])
            conn.executemany(q.EXTEND_TASK_LEASE, [(until, r, c, owner) for r, c in tasks])

        self._write(work)

    async def release(
        self, *, owner: str, run_ids: Sequence[str], tasks: Sequence[tuple[str, int]]
    ) -> None:
        """Hand back leases early (tasks become claimable again at once)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(q.RELEASE_RUN, [(rid, owner) for rid in run_ids])
            conn.executemany(q.RELEASE_TASK, [(r, c, owner) for r, c in tasks])
            conn.execute(q.BUMP_WORK_CLOCK)

        if run_ids or tasks:
            _, hub = self._write(work)
        else:
            hub = self._live()[1]
        hub.work.fire()

    # -- reads -------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            raise self._error("read", e) from e

    async def next_due(self, *, namespace: str, deployment: str) -> float | None:
        """When the earliest queued run turn or task becomes claimable, if any."""
        runs, tasks = self._read(q.NEXT_DUE, {"namespace": namespace, "deployment": deployment})[0]
        due = [float(at) for at in (runs, tasks) if at is not None]
        return min(due) if due else None

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's projection, or ``None``."""
        rows = self._read(q.GET_RUN_ROW, (run_id,))
        return run_row_from_row(rows[0]).record if rows else None

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
        return [run_row_from_row(r).record for r in self._read(q.LIST_RUNS, params)]

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""
        rows = self._read(q.READ_EVENTS, (run_id, after_seq, -1 if limit is None else limit))
        return [event_from_row(r) for r in rows]

    async def read_command(self, run_id: str, call: int) -> Event | None:
        """The command event that created durable call ``call`` of the run."""
        rows = self._read(q.READ_COMMAND, (run_id, call))
        return event_from_row(rows[0]) if rows else None

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        """The run's ``steps`` projection, by call."""
        return [step_from_row(r) for r in self._read(q.LIST_STEPS, (run_id,))]

    # -- waiting -----------------------------------------------------------------------

    async def wait_for_work(self, *, namespace: str, timeout: float) -> None:
        """Return when new work may be claimable, or after ``timeout`` seconds.

        A commit or release in this process wakes at once; one by another process is
        noticed by polling the work clock (every 5 ms, backing off to 250 ms), which
        every commit that makes work claimable advances.
        """
        hub = self._live()[1]
        version = self._read(q.GET_WORK_CLOCK, ())[0][0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = POLL_START
        while (remaining := deadline - loop.time()) > 0:
            if await hub.work.wait(min(interval, remaining)):
                return
            if self._read(q.GET_WORK_CLOCK, ())[0][0] != version:
                return
            interval = min(interval * 2, WORK_POLL_MAX)

    async def wait_for_run(self, run_id: str, *, after_seq: int, timeout: float) -> None:
        """Return when the run's log grows past ``after_seq``, or after ``timeout``.

        Returns at once if the run does not exist. A commit in this process wakes at
        once; a commit by another process is noticed by polling the run's ``last_seq``
        (every 5 ms, backing off to 100 ms).
        """
        hub = self._live()[1]
        sig = hub.runs.watch(run_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            interval = POLL_START
            while True:
                rows = self._read(q.GET_LAST_SEQ, (run_id,))
                if not rows or rows[0][0] > after_seq:
                    return
                remaining = deadline - loop.time()
                if remaining <= 0 or await sig.wait(min(interval, remaining)):
                    return
                interval = min(interval * 2, RUN_POLL_MAX)
        finally:
            hub.runs.unwatch(run_id)

    # -- hooks -------------------------------------------------------------------------

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, if any."""
        rows = self._read(q.GET_HOOK, (token,))
        return hook_from_row(rows[0]) if rows else None

    async def list_hooks(
        self, *, namespace: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[HookRecord]:
        """Live hooks, newest first."""
        params = {"namespace": namespace, "run_id": run_id, "limit": max(limit, 0)}
        return [hook_from_row(r) for r in self._read(q.LIST_HOOKS, params)]

    # -- streams -----------------------------------------------------------------------

    async def append_chunks(
        self, batches: Sequence[ChunkBatch], sealer: PayloadSealer | None = None
    ) -> list[int]:
        """Append chunks to streams in one transaction (closing those asked to)."""

        def work(conn: sqlite3.Connection) -> tuple[list[int], SqlStore]:
            now = time.time()
            store = SqlStore(conn, now)
            counts: list[int] = []
            closing: list[RunWrite] = []
            for b in batches:
                if store.get_run_row(b.run_id) is None:
                    raise ValueError(f"cannot write to a stream of run {b.run_id}: no such run")
                found = conn.execute(q.GET_STREAM, (b.run_id, b.namespace)).fetchall()
                count, closed = (found[0][0], found[0][1]) if found else (0, 0)
                if closed and (b.chunks or b.close):
                    raise ValueError(
                        f"stream {b.namespace or '(default)'!r} of run {b.run_id} is closed"
                    )
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
                            )
                            for i, p in enumerate(b.chunks)
                        ],
                    )
                    count += len(b.chunks)
                conn.execute(q.PUT_STREAM, (b.run_id, b.namespace, count, now))
                store.changed_streams.add((b.run_id, b.namespace))
                counts.append(count)
                if b.close:
                    fact = NewEvent(
                        EventType.STREAM_CLOSED, None, {"namespace": b.namespace, "count": count}
                    )
                    closing.append(RunWrite(b.run_id, facts=[fact]))
            if closing:
                apply_commit(store, Commit(closing, sealer=sealer), now)
            return counts, store

        (counts, store), hub = self._write(work)
        hub.committed(store.changed_runs, new_work=False)
        hub.streams.fire(store.changed_streams)
        return counts

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        """Chunks from ``start_index`` on, and whether the reader is done."""
        start = max(start_index, 0)
        state = self._read(q.GET_STREAM, (run_id, namespace))
        rows = self._read(q.READ_CHUNKS, (run_id, namespace, start, max(limit, 0)))
        chunks = [StreamChunk(r[0], r[1], r[2]) for r in rows]
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
        hub = self._live()[1]
        key = (run_id, namespace)
        sig = hub.streams.watch(key)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            interval = POLL_START
            while True:
                armed = sig.arm()
                rows = self._read(q.GET_STREAM, key)
                if rows and (rows[0][0] > after_count or rows[0][1]):
                    sig.disarm(armed)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0 or await sig.wait(min(interval, remaining), armed):
                    return
                interval = min(interval * 2, RUN_POLL_MAX)
        finally:
            hub.streams.unwatch(key)

    async def stream_info(self, run_id: str) -> list[StreamInfo]:
        """The run's streams."""
        return [
            StreamInfo(r[0], r[1], bool(r[2]), r[3]) for r in self._read(q.STREAM_INFO, (run_id,))
        ]

    # -- deployments -------------------------------------------------------------------

    async def touch_deployment(self, namespace: str, deployment: str) -> None:
        """Record that a worker of ``deployment`` is alive now."""
        now = time.time()
        self._write(
            lambda conn: conn.execute(q.TOUCH_DEPLOYMENT, (namespace, deployment, now, now))
        )

    async def list_deployments(self, namespace: str | None = None) -> list[DeploymentRecord]:
        """Deployments seen, newest first, with their runs in flight."""
        rows = self._read(q.LIST_DEPLOYMENTS, {"namespace": namespace})
        return [DeploymentRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def move_runs(self, namespace: str, from_deployment: str, to_deployment: str) -> int:
        """Re-pin waiting runs of one deployment to another."""

        def work(conn: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in conn.execute(
                    q.MOVABLE_RUNS, (namespace, from_deployment, time.time())
                ).fetchall()
            ]
            for rid in ids:
                conn.execute(q.MOVE_RUN, (to_deployment, rid))
                conn.execute(q.MOVE_RUN_TASKS, (to_deployment, rid))
            if ids:
                conn.execute(q.BUMP_WORK_CLOCK)
            return len(ids)

        moved, hub = self._write(work)
        if moved:
            hub.committed(set(), new_work=True)
        return moved

    # -- payloads at rest (re-encryption) ----------------------------------------------

    async def scan_event_payloads(
        self, *, after: tuple[str, int] | None, limit: int
    ) -> list[Event]:
        """Events that carry a payload, in (run_id, seq) order after ``after``."""
        rid, seq = after if after is not None else ("", 0)
        return [event_from_row(r) for r in self._read(q.SCAN_EVENT_PAYLOADS, (rid, seq, limit))]

    async def scan_chunk_payloads(
        self, *, after: tuple[str, str, int] | None, limit: int
    ) -> list[tuple[str, str, StreamChunk]]:
        """Stream chunks in (run_id, namespace, index) order after ``after``."""
        rid, ns, idx = after if after is not None else ("", "", -1)
        rows = self._read(q.SCAN_CHUNK_PAYLOADS, (rid, ns, idx, limit))
        return [(r[0], r[1], StreamChunk(r[2], r[3], r[4])) for r in rows]

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

        return self._write(work)[0]
