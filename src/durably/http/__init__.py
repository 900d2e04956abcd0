"""The HTTP API: start runs, read them, stream them (server-sent events), cancel them,
and resume hooks from webhooks. Needs the ``durably[web]`` extra (Starlette).

    import durably.http

    api = durably.http.app(wf)        # a Starlette ASGI app: serve or mount it
    # uvicorn myapp:api

See :mod:`durably.http.endpoints` for the endpoints and :mod:`durably.http.sse` for the events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .endpoints import app

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # ``app`` loads Starlette on first use, so that durably.http.payloads (which the CLI
    # uses) imports without the web extra, and a missing extra is named when it is needed.
    if name == "app":
        from .._extras import require

        require("web", "durably.http (the HTTP API)")
        from .endpoints import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
