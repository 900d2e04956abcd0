"""What a worker holds: its step slots, its turns in flight, and the leases behind them.

A worker runs at most ``concurrency`` steps at once. A slot is taken when a step is
claimed from the queue or claimed inline by a turn's commit, and given back when the
step's attempt ends (or when it turns out not to run). Every run and task the worker
holds a lease on is listed here too: the heartbeat extends those leases, and ``stop``
hands them back.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_TURNS_AT_ONCE", "Slots"]

#: Turns a worker advances at once (claimed, or begun by start() in this process).
MAX_TURNS_AT_ONCE = 64

TaskKey = tuple[str, int]  # (run id, call)


class Slots:
    """The step slots and the leases of one worker.

    Args:
        concurrency: how many steps may run at once.
        on_free: called when a slot is given back while the claim loop waits for one
            (``starved``), so it claims again at once rather than at its next poll.
    """

    def __init__(self, concurrency: int, on_free: Callable[[], None]) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.starved = False  # the claim loop waits for a free slot
        self._on_free = on_free
        self._busy = 0  # step slots in use or reserved
        self._runs: set[str] = set()
        self._tasks: set[TaskKey] = set()

    # -- step slots --------------------------------------------------------------------

    @property
    def busy(self) -> int:
        """Step slots in use or reserved."""
        return self._busy

    @property
    def free(self) -> int:
        """Step slots free now."""
        return self.concurrency - self._busy

    def take(self) -> None:
        """Take a slot for a step the world handed over (it hands over no more tasks
        than there were free slots when the claim began)."""
        self._busy += 1

    def try_take(self) -> bool:
        """Take a slot if one is free; False if all are in use."""
        if self._busy >= self.concurrency:
            return False
        self._busy += 1
        return True

    def give_back(self, n: int = 1) -> None:
        """Give back ``n`` slots (a step's attempt ended, or reserved steps will not run
        here)."""
        self._busy -= n
        if n and self.starved:
            self._on_free()

    # -- turns in flight ---------------------------------------------------------------

    def hold_run(self, run_id: str) -> None:
        """A turn of ``run_id`` is in flight here, under this worker's lease."""
        self._runs.add(run_id)

    def drop_run(self, run_id: str) -> None:
        """The turn of ``run_id`` is over."""
        self._runs.discard(run_id)

    @property
    def turns_free(self) -> int:
        """How many more runs this worker should claim now."""
        return max(MAX_TURNS_AT_ONCE - len(self._runs), 0)

    # -- leased tasks ------------------------------------------------------------------

    def hold_task(self, run_id: str, call: int) -> None:
        """This worker holds the lease of the task of step or timer ``call``."""
        self._tasks.add((run_id, call))

    def drop_task(self, run_id: str, call: int) -> None:
        """The task of ``call`` is recorded (or handed back): its lease is no longer held."""
        self._tasks.discard((run_id, call))

    # -- for the heartbeat and for stop ------------------------------------------------

    def held(self) -> tuple[list[str], list[TaskKey]]:
        """The runs and tasks whose leases this worker holds now."""
        return list(self._runs), list(self._tasks)
