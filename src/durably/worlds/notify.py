"""In-process wake-ups that work across event loops and threads.

Worlds use a :class:`Signal` to wake waiters in the same process at once (a worker
waiting for work, ``return_value()`` waiting for a run); waiters in other processes
fall back to each world's own mechanism (polling, LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["Signal", "WatchedSignals"]

K = TypeVar("K", bound=Hashable)


class Signal:
    """A broadcast wake-up: :meth:`fire` wakes every current :meth:`wait`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def fire(self) -> None:
        """Wake every waiter; safe from any thread."""
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for loop, fut in waiters:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                if not fut.done():
                    fut.set_result(None)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, fut)

    def arm(self) -> asyncio.Future[None]:
        """Register for the next :meth:`fire` now; await the result with :meth:`wait`.

        Arm *before* checking the condition you wait for, so a fire that lands between
        the check and the wait is not lost.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.add((loop, fut))
        return fut

    def disarm(self, armed: asyncio.Future[None]) -> None:
        """Forget a registration made by :meth:`arm` that will not be waited on."""
        with self._lock:
            self._waiters.discard((asyncio.get_running_loop(), armed))

    async def wait(self, timeout: float, armed: asyncio.Future[None] | None = None) -> bool:
        """Wait for the next :meth:`fire` (or the one ``armed`` was registered for);
        true if fired, false on timeout."""
        loop = asyncio.get_running_loop()
        fut = armed if armed is not None else loop.create_future()
        entry = (loop, fut)
        with self._lock:
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(entry)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class WatchedSignals(Generic[K]):
    """One :class:`Signal` per key, kept only while someone watches that key.

    Worlds use it for per-run and per-stream wake-ups: a waiter calls :meth:`watch`,
    waits on the signal, then :meth:`unwatch`; a commit calls :meth:`fire` for the keys
    it changed, which costs nothing for keys nobody watches.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[K, tuple[Signal, int]] = {}

    def watch(self, key: K) -> Signal:
        """The key's signal; pair every call with :meth:`unwatch`."""
        with self._lock:
            sig, n = self._by_key.get(key, (None, 0))
            if sig is None:
                sig = Signal()
            self._by_key[key] = (sig, n + 1)
            return sig

    def unwatch(self, key: K) -> None:
        """Forget one :meth:`watch` of ``key``; the signal goes with the last one."""
        with self._lock:
            sig, n = self._by_key[key]
            if n <= 1:
                del self._by_key[key]
            else:
                self._by_key[key] = (sig, n - 1)

    def get(self, key: K) -> Signal | None:
        """The key's signal if someone watches it."""
        with self._lock:
            entry = self._by_key.get(key)
        return None if entry is None else entry[0]

    def items(self) -> list[tuple[K, Signal]]:
        """The watched keys and their signals (a snapshot)."""
        with self._lock:
            return [(k, s) for k, (s, _) in self._by_key.items()]

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def fire(self, keys: Iterable[K]) -> None:
        """Wake the watchers of ``keys``."""
        with self._lock:
            sigs = [self._by_key[k][0] for k in keys if k in self._by_key]
        for sig in sigs:
            sig.fire()
