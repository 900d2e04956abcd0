"""The dashboard: ``durably web``, or mount it in an application.

    from durably.web import create_app

    dashboard = create_app(wf)            # a Starlette ASGI app over wf's world
    # uvicorn myapp:dashboard --port 8233

Pages: runs (counted by status and by what running runs wait for, searched by workflow,
attributes and run id start, each saying what it waits for or why it failed, live), a run
(what it waits for, which worker holds it, why it failed; a timeline of its steps,
attempts, sleeps, hooks and child runs that compresses long idle gaps and zooms; input and
outcome; live hooks with a resume form; child runs; streams tailing live; the event log),
a durable call (arguments, attempts with errors and tracebacks, result), live hooks,
workers (who holds what, until when; deployments' heartbeats). Actions: cancel (one run,
or many after a confirmation), wake a sleeping run, rerun with the same input, resume a
hook, and decrypt: with the key at hand, one press appends a ``data_decrypted`` record
(who, via, when, what) to the run and shows its pages' payloads in plaintext to that
browser session (:mod:`durably.web.sessions`). See :mod:`durably.web.security` for the
token, the host check and the cross-site protection. Needs the ``durably[web]`` extra.
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
