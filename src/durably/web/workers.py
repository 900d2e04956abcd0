"""The workers page: which workers are alive and what each holds.

A worker is known by the leases it holds (:meth:`~durably.worlds.base.World.list_leases`):
its id is ``host:pid:suffix``, and while it lives its heartbeat pushes back the end of
every lease it holds (every third of a lease). A worker whose leases all ended without
being pushed back has stopped beating (killed, frozen, cut off): its work goes to the
next worker that claims it. An idle worker holds nothing, so the page also lists each
deployment's last heartbeat (:meth:`~durably.worlds.base.World.list_deployments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..worlds.base import DeploymentRecord, LeaseRecord
from .state import dashboard, now

__all__ = ["ALIVE_WITHIN", "WorkerView", "group_leases", "workers_live", "workers_page"]

#: A deployment whose workers beat this recently (seconds) is served: workers record
#: their deployment every third of a lease (30 s by default).
ALIVE_WITHIN = 45.0


@dataclass(slots=True)
class WorkerView:
    """One worker: its id, where it runs, what it holds, and whether it still beats."""

    owner: str
    host: str
    pid: str
    leases: list[LeaseRecord] = field(default_factory=list)
    alive: bool = False
    #: When its last lease ends (alive) or ended (stopped beating).
    until: float = 0.0

    @property
    def runs(self) -> int:
        """How many runs it holds something of."""
        return len({x.run_id for x in self.leases})


def group_leases(leases: list[LeaseRecord], at: float) -> list[WorkerView]:
    """The workers holding ``leases`` (alive ones first, then by id)."""
    workers: dict[str, WorkerView] = {}
    for lease in leases:
        w = workers.get(lease.owner)
        if w is None:
            host, _, rest = lease.owner.partition(":")
            w = workers[lease.owner] = WorkerView(lease.owner, host, rest.partition(":")[0])
        w.leases.append(lease)
        w.until = max(w.until, lease.lease_until)
    for w in workers.values():
        w.alive = w.until >= at
    return sorted(workers.values(), key=lambda w: (not w.alive, w.owner))


def served(dep: DeploymentRecord, at: float) -> bool:
    """Whether a worker of ``dep`` beat within :data:`ALIVE_WITHIN` seconds."""
    return dep.last_seen > 0 and at - dep.last_seen <= ALIVE_WITHIN


async def workers_page(request: Request) -> Response:
    """``/workers``: workers and what each holds (runs, steps, timers, lease ends), and
    each deployment's last heartbeat and runs in flight."""
    return await _render(request, "workers.html")


async def workers_live(request: Request) -> Response:
    """``/workers/_live``: the workers page's lists (what the page polls)."""
    return await _render(request, "_workers.html", flash=None)


async def _render(request: Request, template: str, **extra: Any) -> Response:
    dash = dashboard(request)
    world = await dash.world()
    at = now()
    workers = group_leases(await world.list_leases(), at)
    deployments = await world.list_deployments()
    return dash.render(
        request,
        template,
        workers=workers,
        deployments=[(d, served(d, at)) for d in deployments],
        now=at,
        alive_within=ALIVE_WITHIN,
        **extra,
    )
