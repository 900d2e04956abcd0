"""The dashboard application: a Starlette app, pages rendered on the server with Jinja2.

It reads only through the :class:`~durably.worlds.base.World` protocol and acts only
through the control plane (:class:`~durably.control.Control`, as ``Run.cancel``,
``Run.wake`` and ``resume_hook`` do), so it works on every world. Pages read the world as
stored (payloads that are encrypted stay opaque) unless the browser's session was granted
a run by the audited decrypt action (:mod:`.sessions`); actions write through a world
that seals what they write as the run's own payloads are. This module only assembles the
app: the pages are in :mod:`.listing` (runs), :mod:`.views` (a run, a call) and
:mod:`.workers`, the actions in :mod:`.actions`, what they share in :mod:`.state`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..registry import Workflows
from . import actions, flow, listing, views, workers
from . import locks as lock_pages
from .security import LOOPBACK_HOSTS, Guard
from .state import HERE, Dashboard

__all__ = ["create_app"]


def create_app(
    registry: Workflows | None = None,
    *,
    world: str | None = None,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    encryption_key: str | bytes | None = None,
) -> Starlette:
    """The dashboard as an ASGI application.

    Args:
        registry: the registry whose world to show (its embedded worker, if any, is woken
            by the actions). Default: a registry on ``world`` that runs no worker.
        world: a world URL, when no registry is given (default ``$DURABLY_WORLD``, else
            the embedded SQLite file).
        token: require this token on every request (see :mod:`durably.web.security`).
        allowed_hosts: without a token, the Host names served (default loopback only);
            ``None`` serves any (when the app mounting it authenticates users itself).
        encryption_key: the key ring that opens payloads for the audited decrypt action
            and seals what actions write into encrypted runs (default
            ``$DURABLY_ENCRYPTION_KEY``, else the world's key file, which the dashboard
            never creates); only used when no ``registry`` is given (a registry brings
            its own). Pages never decrypt; without a key the decrypt action is not offered.
    """
    owns = registry is None
    # Cancel and wake write no payloads; the dashboard's own registry encrypts nothing
    # (and so never makes a key file): what carries a payload goes through writer_for().
    reg = registry or Workflows(world=world, worker=False, encryption_key=False)
    dash = Dashboard(reg, owns_registry=owns, encryption_key=encryption_key)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await dash.close()

    routes = [
        Route("/", listing.home),
        Route("/runs", listing.runs_page),
        Route("/runs/_rows", listing.runs_rows),
        Route("/runs/_counts", listing.runs_counts),
        Route("/runs/cancel", actions.cancel_many, methods=["POST"]),
        Route("/hooks", listing.hooks_page),
        Route("/workers", workers.workers_page),
        Route("/workers/_live", workers.workers_live),
        Route("/schedules", flow.schedules_page),
        *lock_pages.ROUTES,
        Route("/runs/{run_id}", views.run_page),
        Route("/runs/{run_id}/_live", views.run_live),
        Route("/runs/{run_id}/calls/{call:int}", views.call_page),
        Route("/runs/{run_id}/decrypt", actions.decrypt_run, methods=["POST"]),
        Route("/runs/{run_id}/decrypt/end", actions.end_decrypt, methods=["POST"]),
        Route("/runs/{run_id}/calls/{call:int}/decrypt", actions.decrypt_call, methods=["POST"]),
        Route("/runs/{run_id}/streams/_chunks", views.stream_chunks),
        Route("/runs/{run_id}/cancel", actions.cancel, methods=["POST"]),
        Route("/runs/{run_id}/wake", actions.wake, methods=["POST"]),
        Route("/runs/{run_id}/rerun", actions.rerun, methods=["POST"]),
        Route("/runs/{run_id}/fork", actions.fork, methods=["POST"]),
        Route("/runs/{run_id}/hooks/resume", actions.resume, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: views.not_found})
    app.state.dashboard = dash
    app.add_middleware(Guard, token=token, csrf_secret=dash.csrf, allowed_hosts=allowed_hosts)
    return app
