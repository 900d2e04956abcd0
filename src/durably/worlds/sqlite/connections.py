"""Connections of one SQLite world: one writer, serialized by the file's
:class:`~.hub.Hub` lock, each write inside ``BEGIN IMMEDIATE ... COMMIT``; and one
read-only connection per thread, so a reader never waits behind a writer (WAL gives it
the last committed snapshot)."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ...errors import WorldError, WorldFullError, WorldUnavailableError
from . import queries as q
from .config import SqliteConfig
from .hub import WAL_SAFETY_PAGES, Hub
from .memo import RowMemo
from .schema import migrate

__all__ = ["Connections"]

T = TypeVar("T")


class _Reader:
    """One thread's read connection (a weak-referenceable holder for it)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class Connections:
    """The writer and readers of one world on one database file."""

    def __init__(self, config: SqliteConfig) -> None:
        self.config = config
        self._state_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._hub: Hub | None = None
        self._closed = False
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._local = threading.local()
        #: The rows the writer committed last (used and kept up to date under the hub's
        #: write lock, by the writes that say they keep it: see :meth:`write`).
        self.rows = RowMemo()

    def open(self) -> tuple[sqlite3.Connection, Hub]:
        """Create the file and its folder if needed, bring the schema up to date, and
        join the file's hub; idempotent."""
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
                raise self.error("open", e) from e
            except OSError as e:
                raise WorldError(
                    f"cannot create the folder of the sqlite world {cfg.path}: {e}; "
                    "check the path and its permissions, or set another with --world / "
                    "$DURABLY_WORLD"
                ) from e
            hub = Hub.acquire(cfg.path, cfg.busy_timeout_ms)
            self._writer, self._hub = conn, hub
            self._local = threading.local()
            self.rows.clear()
            self._closed = False
            return conn, hub

    def close(self) -> None:
        """Close every connection; idempotent."""
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
            hub.release()

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

    def live(self) -> tuple[sqlite3.Connection, Hub]:
        """The writer and the hub, opening them on first use.

        Raises:
            WorldError: the world was closed.
        """
        writer, hub = self._writer, self._hub
        if writer is not None and hub is not None:
            return writer, hub
        if self._closed:
            raise WorldError(f"the sqlite world {self.config.path} is closed; open it again")
        return self.open()

    def hub(self) -> Hub:
        """The file's hub (opening the world on first use)."""
        return self.live()[1]

    def _reader(self) -> sqlite3.Connection:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is not None:
            return reader.conn
        self.live()
        try:
            conn = self._connect()
            conn.execute(q.PRAGMA_QUERY_ONLY)
        except sqlite3.Error as e:
            raise self.error("open", e) from e
        # The thread's local holds the only strong reference: when the thread ends,
        # the connection is closed with it; close() closes those still alive.
        reader = _Reader(conn)
        with self._state_lock:
            self._readers.add(reader)
        self._local.reader = reader
        return conn

    def error(self, action: str, e: sqlite3.Error) -> WorldError:
        """The error for a failed ``action`` ("open", "read", "write"): a
        :class:`WorldFullError` for a full disk, a :class:`WorldUnavailableError` for a
        lock another process held too long (nothing was written: the same write may
        succeed later), a :class:`WorldError` else."""
        path = self.config.path
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        if code == sqlite3.SQLITE_FULL or "disk is full" in str(e):
            folder = os.path.dirname(path) or "."
            return WorldFullError(
                f"sqlite world {path}: cannot {action}: disk full (no space left on the "
                f"file system of {folder}); nothing was written. Free space there, or move "
                "the database to a disk with room (--world / $DURABLY_WORLD); a worker "
                "retries its writes and goes on once there is room."
            )
        msg = f"sqlite world {path}: cannot {action}: {e}"
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(e):
            return WorldUnavailableError(
                f"{msg}; another process held the database's write lock longer than "
                f"busy_timeout_ms={self.config.busy_timeout_ms}; nothing was written. Raise "
                "it in the URL (?busy_timeout_ms=N) or find the process holding the file; "
                "a worker retries its writes until the lock is free."
            )
        return WorldError(msg)

    def read(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        """Run one read on this thread's connection and return its rows."""
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            raise self.error("read", e) from e

    def write(
        self, work: Callable[[sqlite3.Connection], T], *, keeps_rows: bool = False
    ) -> tuple[T, Hub]:
        """Run ``work`` inside ``BEGIN IMMEDIATE ... COMMIT``; roll back on any error.

        Args:
            work: the transaction's statements.
            keeps_rows: ``work`` keeps :attr:`rows` right (it forgets or updates what
                it changes there); otherwise the memo is dropped first.
        """
        conn, hub = self.live()
        with hub.write_lock:
            if conn is not self._writer:  # closed by another thread meanwhile
                conn, hub = self.live()
            if not keeps_rows:
                self.rows.clear()
            try:
                conn.execute(q.BEGIN_IMMEDIATE)
            except sqlite3.OperationalError as e:
                raise self.error("write", e) from e
            try:
                result = work(conn)
                conn.execute(q.COMMIT)
                if hub.checkpointer is not None:
                    hub.checkpointer.dirty.set()
            except sqlite3.OperationalError as e:
                # A full disk, or a lock held too long: say which, as a WorldError.
                self.rows.clear()  # the ledger may have changed remembered rows
                self._rollback(conn)
                raise self.error("write", e) from e
            except BaseException:
                self.rows.clear()
                self._rollback(conn)
                raise
        return result, hub

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute(q.ROLLBACK)
            except sqlite3.Error:
                pass  # SQLite rolled the transaction back itself (as on a full disk)
