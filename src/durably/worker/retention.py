"""Retention: a worker of a registry made with ``retention=`` deletes the runs of its
namespace that ended longer ago than that, now and then (what ``durably prune`` does by
hand). Every worker of the registry does it; the batches are bounded and a world deletes
each in one transaction, so two workers pruning at once only share the work."""

from __future__ import annotations

import asyncio
import logging
import time

from ..worlds.base import World

__all__ = ["RETENTION_BATCH", "period_of", "prune_once", "retention_loop"]

_log = logging.getLogger("durably.worker")

#: Runs deleted per transaction (a bounded batch keeps each commit short).
RETENTION_BATCH = 200


def period_of(retention: float) -> float:
    """How often retention is applied: a tenth of the retention, from a second to an hour."""
    return min(max(retention / 10, 1.0), 3600.0)


async def prune_once(world: World, namespace: str, retention: float) -> int:
    """Delete the runs of ``namespace`` that ended more than ``retention`` seconds ago,
    batch after batch; returns how many."""
    total = 0
    while True:
        gone = await world.prune_runs(
            ended_before=time.time() - retention, namespace=namespace, limit=RETENTION_BATCH
        )
        total += len(gone)
        if len(gone) < RETENTION_BATCH:
            return total


async def retention_loop(world: World, namespace: str, retention: float) -> None:
    """Apply retention at once, then every :func:`period_of` seconds, until cancelled.
    A world that fails meanwhile is logged and tried again at the next period."""
    while True:
        try:
            deleted = await prune_once(world, namespace, retention)
            if deleted:
                _log.info("durably worker: retention deleted %d ended run(s)", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.warning("durably worker: applying retention failed", exc_info=True)
        await asyncio.sleep(period_of(retention))
