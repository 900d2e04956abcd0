"""The dashboard: ``durably web``, or mount it in an application.

    from durably.web import create_app

    dashboard = create_app(wf)            # a Starlette ASGI app over wf's world
    # uvicorn myapp:dashboard --port 8233

Pages: runs (filtered, paged, live), a run (timeline of its steps, attempts, sleeps, hooks
and child runs; input and outcome; live hooks with a resume form; streams tailing live;
the event log), a durable call (arguments, attempts with errors and tracebacks, result),
live hooks. Actions: cancel, wake a sleeping run, rerun with the same input, resume a hook,
and decrypt: with the key at hand, a run's or a call's page once more with its payloads in
plaintext, for that response only, after a ``data_decrypted`` record (who, via, when,
what) is appended to the run. See :mod:`durably.web.security` for the token, the host
check and the cross-site protection. Needs the ``durably[web]`` extra.
"""

from .._extras import require

# Before anything imports Starlette: without the extra, say which one to install.
require("web", "The dashboard (durably.web, `durably web`)")

from .app import create_app  # noqa: E402
from .payloads import Decryption, PayloadView, render_payload  # noqa: E402
from .state import Dashboard  # noqa: E402
from .timeline import Timeline, build_timeline  # noqa: E402

__all__ = [
    "Dashboard",
    "Decryption",
    "PayloadView",
    "Timeline",
    "build_timeline",
    "create_app",
    "render_payload",
]
