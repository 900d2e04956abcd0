"""Flow control in the ``memory://`` world: rate limiters and schedules over its rows
(the rules are :mod:`.rates` and :mod:`.schedules`; the world delegates here)."""

from __future__ import annotations

from dataclasses import replace

from .memory_rows import _Data
from .rates import RATE_LIMITED, RateDecision, RateState, decide

__all__ = ["list_rates", "take_rate"]


def take_rate(
    d: _Data,
    *,
    limiter: str,
    limit: int,
    per: float,
    owner: str,
    run_id: str,
    call: int,
    now: float,
) -> RateDecision:
    """See :meth:`durably.worlds.base.World.take_rate`."""
    with d.lock:
        task = d.tasks.get((run_id, call))
        if task is None or task.lease_owner != owner:
            return RateDecision(False, lost=True)
        kept, retry_at = decide(d.rates.get(limiter, ()), limit, per, now)
        d.rates[limiter] = kept
        if retry_at is None:
            return RateDecision(True, at=kept[-1])
        task.visible_at = retry_at
        task.lease_owner = task.lease_until = None
        if task.kind == "step" and task.attempt > 0:
            task.attempt -= 1  # moved, not lost: the attempt does not count
        step = d.steps[run_id][call]
        d.steps[run_id][call] = replace(step, status=RATE_LIMITED, attempts=task.attempt)
    d.work.fire()  # idle workers look again at when the next task is due
    return RateDecision(False, retry_at)


def list_rates(d: _Data) -> list[RateState]:
    """See :meth:`durably.worlds.base.World.list_rates`."""
    with d.lock:
        return [RateState(name, list(starts)) for name, starts in sorted(d.rates.items())]
