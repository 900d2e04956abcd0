"""``durably.lock``: a semaphore shared by every run of a world, used in workflow bodies.

    @wf.workflow
    async def pay(account: str, cents: int) -> str:
        async with durably.lock(f"account:{account}"):
            balance = await read_balance(account)
            return await charge(account, balance, cents)

Asking for a permit is a durable call (a ``lock_requested`` command in the run's log).
The world grants it at once, or queues the run; a waiting run is suspended like a
sleeping one (no worker slot, no memory) and woken in FIFO order (see
:mod:`durably.worlds.locks` for the rules). The permit is released when the block exits
and, whatever happens, when the run ends. A replay of a run that held a lock finds its
``lock_acquired`` fact in the log and does not ask again.

``asyncio.wait_for(lock.acquire(), timeout)`` is a durable timeout: a run still waiting
when it fires leaves the queue (and gets :class:`TimeoutError`).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from .errors import ConfigurationError
from .runtime.context import current_instance

__all__ = ["Lock", "check_limit", "lock"]


def check_limit(limit: object, what: str) -> int:
    """``limit`` as a count of permits (an int of at least 1).

    Raises:
        ConfigurationError: it is not an int, or is below 1; the message names ``what``.
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ConfigurationError(
            f"{what} must be a whole number of at least 1, got {limit!r} ({type(limit).__name__})"
        )
    if limit < 1:
        raise ConfigurationError(
            f"{what} must be at least 1, got {limit}: it is how many may hold it at once"
        )
    return limit


class Lock:
    """A lock of the world, as a workflow body uses it (made by :func:`lock`).

    Use it as ``async with``, or call :meth:`acquire` and :meth:`release` yourself (for
    a timeout: ``await asyncio.wait_for(lk.acquire(), 60)``). One ``Lock`` object holds
    at most one permit at a time.
    """

    def __init__(self, key: str, *, limit: int = 1) -> None:
        if not isinstance(key, str):
            raise ConfigurationError(
                f"a lock key must be a string, got {key!r} ({type(key).__name__}); "
                'build one from your data, for example f"account:{account_id}"'
            )
        if not key:
            raise ConfigurationError("a lock key must not be empty: name what it protects")
        self.key = key
        self.limit = check_limit(limit, f"the limit of lock {key!r}")
        self._call: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this object holds a permit now."""
        return self._held

    async def acquire(self) -> None:
        """Wait (durably, holding no worker) until the run holds a permit.

        Raises:
            RuntimeError: outside a workflow body, or this object already asked.
        """
        inst = current_instance()
        if inst is None:
            raise RuntimeError(
                "durably.lock() works only inside a workflow body (a function decorated "
                "with @wf.workflow); a step runs once per call and needs no lock of the run"
            )
        if self._call is not None:
            raise RuntimeError(
                f"this durably.lock({self.key!r}) already holds or waits for a permit; "
                "release it first, or make another lock object"
            )
        call, granted = inst.request_lock(self.key, self.limit)
        self._call = call
        try:
            await granted
        except asyncio.CancelledError:
            # Timed out or cancelled while waiting (or at the instant it was granted):
            # leave the queue, or give the permit back.
            self._call = None
            inst.release_lock(call, self.key)
            raise
        self._held = True

    def release(self) -> None:
        """Give the permit back (the next waiter gets it in the same commit).

        Raises:
            RuntimeError: this object holds no permit.
        """
        inst = current_instance()
        if self._call is None or inst is None:
            raise RuntimeError(f"durably.lock({self.key!r}) is not held here: nothing to release")
        call, self._call, self._held = self._call, None, False
        inst.release_lock(call, self.key)

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._call is not None:
            self.release()


def lock(key: str, *, limit: int = 1) -> Lock:
    """A lock shared by every run of the world: ``async with durably.lock(key):``.

    Args:
        key: what the lock protects (any string; the same string is the same lock in
            every run, workflow and registry of the world).
        limit: how many runs may hold it at once (a semaphore); 1 is a mutex.

    Raises:
        ConfigurationError: the key is not a non-empty string, or the limit is not a
            whole number of at least 1.
    """
    return Lock(key, limit=limit)
