"""The dashboard's actions (POST forms): cancel, wake, rerun, resume a hook.

Each checks the form's cross-site protection (:func:`~durably.web.security.csrf_problem`),
acts through the registry (whose world seals what it writes), and redirects back to the
run with a one-time message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .. import serde, telemetry
from ..errors import DurablyError, HookNotFoundError
from ..events import EventType, NewEvent
from ..hooks import BaseHook
from ..registry import new_run_id
from ..run import Run
from ..worlds.base import TERMINAL_STATUSES, Commit, RunMeta, RunWrite
from .app import Dashboard, dashboard, root
from .security import csrf_problem

__all__ = ["cancel", "rerun", "resume", "wake"]

#: Largest form accepted (a hook payload typed into the page).
MAX_FORM_BYTES = 1024 * 1024


async def _form(request: Request, dash: Dashboard) -> dict[str, str] | Response:
    """The posted form, or the response refusing it."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return PlainTextResponse("form too large", status_code=413)
    if request.headers.get("content-type", "").split(";")[0].strip() not in (
        "application/x-www-form-urlencoded",
        "",
    ):
        return PlainTextResponse("expected a form (application/x-www-form-urlencoded)", 415)
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return PlainTextResponse("the form is not UTF-8", status_code=400)
    form = {k: v[0] for k, v in parsed.items()}
    problem = csrf_problem(request, form.get("csrf"), dash.csrf)
    if problem is not None:
        return PlainTextResponse(problem, status_code=403)
    return form


def _run_url(request: Request, run_id: str) -> str:
    return root(request) + f"/runs/{run_id}"


async def cancel(request: Request) -> Response:
    """Ask the run to stop (``Run.cancel``)."""
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    reason = form.get("reason", "").strip() or "cancelled from the dashboard"
    run = Run(dash.registry, run_id)
    try:
        rec = await run.record()
        if rec.status in TERMINAL_STATUSES:
            return dash.flash_redirect(
                _run_url(request, run_id), "error", f"the run already ended ({rec.status})"
            )
        await run.cancel(reason)
    except DurablyError as e:
        return dash.flash_redirect(_run_url(request, run_id), "error", str(e))
    return dash.flash_redirect(_run_url(request, run_id), "ok", "cancellation requested")


async def wake(request: Request) -> Response:
    """Fire the run's pending timers now (``Run.wake``)."""
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    try:
        fired = await Run(dash.registry, run_id).wake()
    except DurablyError as e:
        return dash.flash_redirect(_run_url(request, run_id), "error", str(e))
    text = f"woke {fired} timer(s)" if fired else "nothing was sleeping"
    return dash.flash_redirect(_run_url(request, run_id), "ok", text)


async def rerun(request: Request) -> Response:
    """Start a new run of the same workflow with the same recorded input.

    The input is copied from the run's ``run_created`` event; an encrypted input is
    opened in memory and sealed again for the new run (never shown). The new run is pinned
    to the deployment given in the form, else the original's.
    """
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    back = _run_url(request, run_id)
    try:
        world = await dash.writer_for(run_id)
        rec = await world.get_run(run_id)
        first = await world.read_events(run_id, after_seq=0, limit=1)
    except DurablyError as e:
        return dash.flash_redirect(back, "error", f"cannot read the run's input: {e}")
    if rec is None or not first or first[0].type is not EventType.RUN_CREATED:
        return dash.flash_redirect(back, "error", "the run or its input is not found")
    data: dict[str, Any] = telemetry.run_created_data(rec.workflow_name)
    data["rerun_of"] = run_id
    write = RunWrite(
        new_run_id(),
        create=RunMeta(
            workflow_name=rec.workflow_name,
            namespace=rec.namespace,
            deployment=form.get("deployment", "").strip() or rec.deployment,
        ),
        facts=[NewEvent(EventType.RUN_CREATED, None, data, first[0].payload)],
    )
    result = (await world.commit(Commit([write]))).results[0]
    _kick(dash)
    return dash.flash_redirect(
        _run_url(request, result.run_id), "ok", f"started {result.run_id}, a rerun of {run_id}"
    )


async def resume(request: Request) -> Response:
    """Resume one of the run's live hooks with a JSON payload.

    When the hook's payload type is defined in this process the payload is validated
    against it first (as ``resume_hook`` does); otherwise the ``hook_received`` fact is
    recorded as given, and the workflow validates it when it receives it.
    """
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    back = _run_url(request, run_id)
    token = form.get("token", "")
    try:
        data = json.loads(form.get("payload", "") or "null")
    except ValueError as e:
        return dash.flash_redirect(back, "error", f"the payload is not JSON: {e}")
    try:
        world = await dash.writer_for(run_id)
        hook = await world.get_hook(token)
        if hook is None or hook.run_id != run_id:
            raise HookNotFoundError(f"run {run_id} has no live hook with token {token!r}")
        cls = BaseHook._types.get(hook.hook_type)
        value = cls.validate(data) if cls is not None else data
        payload = serde.encode(value, where=f"the payload resuming hook {token!r}")
        fact = NewEvent(EventType.HOOK_RECEIVED, hook.call, {"token": token}, payload)
        result = await world.commit(Commit([RunWrite(run_id, facts=[fact])]))
        if not result.results[0].ok:
            raise HookNotFoundError(f"the hook {token!r} is no longer live")
    except DurablyError as e:
        return dash.flash_redirect(back, "error", str(e))
    _kick(dash)
    return dash.flash_redirect(back, "ok", f"hook {token} resumed")


def _kick(dash: Dashboard) -> None:
    worker = dash.registry.worker
    if worker is not None:
        worker.kick()
