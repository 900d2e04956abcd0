"""The dashboard's actions (POST forms): cancel, wake, rerun, resume a hook, decrypt.

Each checks the form's cross-site protection (:func:`~durably.web.security.csrf_problem`),
acts through the control plane (:class:`~durably.control.Control`, over a world that
seals what it writes as the run's own payloads are), and redirects back to the run with a
one-time message. Decrypt instead answers with the page itself, its payloads in
plaintext for that response only (never cached), after appending a ``data_decrypted``
record to the run: who (the OS user and host of the dashboard), via (``web`` and the
client's address), when, and which events and chunks.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .. import serde
from ..crypto import Sealer
from ..errors import DecryptionError, DurablyError, HookNotFoundError
from ..events import EventType
from ..hooks import hook_type_named
from ..worlds.encrypted import record_decryption, who
from . import views
from .payloads import Decryption
from .security import csrf_problem
from .state import Dashboard, dashboard, root

__all__ = ["cancel", "decrypt_call", "decrypt_run", "fork", "rerun", "resume", "wake"]

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
    try:
        ended = await (await dash.registry.control()).cancel(run_id, reason)
        if ended is not None:
            return dash.flash_redirect(
                _run_url(request, run_id), "error", f"the run already ended ({ended})"
            )
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
        fired = await (await dash.registry.control()).wake(run_id)
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
        control = await dash.control_for(run_id)
        rec = await control.world.get_run(run_id)
        first = await control.world.read_events(run_id, after_seq=0, limit=1)
    except DurablyError as e:
        return dash.flash_redirect(back, "error", f"cannot read the run's input: {e}")
    if rec is None or not first or first[0].type is not EventType.RUN_CREATED:
        return dash.flash_redirect(back, "error", "the run or its input is not found")
    new_id = await control.create_run(
        rec.workflow_name,
        first[0].payload,
        namespace=rec.namespace,
        deployment=form.get("deployment", "").strip() or rec.deployment,
        rerun_of=run_id,
        # As the form says: its text is a deployment's name, and a rerun is queued.
        resolve_latest=False,
        begin_here=False,
    )
    return dash.flash_redirect(
        _run_url(request, new_id), "ok", f"started {new_id}, a rerun of {run_id}"
    )


async def fork(request: Request) -> Response:
    """Start a fork of the run from the call in the form (``from_step``): a new run that
    reuses the recorded results of the calls before it and runs from it (see
    :mod:`durably.fork`), pinned to the form's deployment, else the original's. The
    copied payloads are opened in memory and sealed again for the new run (never shown)."""
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    back = _run_url(request, run_id)
    try:
        from_step = int(form.get("from_step", ""))
    except ValueError:
        return dash.flash_redirect(back, "error", "fork from which call? (a number)")
    try:
        control = await dash.control_for(run_id)
        new_id = await control.fork(
            run_id, from_step, deployment=form.get("deployment", "").strip() or None
        )
    except DurablyError as e:
        return dash.flash_redirect(back, "error", f"cannot fork: {e}")
    return dash.flash_redirect(
        _run_url(request, new_id),
        "ok",
        f"started {new_id}, a fork of {run_id} from call {from_step}",
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
    # The page posts the hook's index key (a digest of its token; see
    # Control.indexed_hook): an operator acts on a hook of the run they see. A token
    # typed by hand works too.
    token = form.get("token", "")
    try:
        data = json.loads(form.get("payload", "") or "null")
    except ValueError as e:
        return dash.flash_redirect(back, "error", f"the payload is not JSON: {e}")
    except RecursionError:
        return dash.flash_redirect(back, "error", "the payload is nested too deeply")
    try:
        control = await dash.control_for(run_id)
        try:
            hook = await control.indexed_hook(token, run_id=run_id)
        except HookNotFoundError:
            hook = await control.live_hook(token, run_id=run_id)
        cls = hook_type_named(hook.hook_type)
        value = cls.validate(data) if cls is not None else data
        where = f"the payload resuming hook {hook.hook_type!r} (call {hook.call})"
        payload = serde.encode(value, where=where)
        await control.resume_hook(hook, payload)
    except DurablyError as e:
        return dash.flash_redirect(back, "error", str(e))
    name = hook.hook_type.rsplit(":", 1)[-1]
    return dash.flash_redirect(back, "ok", f"hook {name} (call {hook.call}) resumed")


async def decrypt_run(request: Request) -> Response:
    """The run page with its payloads in plaintext (input, outcome, the event log's
    payloads, the streams' chunks), audited."""
    return await _decrypt(request, None)


async def decrypt_call(request: Request) -> Response:
    """A durable call's page with its payloads in plaintext, audited."""
    return await _decrypt(request, request.path_params["call"])


async def _decrypt(request: Request, call: int | None) -> Response:
    """Build the page with every payload it shows opened, append one ``data_decrypted``
    record to the run (and one to a child run whose input is shown), then send the page.

    A payload that does not decrypt (wrong key, changed bytes) or no key at all: the page
    as stored with the error, and nothing recorded.
    """
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    template = "run.html" if call is None else "call.html"

    async def build(decryption: Decryption | None) -> dict[str, Any]:
        if call is None:
            return await views.run_context(dash, run_id, decryption)
        return await views.call_context(dash, run_id, call, decryption)

    try:
        decryption = Decryption(Sealer(dash.keyring()))
        ctx = await build(decryption)
    except DecryptionError as e:
        ctx = await build(None)
        panel = views.decrypt_panel(request, ctx["sealed"], call=call)
        flash = ("error", f"Nothing was decrypted: {e}")
        return _no_store(dash.render(request, template, **ctx, decrypt=panel, flash=flash))
    world = await dash.world()
    via = _via(request)
    recorded = []
    # The record comes first: no plaintext leaves without its audit trail.
    for rid in sorted(decryption.runs(), key=lambda r: r != run_id):
        seqs, what = decryption.seqs(rid), decryption.what(rid)
        await record_decryption(world, rid, seqs, via=via, what=what)
        recorded.append(f"{what} of run {rid}" if rid != run_id else what)
    if call is None and recorded:
        # Show the run's log up to and including its new audit record.
        last = ctx["events"][-1].seq if ctx["events"] else 0
        news = await world.read_events(run_id, after_seq=last)
        ctx["shown_events"] = ctx["shown_events"] + [(ev, views.event_payload(ev)) for ev in news]
    note = f"{'; '.join(recorded)}, by {who()} via {via}" if recorded else ""
    panel = views.decrypt_panel(request, ctx["sealed"], decrypted=True, recorded=note, call=call)
    return _no_store(dash.render(request, template, **ctx, decrypt=panel, flash=None))


def _via(request: Request) -> str:
    """How the plaintext left, for the audit record: ``web`` and the client's address
    (and the user, when an application mounting the dashboard authenticates them)."""
    via = f"web {request.client.host if request.client else 'unknown client'}"
    user = request.scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        via += f" user {getattr(user, 'display_name', '') or user}"
    return via


def _no_store(response: Response) -> Response:
    response.headers["cache-control"] = "no-store"
    return response
