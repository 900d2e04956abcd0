"""The HTTP API: start runs, read them, stream them (server-sent events), cancel them,
and resume hooks from webhooks.

    import durably.http

    api = durably.http.app(wf)        # a Starlette ASGI app: serve or mount it
    # uvicorn myapp:api

See :mod:`durably.http.endpoints` for the endpoints and :mod:`durably.http.sse` for the events.
"""

from .endpoints import app

__all__ = ["app"]
