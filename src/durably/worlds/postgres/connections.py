"""Connections of one PostgreSQL world: an asyncpg pool per event loop that uses the
world, retries while the server is out of reach, and error messages that say what to
check.

asyncpg pools are bound to the loop that made them, and a world outlives loops (pytest
makes one per test; a registry may be reopened under a new ``asyncio.run``), so each
loop gets its own pool, made on first use and closed when the world closes or, at the
latest, when its loop shuts down.

Commits go first to a connection of their own beside the pool (:meth:`Connections.
committer`): a worker's commits follow one another (its group commit sends one at a
time), and one held connection spares each the pool's acquire and release, a good part
of a step's client time. A commit that finds it busy takes a pooled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg

from ...errors import WorldError
from .config import PostgresConfig

__all__ = ["Connections", "is_disconnect"]

#: Seconds a statement may take before its connection is given up (asyncpg's
#: ``command_timeout`` on pooled connections, the committer's watch on its own).
COMMIT_TIMEOUT = 60.0
#: How often the committer's watch looks at the commit holding its connection.
WATCH_EVERY = 5.0

#: Errors that mean "try again with the connection locked" rather than "failed".
LOST_RACE = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.UniqueViolationError,
)


def is_disconnect(e: BaseException) -> bool:
    """True for errors that say the server is (for now) out of reach, or that the
    connection is no longer usable (another one will do)."""
    if isinstance(
        e,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.TooManyConnectionsError
        | asyncpg.InternalClientError,
    ):
        return True
    return isinstance(e, asyncpg.InterfaceError) and "closed" in str(e)


class Outage:
    """Backoff while the server is unreachable, up to ``reconnect_seconds``."""

    def __init__(self, db: Connections, what: str) -> None:
        self.db = db
        self.what = what
        self.deadline: float | None = None
        self.delay = 0.05

    async def wait(self, error: BaseException) -> None:
        """Sleep before the next try, or raise ``WorldError`` once out of time."""
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.db.config.reconnect_seconds
        if now >= self.deadline:
            raise self.db.unreachable(error, self.what) from error
        await asyncio.sleep(min(self.delay, self.deadline - now))
        self.delay = min(self.delay * 2, 1.0)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool connections keep their session as is between uses: durably changes none of
    it, and asyncpg's default reset costs a round trip at every release."""


class Connections:
    """The pools of one world, one per event loop."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._pools: dict[asyncio.AbstractEventLoop, asyncpg.Pool] = {}
        self._pool_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._committers: dict[asyncio.AbstractEventLoop, _Committer] = {}

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own (not pooled), for migrations."""
        return await asyncpg.connect(
            self.config.dsn, timeout=10, server_settings=dict(self.config.server_settings)
        )

    async def pool(self) -> asyncpg.Pool:
        """This event loop's pool, made on first use."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        with self._lock:
            lock = self._pool_locks.get(loop)
            if lock is None:
                lock = self._pool_locks[loop] = asyncio.Lock()
        async with lock:
            pool = self._pools.get(loop)
            if pool is not None:
                return pool
            committer = _Committer(self)
            pool = await asyncpg.create_pool(
                self.config.dsn,
                min_size=0,  # no floor to restore (and log about) when the server restarts
                # pool_size counts the committer's connection too
                max_size=max(self.config.pool_size - 1, 1),
                timeout=10,
                command_timeout=COMMIT_TIMEOUT,
                reset=_keep_session,
                server_settings=dict(self.config.server_settings),
            )
            # A loop closes its async generators when it shuts down (asyncio.run, a
            # test's loop): this one closes the pool then, while the loop still runs.
            closer = _close_at_shutdown(pool, committer)
            await anext(closer)
            with self._lock:
                for old in [lp for lp in self._pools if lp.is_closed()]:
                    del self._pools[old]
                    self._closers.pop(old, None)
                    self._pool_locks.pop(old, None)
                    self._committers.pop(old, None)
                self._pools[loop] = pool
                self._closers[loop] = closer
                self._committers[loop] = committer
            return pool

    async def close(self) -> None:
        """Close every pool: this loop's now, those of other running loops on them."""
        with self._lock:
            pools, self._pools = self._pools, {}
            closers, self._closers = self._closers, {}
            committers, self._committers = self._committers, {}
            self._pool_locks = {}
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, pool in pools.items():
            if loop is current:
                await closers[loop].aclose()
            elif not loop.is_closed() and loop.is_running():
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(_close_pool(pool, committers.get(loop)), loop)
            # The pool of a loop that has stopped was closed at its shutdown.

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; one that failed other than with an error the server
        reported (a lost socket, a protocol left mid-operation) is thrown away, so the
        pool opens a fresh one instead of handing it out again."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            try:
                yield conn
            except BaseException as e:
                if is_disconnect(e) or isinstance(e, asyncio.CancelledError):
                    with contextlib.suppress(Exception):  # already gone back to the pool
                        conn.terminate()
                raise

    def committer(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection for one commit: this loop's committer connection when it is free
        (made on first use), else a pooled one (see :meth:`connection`)."""
        committer = self._committers.get(asyncio.get_running_loop())
        if committer is None or committer.busy or committer.closed:
            return self.connection()
        return committer

    async def fetch(
        self,
        what: str,
        sql: str,
        *args: Any,
        make_args: Callable[[], Sequence[Any]] | None = None,
    ) -> list[asyncpg.Record]:
        """Run one statement (its own transaction) and return its rows, retried while
        the server is out of reach; other database errors become ``WorldError``.

        ``make_args``, when given, makes the arguments anew for each try: a statement
        that carries the time (a claim's "now", a lease's end) must not be retried after
        an outage with the time it was first made at, or it would hand out leases that
        have already expired.
        """
        outage = Outage(self, what)
        while True:
            try:
                async with self.connection() as conn:
                    values = args if make_args is None else make_args()
                    rows: list[asyncpg.Record] = await conn.fetch(sql, *values)
                    return rows
            except Exception as e:
                if is_disconnect(e):
                    await outage.wait(e)
                    continue
                if isinstance(e, asyncpg.PostgresError):
                    raise self.failed(e, what) from e
                raise

    def unreachable(self, e: BaseException, what: str) -> WorldError:
        """The error for a server that cannot be reached (or refuses the connection)."""
        detail = f"{type(e).__name__}: {e}".rstrip(": ")
        if isinstance(e, asyncpg.InvalidCatalogNameError):
            hint = "the database does not exist: create it, or fix its name in the URL"
        elif isinstance(e, asyncpg.InvalidAuthorizationSpecificationError):
            hint = "check the user and password in the URL (or ~/.pgpass, $PGPASSWORD)"
        else:
            hint = (
                "check that PostgreSQL is running and reachable at that host and port, and "
                "that the user, password and database in the URL are right"
            )
        return WorldError(
            f"postgres world {self.config.display}: cannot {what}: {detail}; {hint} "
            "(set the URL with --world or $DURABLY_WORLD)"
        )

    def failed(self, e: asyncpg.PostgresError, what: str) -> WorldError:
        """The error for a statement the server refused."""
        hint = ""
        if isinstance(e, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError):
            hint = (
                f"; the schema {self.config.schema!r} is missing or incomplete: run "
                "`durably migrate` (or open the world again) to create it"
            )
        return WorldError(
            f"postgres world {self.config.display}: cannot {what}: {e} "
            f"(SQLSTATE {e.sqlstate}){hint}"
        )


class _Committer:
    """One event loop's connection for commits, held outside the pool: an async context
    manager that lends it to one commit at a time. A connection that failed other than
    with an error the server reported is thrown away; the next commit opens another."""

    __slots__ = ("busy", "closed", "conn", "db", "idle", "since", "watch")

    def __init__(self, db: Connections) -> None:
        self.db = db
        self.conn: asyncpg.Connection | None = None
        self.busy = False
        self.closed = False
        self.idle = asyncio.Event()  # set while no commit holds the connection
        self.idle.set()
        self.since = 0.0  # when the commit holding the connection began (loop time)
        self.watch: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        if self.closed:
            raise asyncpg.InterfaceError("the committer connection is closed")
        self.busy = True
        self.idle.clear()
        conn = self.conn
        if conn is None or conn.is_closed():
            try:
                # No command_timeout: asyncpg would arm and cancel a timer for every
                # statement; _watch does that job for the connection (one timer).
                conn = self.conn = await asyncpg.connect(
                    self.db.config.dsn,
                    timeout=10,
                    server_settings=dict(self.db.config.server_settings),
                )
            except BaseException:
                self.busy = False
                self.idle.set()
                raise
        self.since = asyncio.get_running_loop().time()
        if self.watch is None:
            self._watch()
        return conn

    def _watch(self) -> None:
        """Every few seconds while the connection is open: end a commit that has waited
        over ``COMMIT_TIMEOUT`` seconds (a server or a network gone silent) by dropping
        its connection. It then fails as a lost connection does, which the world settles
        (see ``PostgresWorld.commit``); the next commit opens another connection."""
        self.watch = None
        conn = self.conn
        if self.closed or conn is None or conn.is_closed():
            return
        loop = asyncio.get_running_loop()
        if self.busy and loop.time() - self.since > COMMIT_TIMEOUT:
            self.conn = None
            conn.terminate()
            return
        self.watch = loop.call_later(WATCH_EVERY, self._watch)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, _tb: Any
    ) -> None:
        self.busy = False
        self.idle.set()
        if e is None:
            return
        conn = self.conn
        if conn is not None and (is_disconnect(e) or isinstance(e, asyncio.CancelledError)):
            self.conn = None
            conn.terminate()
        elif conn is not None and not conn.is_closed() and conn.is_in_transaction():
            # Left mid-transaction (it cannot be: transactions close in their block);
            # do not lend it out in that state.
            self.conn = None
            conn.terminate()

    async def close(self) -> None:
        """Close the connection once the commit using it (if any) is done, as the pool
        does; a commit that comes after gets a closed-connection error."""
        self.closed = True
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), 5.0)
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5.0)
            except Exception:
                conn.terminate()


async def _close_pool(pool: asyncpg.Pool, committer: _Committer | None = None) -> None:
    if committer is not None:
        await committer.close()
    try:
        await asyncio.wait_for(pool.close(), 5.0)
    except Exception:
        pool.terminate()


async def _close_at_shutdown(
    pool: asyncpg.Pool, committer: _Committer
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await _close_pool(pool, committer)
