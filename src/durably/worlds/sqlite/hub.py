"""What every world of this process open on one SQLite file shares: the write lock,
the wake-up signals, and the thread that checkpoints the WAL."""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import ClassVar

from ..notify import Signal, WatchedSignals
from . import queries as q

__all__ = ["CHECKPOINT_INTERVAL", "WAL_SAFETY_PAGES", "Checkpointer", "Hub"]

#: WAL pages after which a writer checkpoints itself. The checkpointer thread copies
#: nearly everything before (so little is left to copy then), but only a writer that
#: finds the WAL wholly copied starts it over from the top, and under steady commits
#: that is this one: the WAL is reused from its start every ~2,000 pages (4 MiB), so
#: commits overwrite blocks the file already has. Measured, a fresh database's
#: fsync'd step (synchronous=FULL) costs ~30% less than with 20,000 pages (a 41 MB
#: WAL that grows, so every fsync also commits the file's new size); NORMAL's is even.
WAL_SAFETY_PAGES = 2_000
#: How often the checkpointer thread copies the WAL back into the database.
CHECKPOINT_INTERVAL = 0.05


class Checkpointer:
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


class Hub:
    """What every world of this process open on one database file shares."""

    _hubs: ClassVar[dict[str, Hub]] = {}
    _hubs_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def acquire(cls, path: str, busy_timeout_ms: int) -> Hub:
        """The hub of the file at ``path``, made (with its checkpointer) on first use;
        pair with :meth:`release`."""
        key = os.path.realpath(path)
        with cls._hubs_lock:
            hub = cls._hubs.get(key)
            if hub is None:
                hub = cls._hubs[key] = Hub(key)
                hub.checkpointer = Checkpointer(path, busy_timeout_ms)
            hub.refs += 1
        return hub

    def release(self) -> None:
        """Drop one reference; the last one stops the checkpointer."""
        with self._hubs_lock:
            self.refs -= 1
            last = self.refs <= 0 and self._hubs.get(self.key) is self
            if last:
                del self._hubs[self.key]
        if last and self.checkpointer is not None:
            self.checkpointer.stop()

    def __init__(self, key: str) -> None:
        self.key = key
        self.refs = 0
        self.checkpointer: Checkpointer | None = None
        #: Serializes this process's writers on the file, so they never wait on each
        #: other in SQLite's busy handler (which sleeps in coarse steps).
        self.write_lock = threading.Lock()
        self.work = Signal()
        self.runs: WatchedSignals[str] = WatchedSignals()
        #: Fired only when a run ends: a waiter for the end is not woken by every step.
        self.ends: WatchedSignals[str] = WatchedSignals()
        self.streams: WatchedSignals[tuple[str, str]] = WatchedSignals()

    def committed(
        self, run_ids: set[str], *, new_work: bool, ended: set[str] | frozenset[str] = frozenset()
    ) -> None:
        """Wake the waiters of ``run_ids`` (and of the end of ``ended``), and the workers
        if ``new_work``."""
        self.runs.fire(run_ids)
        if ended:
            self.ends.fire(ended)
        if new_work:
            self.work.fire()
