"""The dashboard's flow-control pages: ``/schedules`` (each schedule's next tick and last
run) and the rate limiters beside them. Read-only, through the ``World`` protocol."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from ..schedules import describe_schedules
from .state import dashboard

__all__ = ["schedules_page"]


async def schedules_page(request: Request) -> Response:
    """``/schedules``: every schedule with its next tick and last run, and every rate
    limiter with its recent starts."""
    dash = dashboard(request)
    world = await dash.world()
    now = time.time()
    schedules = await describe_schedules(world, now=now)
    rates = [
        {
            "name": r.name,
            "last_minute": sum(1 for s in r.starts if s > now - 60),
            "last_start": max(r.starts) if r.starts else None,
        }
        for r in await world.list_rates()
    ]
    return dash.render(request, "schedules.html", schedules=schedules, rates=rates)
