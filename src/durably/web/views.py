"""The dashboard's pages (GET) of one run: the run (what it waits for, who holds it, why
it failed, its timeline, payloads, hooks, streams and log), one durable call, and the
fragments these pages poll for live updates. The runs list is :mod:`.listing`.

The run and call pages are built by :func:`run_context` and :func:`call_context` with the
:class:`Decryption` of the browser's session (:mod:`.sessions`): payloads of a run the
session was granted by an audited decrypt are shown in plaintext, the rest as stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..crypto import is_sealed
from ..errors import DecryptionError
from ..events import EVENTS, TERMINAL_RUN_TYPES, Event, EventType
from ..waiting import Waiting, failing_step, waiting_of
from ..worlds.base import TERMINAL_STATUSES, LeaseRecord, RunRecord, World
from .listing import child_rows
from .payloads import Decryption, Opener, PayloadView, render_payload
from .state import Dashboard, dashboard, fmt_time, now, root
from .timeline import Timeline, Zoom, build_timeline

__all__ = [
    "DecryptPanel",
    "call_context",
    "call_page",
    "decrypt_panel",
    "event_payload",
    "holders",
    "not_found",
    "run_context",
    "run_live",
    "run_page",
    "stream_chunks",
    "zoom_of",
]

#: Events shown in a run's log (the newest are kept when there are more).
MAX_EVENTS = 2000
#: Chunks shown when a stream is first displayed (the newest).
TAIL_CHUNKS = 50


# -- one run ----------------------------------------------------------------------------


async def _run(dash: Dashboard, run_id: str) -> RunRecord:
    rec = await (await dash.world()).get_run(run_id)
    if rec is None:
        raise HTTPException(404, f"no run with id {run_id!r} in {dash.world_url}")
    return rec


async def holders(world: World, run_id: str, at: float) -> list[LeaseRecord]:
    """The leases held now on the run's turn and tasks: which worker, until when."""
    queue = await world.run_queue(run_id)
    if queue is None:
        return []
    out = []
    if queue.lease_owner and queue.lease_until and queue.lease_until >= at:
        out.append(LeaseRecord(queue.lease_owner, run_id, "turn", queue.lease_until))
    for task in queue.tasks:
        if task.lease_owner and task.lease_until and task.lease_until >= at:
            out.append(
                LeaseRecord(task.lease_owner, run_id, task.kind, task.lease_until, call=task.call)
            )
    return out


def zoom_of(request: Request) -> Zoom:
    """The timeline's zoom asked for in the query string."""
    return Zoom.parse(request.query_params.get("zoom"), request.query_params.get("scale"))


async def _live_context(dash: Dashboard, rec: RunRecord, zoom: Zoom) -> dict[str, Any]:
    """What the polled part of the run page shows: the summary (status, what it waits
    for, who holds it, the failing call) and the timeline."""
    world = await dash.world()
    at = now()
    events = await world.read_events(rec.run_id)
    steps = await world.list_steps(rec.run_id)
    timeline = build_timeline(rec, events, now=at, steps=steps, zoom=zoom)
    live = rec.status not in TERMINAL_STATUSES
    waiting: Waiting | None = await waiting_of(world, rec, now=at) if live else None
    names = {s.call: s.name for s in steps}
    held = await holders(world, rec.run_id, at) if live else []
    for lease in held:
        lease.name = names.get(lease.call) if lease.call is not None else None
    return {
        "run": rec,
        "events": events,
        "timeline": timeline,
        "zooms": _zoom_links(timeline),
        "steps": steps,
        "wait": waiting if waiting is not None and waiting.kind is not None else None,
        "held": held,
        "failing": failing_step(rec, steps),
        "now": at,
    }


def _zoom_links(timeline: Timeline) -> dict[str, str]:
    """The query strings of the timeline's zoom controls."""
    z = timeline.zoom

    def qs(target: Zoom) -> str:
        return "?" + urlencode(target.params()) + "#timeline"

    return {
        "in": qs(z.zoomed_in()),
        "out": qs(z.zoomed_out()),
        "left": qs(z.panned(-1)),
        "right": qs(z.panned(1)),
        "fit": qs(Zoom(compress=z.compress)),
        "scale": qs(Zoom(z.lo, z.hi, not z.compress)),
        "live": urlencode(z.params()),
    }


def _end_event(events: list[Event]) -> Event | None:
    for ev in reversed(events):
        if ev.type in TERMINAL_RUN_TYPES:
            return ev
    return None


@dataclass(frozen=True, slots=True)
class DecryptPanel:
    """What a page says about its encrypted payloads: the Decrypt button (``action``, a
    POST), why it is not offered (``problem``: no key), or that the browser's session
    shows this run's payloads in plaintext (``decrypted``) until ``until``, with the
    button that ends it (``hide``)."""

    sealed: bool
    action: str
    hide: str
    problem: str | None = None
    owns_key: bool = True
    decrypted: bool = False
    until: str = ""


def decrypt_panel(request: Request, sealed: bool, *, call: int | None = None) -> DecryptPanel:
    """The panel of the run page (or of call ``call``'s page) of this request's run."""
    dash = dashboard(request)
    run_id = request.path_params["run_id"]
    page = root(request) + f"/runs/{run_id}"
    until = dash.sessions.granted(request).get(run_id)
    problem = dash.key_problem() if sealed or until is not None else None
    return DecryptPanel(
        sealed=sealed,
        action=page + (f"/calls/{call}" if call is not None else "") + "/decrypt",
        hide=page + "/decrypt/end",
        problem=problem,
        owns_key=dash.owns_registry,
        decrypted=until is not None and problem is None,
        until=fmt_time(until) if until is not None else "",
    )


def _opens(decryption: Decryption | None, run_id: str) -> bool:
    return decryption is not None and decryption.opens(run_id)


def _opener(decryption: Decryption | None, ev: Event) -> Opener | None:
    return None if decryption is None else decryption.event(ev)


async def run_context(
    dash: Dashboard,
    run_id: str,
    decryption: Decryption | None = None,
    zoom: Zoom | None = None,
) -> dict[str, Any]:
    """What ``run.html`` shows of run ``run_id``; with ``decryption``, its payloads (input,
    outcome, the event log's payloads, the streams' chunks, its child runs' errors) are
    opened; ``zoom``: the timeline's.

    Raises:
        HTTPException: 404, no such run.
        DecryptionError: a payload did not decrypt.
    """
    rec = await _run(dash, run_id)
    world = await dash.world()
    ctx = await _live_context(dash, rec, zoom or Zoom())
    events: list[Event] = ctx["events"]
    created = events[0] if events and events[0].type is EventType.RUN_CREATED else None
    end = _end_event(events)
    outcome: PayloadView | None = None
    if end is not None and end.type is EventType.RUN_COMPLETED:
        outcome = render_payload(
            end.payload,
            kind="value",
            where=f"the result of {rec.run_id}",
            opener=_opener(decryption, end),
        )
    elif end is not None and end.type is EventType.RUN_FAILED:
        outcome = render_payload(
            end.payload,
            kind="error",
            where=f"the error of {rec.run_id}",
            opener=_opener(decryption, end),
        )
    streams = await world.stream_info(rec.run_id)
    tails = []
    sealed = False
    for info in streams:
        first = max(info.count - TAIL_CHUNKS, 0)
        chunks, done = await world.read_chunks(
            rec.run_id, info.namespace, start_index=first, limit=TAIL_CHUNKS
        )
        sealed = sealed or any(is_sealed(c.payload) for c in chunks)
        tails.append(
            {
                "info": info,
                "chunks": [_chunk_view(rec.run_id, info.namespace, c, decryption) for c in chunks],
                "next": chunks[-1].index + 1 if chunks else first,
                "done": done,
                "skipped": first,
            }
        )
    shown = events[-MAX_EVENTS:]
    edges = [ev for ev in (created, end) if ev is not None]  # shown even when the log is cut
    sealed = sealed or any(is_sealed(ev.payload) for ev in [*shown, *edges])
    sealed = sealed and not _opens(decryption, rec.run_id)  # still encrypted as shown
    return {
        **ctx,
        "shown_events": [(ev, event_payload(ev, decryption)) for ev in shown],
        "hidden_events": len(events) - len(shown),
        "input": render_payload(
            created.payload if created else None,
            kind="args",
            where=f"the input of {rec.run_id}",
            opener=_opener(decryption, created) if created else None,
        ),
        "traceparent": created.data.get("traceparent") if created else None,
        "outcome": outcome,
        "end": end,
        "hooks": await world.list_hooks(run_id=rec.run_id, limit=100),
        "streams": tails,
        "sleeps": [s for s in ctx["steps"] if s.kind == "wait" and s.status == "waiting"],
        "children": await child_rows(dash, ctx["steps"], decryption),
        "terminal": rec.status in TERMINAL_STATUSES,
        "sealed": sealed,
    }


async def run_page(request: Request) -> Response:
    """``/runs/{run_id}``: status, what it waits for, who holds it, why it failed, the
    timeline, input and outcome, hooks, child runs, streams, the event log."""
    dash = dashboard(request)
    run_id = request.path_params["run_id"]
    zoom = zoom_of(request)
    flash = None
    try:
        ctx = await run_context(dash, run_id, dash.session_decryption(request), zoom)
    except DecryptionError as e:  # the key changed since the decrypt: show as stored
        ctx = await run_context(dash, run_id, None, zoom)
        flash = ("error", f"Payloads could not be decrypted: {e}")
    panel = decrypt_panel(request, ctx["sealed"])
    if flash is not None:
        return dash.render(request, "run.html", **ctx, decrypt=panel, flash=flash)
    return dash.render(request, "run.html", **ctx, decrypt=panel)


async def run_live(request: Request) -> Response:
    """``/runs/{run_id}/_live``: the run's summary and timeline (what the page polls).
    The ``X-Durably-Live: done`` header tells the page the run has ended."""
    dash = dashboard(request)
    rec = await _run(dash, request.path_params["run_id"])
    ctx = await _live_context(dash, rec, zoom_of(request))
    response = dash.render(request, "_run_live.html", **ctx, flash=None)
    if rec.status in TERMINAL_STATUSES:
        response.headers["x-durably-live"] = "done"
    return response


def event_payload(ev: Event, decryption: Decryption | None = None) -> PayloadView:
    """An event's payload for the event log (opened with ``decryption`` when given)."""
    if ev.payload is None:
        return PayloadView("none")
    kind = EVENTS[ev.type].payload or "value"
    return render_payload(
        ev.payload,
        kind=kind,
        where=f"the payload of event {ev.seq}",
        opener=_opener(decryption, ev),
    )


async def call_context(
    dash: Dashboard, run_id: str, call: int, decryption: Decryption | None = None
) -> dict[str, Any]:
    """What ``call.html`` shows of durable call ``call`` of run ``run_id``; with
    ``decryption``, its payloads (arguments, errors, result, hook payloads; a child run's
    input, which is the child's) are opened.

    Raises:
        HTTPException: 404, no such run or call.
        DecryptionError: a payload did not decrypt.
    """
    rec = await _run(dash, run_id)
    world = await dash.world()
    steps = {s.call: s for s in await world.list_steps(rec.run_id)}
    step = steps.get(call)
    events = [e for e in await world.read_events(rec.run_id) if e.call == call]
    if step is None and not events:
        raise HTTPException(404, f"run {rec.run_id} has no durable call #{call}")
    command = events[0] if events else None
    attempts = []
    result: PayloadView | None = None
    received = []
    last_end = command.created_at if command else rec.created_at
    for ev in events:
        opener = _opener(decryption, ev)
        if ev.type in (EventType.STEP_RETRYING, EventType.STEP_FAILED, EventType.STEP_COMPLETED):
            started = float(ev.data.get("started_at") or last_end)
            is_error = ev.type is not EventType.STEP_COMPLETED
            attempts.append(
                {
                    "attempt": ev.data.get("attempt"),
                    "started": started,
                    "ended": ev.created_at,
                    "outcome": {
                        EventType.STEP_RETRYING: "retrying",
                        EventType.STEP_FAILED: "failed",
                        EventType.STEP_COMPLETED: "completed",
                    }[ev.type],
                    "retry_at": ev.data.get("retry_at"),
                    "error": render_payload(
                        ev.payload, kind="error", where="an attempt's error", opener=opener
                    )
                    if is_error
                    else None,
                }
            )
            last_end = ev.created_at
        if ev.type in (EventType.STEP_COMPLETED, EventType.CHILD_COMPLETED):
            result = render_payload(
                ev.payload, kind="value", where=f"the result of call {call}", opener=opener
            )
        elif ev.type in (EventType.STEP_FAILED, EventType.CHILD_FAILED):
            result = render_payload(
                ev.payload, kind="error", where=f"the error of call {call}", opener=opener
            )
        elif ev.type is EventType.HOOK_RECEIVED:
            view = render_payload(ev.payload, kind="value", where="a hook's payload", opener=opener)
            received.append((ev, view))
    args = None
    sealed = any(is_sealed(ev.payload) for ev in events) and not _opens(decryption, rec.run_id)
    if command is not None and command.type is EventType.STEP_CREATED:
        args = render_payload(
            command.payload,
            kind="args",
            where=f"the arguments of call {call}",
            opener=_opener(decryption, command),
        )
    elif command is not None and command.type is EventType.CHILD_CREATED:
        child_id = command.data.get("child_run_id")
        child_events = await world.read_events(str(child_id), limit=1) if child_id else []
        if child_events:
            child_input = child_events[0]
            opened = _opens(decryption, child_input.run_id)
            sealed = sealed or (is_sealed(child_input.payload) and not opened)
            args = render_payload(
                child_input.payload,
                kind="args",
                where="the child's input",
                opener=_opener(decryption, child_input),
            )
    return {
        "run": rec,
        "call": call,
        "step": step,
        "command": command,
        "events": [(ev, event_payload(ev, decryption)) for ev in events],
        "attempts": attempts,
        "args": args,
        "result": result,
        "received": received,
        "sealed": sealed,
    }


async def call_page(request: Request) -> Response:
    """``/runs/{run_id}/calls/{call}``: one durable call: its arguments, its attempts
    (with errors and tracebacks), its result or final error, its events."""
    dash = dashboard(request)
    call: int = request.path_params["call"]
    run_id = request.path_params["run_id"]
    flash = None
    try:
        ctx = await call_context(dash, run_id, call, dash.session_decryption(request))
    except DecryptionError as e:
        ctx = await call_context(dash, run_id, call)
        flash = ("error", f"Payloads could not be decrypted: {e}")
    panel = decrypt_panel(request, ctx["sealed"], call=call)
    if flash is not None:
        return dash.render(request, "call.html", **ctx, decrypt=panel, flash=flash)
    return dash.render(request, "call.html", **ctx, decrypt=panel)


# -- streams ----------------------------------------------------------------------------


def _chunk_view(
    run_id: str, namespace: str, chunk: Any, decryption: Decryption | None = None
) -> dict[str, Any]:
    where = f"chunk {chunk.index} of stream {namespace or '(default)'!r} of run {run_id}"
    opener = None if decryption is None else decryption.chunk(run_id, namespace, chunk.index)
    return {
        "index": chunk.index,
        "at": chunk.created_at,
        "payload": render_payload(chunk.payload, kind="value", where=where, opener=opener),
    }


async def stream_chunks(request: Request) -> Response:
    """``/runs/{run_id}/streams/_chunks?namespace=NS&start_index=N``: the chunks from N
    as list items (what a stream's tail polls). ``X-Durably-Next`` is the next index to
    ask for; ``X-Durably-Live: done`` says the stream is closed."""
    dash = dashboard(request)
    run_id = request.path_params["run_id"]
    namespace = request.query_params.get("namespace", "")
    try:
        start = max(int(request.query_params.get("start_index", "0")), 0)
    except ValueError:
        start = 0
    world = await dash.world()
    chunks, done = await world.read_chunks(run_id, namespace, start_index=start, limit=200)
    decryption = dash.session_decryption(request)
    try:
        views = [_chunk_view(run_id, namespace, c, decryption) for c in chunks]
    except DecryptionError:
        views = [_chunk_view(run_id, namespace, c) for c in chunks]
    response = dash.render(request, "_chunks.html", chunks=views, flash=None)
    response.headers["x-durably-next"] = str(chunks[-1].index + 1 if chunks else start)
    if done:
        response.headers["x-durably-live"] = "done"
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    """404 as a page."""
    detail = getattr(exc, "detail", None) or "not found"
    if request.url.path.startswith(root(request) + "/static"):
        return HTMLResponse("not found", status_code=404)
    dash = dashboard(request)
    return dash.render(request, "error.html", status_code=404, message=str(detail))
