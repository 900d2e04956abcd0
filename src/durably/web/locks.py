"""The dashboard's locks page: ``/locks``, every lock and concurrency limit of the world,
its holders, then its waiters in the order they will be granted.

A page module of its own (routes: :data:`ROUTES`), so that it stays apart from the run
pages of :mod:`.views`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..worlds.locks import ADMISSION, LockEntry
from .state import dashboard

__all__ = ["ROUTES", "LockView", "locks_page"]


@dataclass(slots=True)
class LockView:
    """One lock as the page shows it."""

    key: str
    limit: int
    concurrency: bool
    holders: list[LockEntry] = field(default_factory=list)
    waiters: list[LockEntry] = field(default_factory=list)


def group(entries: list[LockEntry]) -> list[LockView]:
    """Entries (as :meth:`~durably.worlds.base.World.list_locks` orders them) by key."""
    out: dict[str, LockView] = {}
    for e in entries:
        view = out.get(e.key)
        if view is None:
            view = out[e.key] = LockView(e.key, e.limit, e.call == ADMISSION)
        (view.holders if e.holding else view.waiters).append(e)
    return list(out.values())


async def locks_page(request: Request) -> Response:
    """``/locks``: holders and waiters of every lock (``?key=`` for one)."""
    dash = dashboard(request)
    key = request.query_params.get("key") or None
    entries = await (await dash.world()).list_locks(key=key, limit=5000)
    return dash.render(request, "locks.html", locks=group(entries), key=key)


#: The page's routes, for :func:`durably.web.app.create_app`.
ROUTES = [Route("/locks", locks_page)]
