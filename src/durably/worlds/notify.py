"""In-process wake-ups that work across event loops and threads.

Worlds use a :class:`Signal` to wake waiters in the same process at once (a worker
waiting for work, ``return_value()`` waiting for a run); waiters in other processes
fall back to each world's own mechanism (polling, LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["Signal"]


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
