"""Wake-ups for one database schema, shared by every world of the process open on it.

One connection per process LISTENs, on a thread of its own (so it outlives the event
loops that come and go: a test's, an ``asyncio.run``'s). Commits NOTIFY in their
transaction, on two kinds of channels:

* the schema's channel, with the namespaces that got new work: every worker listens;
* one channel per run, with the run's new ``last_seq`` (or a stream that got chunks):
  only processes waiting on that run listen, so a worker that waits on nothing hears
  nothing of the thousands of commits its peers make.

The hub turns notifications into in-process :class:`~durably.worlds.notify.Signal` fires.
Commits made in this process fire at once, without waiting for their own notification
(which carries this process's token, and is skipped).

The hub also remembers what it knows to be idle, so that an idle worker asks the
database almost nothing: after a claim found nothing and ``next_due`` said when the next
thing is due, claims return nothing without a query until that time, a notification for
the namespace, a reconnection of the listener, or ``POLL_FALLBACK`` seconds (in case a
notification was missed), whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import asyncpg

from ...clock import wall_time
from ..notify import Signal, WatchedSignals
from .config import PostgresConfig

__all__ = ["POLL_FALLBACK", "Hub", "queue_key"]

_log = logging.getLogger("durably.worlds.postgres")

#: The slow polling that backs up LISTEN/NOTIFY: an idle worker looks at the queue, and a
#: waiter at its run, at least this often.
POLL_FALLBACK = 5.0
#: A run's channel stays listened to this long after its last waiter left (a caller
#: waiting for a run's end calls ``wait_for_run`` again after every event).
LINGER = 10.0
#: Runs whose ``last_seq`` the hub follows at most.
TRACKED_RUNS = 10_000

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_LOCK_SHARED = "SELECT pg_advisory_lock_shared($1::bigint)"
_UNLOCK_SHARED = "SELECT pg_advisory_unlock_shared($1::bigint)"


def queue_key(
    deployment: str, workflows: Collection[str] | None, steps: Collection[str] | None
) -> str:
    """What the hub keeps a queue's idle state under, beside its namespace: the
    deployment and the names claimed (registries of other names share the hub, and a
    queue idle for one of them may hold work for another)."""
    if workflows is None and steps is None:
        return deployment
    names = [None if n is None else sorted(n) for n in (workflows, steps)]
    return _dumps([deployment, *names])


@dataclass(slots=True)
class _Idle:
    token: tuple[int, int]
    until: float
    due: float | None


class Hub:
    """What every world of this process open on one database schema shares."""

    _hubs: ClassVar[dict[tuple[str, str], Hub]] = {}
    _hubs_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def acquire(cls, config: PostgresConfig) -> Hub:
        """The hub of ``config``'s database schema, made on first use; pair with
        :meth:`release`."""
        key = (config.dsn, config.schema)
        with cls._hubs_lock:
            hub = cls._hubs.get(key)
            if hub is None:
                hub = cls._hubs[key] = Hub(config)
            hub._refs += 1
        return hub

    def release(self) -> None:
        """Drop one reference; the last one stops the listener."""
        key = (self.config.dsn, self.config.schema)
        with self._hubs_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            if self._hubs.get(key) is self:
                del self._hubs[key]
        self._stop()

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        #: Marks this process's notifications, which its listener skips.
        self.token = secrets.token_hex(8)
        self._prefix = "durably:" + hashlib.sha256(config.schema.encode()).hexdigest()[:8] + ":"
        self._refs = 0
        self._lock = threading.Lock()
        self._epoch = 0  # bumped whenever notifications may have been missed
        self._healthy = False
        # work
        self._gen: dict[str, int] = {}
        self._work: dict[str, Signal] = {}
        self._empty: dict[tuple[str, str], tuple[int, int]] = {}
        self._empty_ns: dict[str, tuple[int, int]] = {}
        self._idle: dict[tuple[str, str], _Idle] = {}
        # runs and streams
        self._runs: WatchedSignals[str] = WatchedSignals()
        #: Fired when a run ends here, or on any notification of the run from another
        #: process: a waiter for the end is not woken by the steps of this process.
        self._ends: WatchedSignals[str] = WatchedSignals()
        self._streams: WatchedSignals[tuple[str, str]] = WatchedSignals()
        self._wanted: dict[str, int] = {}  # run_id -> local waiters (runs and streams)
        self._wanted_steps: dict[str, int] = {}  # run_id -> local waiters of every commit
        self._locked: set[str] = set()  # runs whose watch lock the live connection holds
        self._linger: dict[str, float] = {}  # run_id -> when its last waiter left
        self._listening: set[str] = set()  # run channels LISTENed on the live connection
        self._seqs: OrderedDict[str, tuple[int | None, int]] = OrderedDict()
        self._notes: dict[str, tuple[str, str, str]] = {}  # see _run_note
        # the listener thread
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: asyncpg.Connection | None = None
        self._conn_lock = asyncio.Lock()  # one operation at a time on the connection
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._halt = threading.Event()

    def watch_key(self, run_id: str) -> int:
        """The advisory lock a process holds (shared) while it wants every commit of
        the run notified: a commit NOTIFYs a run's channel for a step only when it
        cannot take that lock (see ``queries._checked``). Keys are per schema; a
        collision only costs a NOTIFY nobody needed."""
        digest = hashlib.sha256((self._prefix + run_id).encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _run_note(self, run_id: str) -> tuple[str, str, str]:
        """A run's channel, the head of its notes' payload (up to the ``last_seq``) and
        its watch key as text: made once per run, not at every step's commit."""
        parts = self._notes.get(run_id)
        if parts is None:
            if len(self._notes) >= TRACKED_RUNS:
                self._notes.clear()
            head = _dumps([self.token, run_id])[:-1] + ","
            parts = (self.run_channel(run_id), head, str(self.watch_key(run_id)))
            self._notes[run_id] = parts
        return parts

    def run_channel(self, run_id: str) -> str:
        """The channel of one run's changes (at most 63 bytes, as Postgres wants)."""
        name = self._prefix + run_id
        if len(name.encode()) > 63:
            name = self._prefix + hashlib.sha256(run_id.encode()).hexdigest()[:40]
        return name

    # -- the listener thread ----------------------------------------------------------

    async def listening(self) -> None:
        """Start the listener if it is not running, and wait for its first LISTEN (or
        its failure): a waiter that reads the database after this misses nothing."""
        with self._lock:
            if self._thread is None:
                self._ready.clear()
                self._thread = threading.Thread(
                    target=self._main, name=f"durably-listen-{self.config.schema}", daemon=True
                )
                self._thread.start()
        if not self._ready.is_set():
            await asyncio.to_thread(self._ready.wait, 15.0)

    def _stop(self) -> None:
        self._halt.set()
        with self._lock:
            thread, loop, stopping = self._thread, self._loop, self._stopping
            self._thread = None
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._listen(loop))
        finally:
            loop.close()

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        stopping = asyncio.Event()
        with self._lock:
            self._loop, self._stopping = loop, stopping
        if self._halt.is_set():  # stopped before this thread got going
            stopping.set()
        delay = 0.1
        while not stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.config.dsn,
                    timeout=10,
                    server_settings={"application_name": "durably-listener"},
                )
                _keepalive(conn)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(self.config.channel, self._on_work)
                with self._lock:
                    runs = set(self._wanted) | set(self._linger)
                    steps = set(self._wanted_steps)
                for run_id in runs:
                    await conn.add_listener(self.run_channel(run_id), self._on_run)
                for run_id in steps:
                    await conn.execute(_LOCK_SHARED, self.watch_key(run_id))
                with self._lock:
                    self._conn = conn
                    self._listening = {self.run_channel(r) for r in runs}
                    self._locked = steps
                self._set_healthy(True)
                self._ready.set()
                delay = 0.1
                while not stopping.is_set() and not lost.is_set():
                    waits = [
                        asyncio.ensure_future(stopping.wait()),
                        asyncio.ensure_future(lost.wait()),
                    ]
                    try:
                        await asyncio.wait(
                            waits, timeout=LINGER / 2, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        for w in waits:
                            w.cancel()
                    await self._sweep(conn)
            except Exception as e:
                _log.warning(
                    "durably: listening on %s failed (%s: %s); retrying in %.1fs",
                    self.config.display,
                    type(e).__name__,
                    e,
                    delay,
                )
            finally:
                with self._lock:
                    self._conn = None
                    self._listening = set()
                    self._locked = set()
                self._set_healthy(False)
                self._ready.set()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2.0)
                    if not conn.is_closed():
                        conn.terminate()
            if not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(delay * 2, 2.0)

    async def _sweep(self, conn: asyncpg.Connection) -> None:
        """Stop listening to runs nobody has waited on for ``LINGER`` seconds."""
        now = time.monotonic()
        with self._lock:
            done = [r for r, t in self._linger.items() if now - t >= LINGER]
        for run_id in done:
            channel = self.run_channel(run_id)
            async with self._conn_lock:
                with self._lock:
                    since = self._linger.get(run_id)
                    if since is None or now - since < LINGER or conn.is_closed():
                        continue  # a waiter came back meanwhile
                    del self._linger[run_id]
                    self._listening.discard(channel)
                    self._seqs.pop(run_id, None)
                    locked = run_id in self._locked
                    self._locked.discard(run_id)
                await conn.remove_listener(channel, self._on_run)
                if locked:
                    await conn.execute(_UNLOCK_SHARED, self.watch_key(run_id))

    async def _listen_run(self, run_id: str, steps: bool) -> None:
        """LISTEN to a run's channel (on the listener's loop); with ``steps``, hold its
        watch lock too, so that every commit of the run notifies (not only its end).
        The lock is taken after the LISTEN: a commit that took the lock first has
        committed before this returns (the waiter's next read sees it), one after it
        notifies."""
        channel = self.run_channel(run_id)
        async with self._conn_lock:
            conn = self._conn
            with self._lock:
                if conn is None:
                    return
                listen = channel not in self._listening
                lock = steps and run_id not in self._locked
            assert conn is not None
            live: asyncpg.Connection = conn
            if listen:
                await conn.add_listener(channel, self._on_run)
                with self._lock:
                    if self._conn is conn:
                        self._listening.add(channel)
            if lock:
                await live.execute(_LOCK_SHARED, self.watch_key(run_id))
                with self._lock:
                    if self._conn is live:
                        self._locked.add(run_id)

    def _set_healthy(self, healthy: bool) -> None:
        # Either way, what was known may be stale: forget it, wake everyone to re-check.
        with self._lock:
            if self._healthy == healthy:
                return
            self._healthy = healthy
            self._epoch += 1
            self._idle.clear()
            self._empty.clear()
            self._empty_ns.clear()
            self._seqs.clear()
            signals = [
                *self._work.values(),
                *(s for _, s in self._runs.items()),
                *(s for _, s in self._ends.items()),
                *(s for _, s in self._streams.items()),
            ]
        for sig in signals:
            sig.fire()

    def _on_work(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = json.loads(payload)
            if note["o"] != self.token:
                self.work_arrived(str(ns) for ns in note["w"])
        except (ValueError, KeyError, TypeError):
            return

    def _on_run(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            note = json.loads(payload)
            if note[0] == self.token:
                return
            if len(note) == 3:
                self.runs_changed({str(note[1]): int(note[2])})
                self._ends.fire([str(note[1])])
            else:
                self.streams_changed([(str(note[1]), str(note[3]))])
        except (ValueError, IndexError, TypeError):
            return

    # -- notifying --------------------------------------------------------------------

    def notifications(
        self,
        namespaces: Iterable[str],
        runs: Mapping[str, int],
        streams: Iterable[tuple[str, str]] = (),
        ended: Collection[str] | None = None,
    ) -> list[list[str]]:
        """The ``[channel, payload]`` pairs a commit NOTIFYs: the namespaces that got new
        work, the runs whose log grew, the streams that got chunks.

        With ``ended`` (the runs the commit ended), the note of a run that did not end
        carries its watch lock's key as a third item: the commit sends it only if some
        process holds that lock (waits on the run's steps), so a run nobody follows
        costs no NOTIFY per step, only one at its end."""
        out: list[list[str]] = []
        ns = sorted(set(namespaces))
        for i in range(0, len(ns), 50):  # payloads stay far under 8000 bytes
            out.append([self.config.channel, _dumps({"o": self.token, "w": ns[i : i + 50]})])
        for run_id, seq in runs.items():
            channel, head, key = self._run_note(run_id)
            note = [channel, f"{head}{int(seq)}]"]
            if ended is not None and run_id not in ended:
                note.append(key)
            out.append(note)
        for run_id, namespace in sorted(set(streams)):
            out.append([self.run_channel(run_id), _dumps([self.token, run_id, "c", namespace])])
        return out

    def work_arrived(self, namespaces: Iterable[str]) -> None:
        """New work may be claimable in ``namespaces``: wake their waiters."""
        fire: list[Signal] = []
        with self._lock:
            for ns in namespaces:
                self._gen[ns] = self._gen.get(ns, 0) + 1
                for key in [k for k in self._idle if k[0] == ns]:
                    del self._idle[key]
                sig = self._work.get(ns)
                if sig is not None:
                    fire.append(sig)
        for sig in fire:
            sig.fire()

    def runs_changed(self, runs: Mapping[str, int]) -> None:
        """The logs of ``runs`` grew to the given ``last_seq``: wake their waiters."""
        fire: list[Signal] = []
        with self._lock:
            for run_id, seq in runs.items():
                known = self._seqs.get(run_id)
                if known is not None:
                    self._seqs[run_id] = (max(known[0] or 0, int(seq)), known[1])
                watched = self._runs.get(run_id)
                if watched is not None:
                    fire.append(watched)
            if self._streams:
                # A stream closes with an event of its run (its end, stream_closed).
                fire += [s for k, s in self._streams.items() if k[0] in runs]
        for sig in fire:
            sig.fire()

    def runs_ended(self, run_ids: Iterable[str]) -> None:
        """These runs ended (a commit of this process): wake the waiters of their end."""
        self._ends.fire(run_ids)

    def streams_changed(self, keys: Iterable[tuple[str, str]]) -> None:
        """These streams got chunks or closed: wake their readers."""
        self._streams.fire(keys)

    # -- waiting for work -------------------------------------------------------------

    def work_signal(self, namespace: str) -> Signal:
        """The signal fired when work may have arrived in ``namespace``."""
        with self._lock:
            sig = self._work.get(namespace)
            if sig is None:
                sig = self._work[namespace] = Signal()
            return sig

    def work_token(self, namespace: str) -> tuple[int, int]:
        """Changes whenever work may have arrived in ``namespace``."""
        with self._lock:
            return (self._gen.get(namespace, 0), self._epoch)

    def claimed(self, namespace: str, deployment: str, token: tuple[int, int], found: bool) -> None:
        """Record what a claim that asked for runs and tasks found."""
        key = (namespace, deployment)
        with self._lock:
            self._idle.pop(key, None)
            if found:
                self._empty.pop(key, None)
            else:
                self._empty[key] = token
                self._empty_ns[namespace] = token

    def arrived_since_empty_claim(self, namespace: str) -> bool:
        """Work may have arrived since a claim in ``namespace`` last found nothing."""
        with self._lock:
            last = self._empty_ns.get(namespace)
            return last is not None and last != (self._gen.get(namespace, 0), self._epoch)

    def idle_until(self, namespace: str, deployment: str) -> _Idle | None:
        """What is known about an idle queue, while it is still known."""
        key = (namespace, deployment)
        with self._lock:
            idle = self._idle.get(key)
            if idle is None:
                return None
            if idle.token != (self._gen.get(namespace, 0), self._epoch) or (
                wall_time() >= idle.until
            ):
                del self._idle[key]
                return None
            return idle

    def learned_next_due(
        self, namespace: str, deployment: str, token: tuple[int, int], due: float | None, at: float
    ) -> None:
        """``next_due`` (read at ``at``, with ``token`` taken before) said ``due``: if
        nothing arrived since the queue's last claim found nothing, it stays idle until
        then (or until ``POLL_FALLBACK`` seconds from now)."""
        key = (namespace, deployment)
        with self._lock:
            current = (self._gen.get(namespace, 0), self._epoch)
            if not self._healthy or token != current or self._empty.get(key) != current:
                return
            until = at + POLL_FALLBACK if due is None else min(due, at + POLL_FALLBACK)
            self._idle[key] = _Idle(current, until, due)

    # -- waiting for a run or a stream ------------------------------------------------

    async def _want(self, run_id: str, steps: bool = True) -> None:
        """Count one more local waiter on the run (``steps``: on every commit of it, not
        only its end), and be listening to its channel (holding its watch lock) before
        returning, so a read of the database after this misses nothing."""
        await self.listening()
        with self._lock:
            self._wanted[run_id] = self._wanted.get(run_id, 0) + 1
            if steps:
                self._wanted_steps[run_id] = self._wanted_steps.get(run_id, 0) + 1
            self._linger.pop(run_id, None)
            loop = self._loop
            need = self._healthy and (
                self.run_channel(run_id) not in self._listening
                or (steps and run_id not in self._locked)
            )
        if need and loop is not None:
            try:
                fut = asyncio.run_coroutine_threadsafe(self._listen_run(run_id, steps), loop)
                await asyncio.wait_for(asyncio.wrap_future(fut), 10.0)
            except asyncio.CancelledError:
                self._unwant(run_id, steps)
                raise
            except Exception:
                pass  # the waiter falls back to polling

    def _unwant(self, run_id: str, steps: bool = True) -> None:
        with self._lock:
            if steps:
                left = self._wanted_steps.get(run_id, 0) - 1
                if left > 0:
                    self._wanted_steps[run_id] = left
                else:
                    self._wanted_steps.pop(run_id, None)
            n = self._wanted.get(run_id, 0) - 1
            if n > 0:
                self._wanted[run_id] = n
            else:
                self._wanted.pop(run_id, None)
                self._linger[run_id] = time.monotonic()

    async def watch_run(self, run_id: str) -> Signal:
        """The signal fired when the run's log grows; pair with :meth:`unwatch_run`."""
        await self._want(run_id)
        return self._runs.watch(run_id)

    def unwatch_run(self, run_id: str) -> None:
        self._runs.unwatch(run_id)
        self._unwant(run_id)

    async def watch_end(self, run_id: str) -> Signal:
        """The signal fired when the run may have ended; pair with :meth:`unwatch_end`.
        Takes no watch lock: other processes notify such a waiter of the run's end
        only (unless someone follows its steps)."""
        await self._want(run_id, steps=False)
        return self._ends.watch(run_id)

    def unwatch_end(self, run_id: str) -> None:
        self._ends.unwatch(run_id)
        self._unwant(run_id, steps=False)

    async def watch_stream(self, key: tuple[str, str]) -> Signal:
        """The signal fired when the stream grows or closes; pair with
        :meth:`unwatch_stream`."""
        await self._want(key[0])
        return self._streams.watch(key)

    def unwatch_stream(self, key: tuple[str, str]) -> None:
        self._streams.unwatch(key)
        self._unwant(key[0])

    def known_last_seq(self, run_id: str) -> int | None:
        """The run's ``last_seq`` if the hub has followed it without a gap since it was
        last read from the database, else ``None``."""
        with self._lock:
            known = self._seqs.get(run_id)
            if known is None or known[0] is None or known[1] != self._epoch:
                return None
            self._seqs.move_to_end(run_id)
            return known[0]

    def follow_run(self, run_id: str) -> int:
        """Start following the run's ``last_seq`` (before reading it from the database);
        returns the token to pass to :meth:`followed` (``-1``: cannot follow it now)."""
        with self._lock:
            if not self._healthy or run_id not in self._locked:
                return -1
            if run_id not in self._seqs:
                self._seqs[run_id] = (None, self._epoch)
                while len(self._seqs) > TRACKED_RUNS:
                    self._seqs.popitem(last=False)
            return self._epoch

    def followed(self, run_id: str, epoch: int, last_seq: int | None) -> None:
        """The database said ``last_seq`` (``None``: no such run) after
        :meth:`follow_run`."""
        with self._lock:
            known = self._seqs.get(run_id)
            if known is None or known[1] != epoch or epoch != self._epoch:
                return
            if last_seq is None:
                del self._seqs[run_id]
            else:
                self._seqs[run_id] = (max(known[0] or 0, last_seq), epoch)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


def _keepalive(conn: asyncpg.Connection) -> None:
    """Let TCP notice a listener whose server vanished without closing the connection."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
