"""The part of the ``World`` protocol for rate limits and schedules (flow control across
runs), kept in a module of its own: :class:`~durably.worlds.base.World` includes it.

The rules every world applies are in :mod:`.rates` (the sliding window) and
:mod:`.schedules` (the rows, the compare and set of a tick); the conformance suite
(``durably.testing.conformance.test_flow_conformance``) checks them on every world.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .rates import RateDecision, RateState
from .schedules import ScheduleRecord, TickDecision

__all__ = ["RatesAndSchedules"]


class RatesAndSchedules(Protocol):
    """What a world does for rate limits and schedules (part of ``World``)."""

    async def take_rate(
        self,
        *,
        limiter: str,
        limit: int,
        per: float,
        owner: str,
        run_id: str,
        call: int,
        now: float | None = None,
    ) -> RateDecision:
        """Grant step task ``(run_id, call)``, leased to ``owner``, its start under
        limiter ``limiter`` (at most ``limit`` starts in any ``per`` seconds), in one
        transaction with the task: counted, when it fits; otherwise the task's due time
        moves to when it would fit, its lease is handed back and the attempt does not
        count (its steps row says ``rate_limited``). ``now`` defaults to the world's
        clock (a test's virtual clock passes its own)."""

    async def list_rates(self) -> list[RateState]:
        """Every limiter with the starts of its current window."""

    async def sync_schedules(
        self,
        namespace: str,
        put: Sequence[ScheduleRecord],
        drop: Sequence[str],
        now: float,
    ) -> None:
        """Register a registry's schedules: a new row, or a changed definition, is
        anchored at ``now`` with the given ``next_tick``; an unchanged one is left as
        it is; the rows of the workflows in ``drop`` (in the code, not scheduled) go."""

    async def list_schedules(self, namespace: str | None = None) -> list[ScheduleRecord]:
        """The schedules (of ``namespace``, or all), by namespace and workflow."""

    async def advance_schedule(
        self,
        namespace: str,
        workflow_name: str,
        decision: TickDecision,
    ) -> bool:
        """Decide ``decision.tick`` (its run to be created when ``decision.pending``,
        skipped otherwise), only if the row still has the decision's ``cron`` and
        ``timezone`` and its last tick is still ``decision.last_tick``; returns whether it
        did (false: another driver was first)."""

    async def schedule_ran(
        self, namespace: str, workflow_name: str, *, tick: float, run_id: str
    ) -> None:
        """Record ``run_id`` as the run of the decided ``tick`` (no longer pending)."""
