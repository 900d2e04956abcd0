"""Time skipping: durable timers of a registry fire as soon as it has nothing to do.

``time_skipping(wf)`` puts a :class:`~durably.clock.VirtualClock` on the registry for
the block. The registry's worker asks that clock what time it is when it claims due work
and when it stamps what it records; whenever the worker is quiet (no step of the registry
running in this process, no turn in flight, nothing claimable), the clock skips to the
next due time of the registry's queue: a sleep, a retry's backoff, the timeout of an
``asyncio.wait_for`` on a hook, any task queued for later. Bodies see the virtual time
(``durably.now()`` is made of the recorded events' times), so a workflow that sleeps 30
days finishes in milliseconds and reads a clock 30 days ahead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..clock import VirtualClock

if TYPE_CHECKING:
    from ..registry import Workflows

__all__ = ["time_skipping"]


@contextlib.asynccontextmanager
async def time_skipping(wf: Workflows, *, auto: bool = True) -> AsyncIterator[VirtualClock]:
    """Skip the durable timers of ``wf`` while the block is open.

    Starts the registry's embedded worker if it has none yet (a registry made with
    ``worker=False`` gets one: the test process executes its runs). Works on every
    world: the worker claims work due by the virtual time (``World.claim(due_by=...)``).

    The clock stays on the registry afterwards, no longer skipping: time never goes
    back for the runs recorded under it, which would otherwise wait out on the real time
    what they were told was already past.

    Args:
        wf: the registry whose timers skip.
        auto: skip whenever the worker is quiet (default); with ``False`` the time moves
            only by :meth:`~durably.clock.VirtualClock.advance`.

    Yields:
        The :class:`~durably.clock.VirtualClock`: ``advance("2d")`` moves it by hand,
        ``with clock.paused():`` stops it skipping on its own for a block (to resume a
        hook before the timeout raced against it fires), ``now()`` reads it.

    Example::

        async with time_skipping(wf):
            run = await start(drip_campaign, "ada@example.com")
            assert await run.return_value() == 4   # 30 days of sleeps, in milliseconds
    """
    reused = isinstance(wf.clock, VirtualClock)
    clock = wf.clock if isinstance(wf.clock, VirtualClock) else VirtualClock()
    was_auto = clock.auto if reused else False
    clock.auto = auto
    if not reused:
        wf.clock = clock
        clock.on_change(lambda: _kick(wf))
    wf.embedded_worker = True
    await wf.open()  # starts the embedded worker if it is not running yet
    _kick(wf)  # runs may already be waiting on timers: look now
    try:
        yield clock
    finally:
        clock.auto = was_auto


def _kick(wf: Workflows) -> None:
    worker = wf.worker
    if worker is not None:
        worker.kick()
        worker.schedules.wake()  # a schedule's tick may be due on the new time
