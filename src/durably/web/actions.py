"""The dashboard's actions (POST forms): cancel (one run, or many after a confirmation),
wake, rerun, resume a hook, decrypt.

Each checks the form's cross-site protection (:func:`~durably.web.security.csrf_problem`),
acts through the control plane (:class:`~durably.control.Control`, over a world that
seals what it writes as the run's own payloads are), and redirects back with a one-time
message. Decrypt appends a ``data_decrypted`` record to the run (who: the OS user and
host of the dashboard; via: ``web`` and the client's address; when; which events and
chunks, and for how long its pages show plaintext) and then grants the browser's session
the plaintext of the run's pages (:mod:`durably.web.sessions`).
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .. import serde
from ..crypto import Sealer
from ..errors import DecryptionError, DurablyError, HookNotFoundError
from ..events import EventType
from ..hooks import hook_type_named
from ..worlds.base import TERMINAL_STATUSES
from ..worlds.encrypted import record_decryption, who
from . import listing, views
from .payloads import Decryption
from .security import csrf_problem
from .state import Dashboard, dashboard, fmt_time, root

__all__ = [
    "cancel",
    "cancel_many",
    "decrypt_call",
    "decrypt_run",
    "end_decrypt",
    "fork",
    "rerun",
    "resume",
    "wake",
]

#: Largest form accepted (a hook payload typed into the page).
MAX_FORM_BYTES = 1024 * 1024


async def _form(request: Request, dash: Dashboard) -> Form | Response:
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
    form = Form({k: v[0] for k, v in parsed.items()})
    form.lists = parsed
    problem = csrf_problem(request, form.get("csrf"), dash.csrf)
    if problem is not None:
        return PlainTextResponse(problem, status_code=403)
    return form


class Form(dict[str, str]):
    """A posted form: each field's first value; ``lists`` has every value."""

    lists: dict[str, list[str]]


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


async def cancel_many(request: Request) -> Response:
    """Cancel several runs: the runs ticked in the runs table (``scope=selected``) or
    every live run matching the page's filters (``scope=matching``, at most
    :data:`~durably.web.listing.BULK_LIMIT`). Without ``confirm=yes`` it answers with a
    page that lists the runs and asks to confirm; that page posts their ids, so what is
    cancelled is what was shown. Each run is cancelled through the control plane."""
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    items = [(k, v) for k, vs in form.lists.items() for v in vs]
    query = listing.RunsQuery.from_items(items)
    back = root(request) + "/runs" + (f"?{query.qs()}" if query.qs() else "")
    ids = [r.strip() for r in form.lists.get("run", []) if r.strip()]
    world = await dash.world()
    if form.get("confirm") != "yes":
        if form.get("scope") == "matching":
            runs, more = await listing.live_runs_matching(world, query)
        else:
            found = [await world.get_run(r) for r in ids[: listing.BULK_LIMIT]]
            runs = [r for r in found if r is not None and r.status not in TERMINAL_STATUSES]
            more = len(ids) > listing.BULK_LIMIT
        if not runs:
            return dash.flash_redirect(back, "error", "No live run to cancel was chosen.")
        return dash.render(
            request,
            "cancel_runs.html",
            runs=runs,
            more=more,
            query=query,
            back=back,
            limit=listing.BULK_LIMIT,
        )
    reason = form.get("reason", "").strip() or "cancelled from the dashboard (bulk)"
    control = await dash.registry.control()
    requested, ended, failed = 0, 0, []
    for run_id in ids[: listing.BULK_LIMIT]:
        try:
            if await control.cancel(run_id, reason) is None:
                requested += 1
            else:
                ended += 1
        except DurablyError as e:
            failed.append(f"{run_id}: {e}")
    text = f"cancellation requested for {requested} run(s)"
    if ended:
        text += f"; {ended} had already ended"
    if failed:
        text += f"; {len(failed)} failed ({'; '.join(failed[:3])})"
    return dash.flash_redirect(back, "error" if failed else "ok", text)


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
    """Decrypt the run's pages for this browser session, audited (see :func:`_decrypt`)."""
    return await _decrypt(request, None)


async def decrypt_call(request: Request) -> Response:
    """Decrypt from a durable call's page: the same as from the run's page."""
    return await _decrypt(request, request.path_params["call"])


async def _decrypt(request: Request, call: int | None) -> Response:
    """Open every payload the run's page shows (and the call's page, from there), append
    one ``data_decrypted`` record to the run (and one to each other run opened: a child
    whose input or error is shown), grant the browser's session the plaintext of those
    runs' pages (:mod:`durably.web.sessions`), and go back to the page.

    A payload that does not decrypt (wrong key, changed bytes) or no key at all: back to
    the page as stored with the error, nothing recorded, nothing granted.
    """
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    back = _run_url(request, run_id) + (f"/calls/{call}" if call is not None else "")
    try:
        decryption = Decryption(Sealer(dash.keyring()))
        await views.run_context(dash, run_id, decryption)
        if call is not None:
            await views.call_context(dash, run_id, call, decryption)
    except DecryptionError as e:
        return dash.flash_redirect(back, "error", f"Nothing was decrypted: {e}")
    opened = decryption.runs()
    if not opened:
        return dash.flash_redirect(back, "ok", "Nothing on this run's pages is encrypted.")
    world = await dash.world()
    via = _via(request)
    until = fmt_time(time.time() + dash.sessions.ttl)
    session = f"; its pages in plaintext for this browser session until {until}"
    recorded = []
    # The record comes first: no plaintext leaves without its audit trail.
    for rid in sorted(opened, key=lambda r: r != run_id):
        seqs, what = decryption.seqs(rid), decryption.what(rid) + session
        await record_decryption(world, rid, seqs, via=via, what=what)
        recorded.append(f"run {rid}" if rid != run_id else "this run")
    response = dash.flash_redirect(
        back,
        "ok",
        f"Decrypted by {who()} via {via}: payloads of {' and '.join(recorded)} in plaintext "
        f"for this browser session until {until}; recorded in the event log (data_decrypted).",
    )
    dash.sessions.grant(request, response, [run_id, *opened])
    return response


async def end_decrypt(request: Request) -> Response:
    """Show the run's pages as stored again in this browser session."""
    dash = dashboard(request)
    form = await _form(request, dash)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    dash.sessions.revoke(request, run_id)
    return dash.flash_redirect(_run_url(request, run_id), "ok", "Payloads hidden again.")


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
