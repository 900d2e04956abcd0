"""The dashboard's pages (GET): runs, one run, one durable call, live hooks, and the
fragments that the pages poll for live updates.

The run and call pages are built by :func:`run_context` and :func:`call_context`, which
the decrypt action (:mod:`durably.web.actions`) calls with a :class:`Decryption` to build
the same page with the payloads in plaintext."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..crypto import is_sealed
from ..events import EVENTS, TERMINAL_RUN_TYPES, Event, EventType
from ..worlds.base import TERMINAL_STATUSES, RunFilter, RunRecord
from .payloads import Decryption, Opener, PayloadView, render_payload
from .state import Dashboard, dashboard, now, redirect, root
from .timeline import build_timeline

__all__ = [
    "DecryptPanel",
    "call_context",
    "call_page",
    "decrypt_panel",
    "event_payload",
    "home",
    "hooks_page",
    "not_found",
    "run_context",
    "run_live",
    "run_page",
    "runs_page",
    "runs_rows",
    "stream_chunks",
]

PAGE_SIZE = 50
#: Runs read to apply the filters a world cannot (deployment, part of a run id).
SCAN_LIMIT = 5000
#: Events shown in a run's log (the newest are kept when there are more).
MAX_EVENTS = 2000
#: Chunks shown when a stream is first displayed (the newest).
TAIL_CHUNKS = 50
STATUSES = ("pending", "running", "completed", "failed", "cancelled")


# -- runs -------------------------------------------------------------------------------


@dataclass(slots=True)
class RunsQuery:
    """The runs page's filters, from the query string."""

    status: str = ""
    workflow: str = ""
    deployment: str = ""
    attrs: list[str] = field(default_factory=list)
    q: str = ""
    page: int = 0

    @classmethod
    def parse(cls, request: Request) -> RunsQuery:
        p = request.query_params
        status = p.get("status", "")
        try:
            page = max(int(p.get("page", "0")), 0)
        except ValueError:
            page = 0
        return cls(
            status=status if status in STATUSES else "",
            workflow=p.get("workflow", "").strip(),
            deployment=p.get("deployment", "").strip(),
            attrs=[a.strip() for a in p.getlist("attr") if a.strip()],
            q=p.get("q", "").strip(),
            page=page,
        )

    def attributes(self) -> dict[str, str]:
        out = {}
        for pair in self.attrs:
            k, sep, v = pair.partition("=")
            if sep and k.strip():
                out[k.strip()] = v.strip()
        return out

    def qs(self, **change: Any) -> str:
        """This query as a query string, with ``change`` applied."""
        items: list[tuple[str, Any]] = []
        values = {
            "status": self.status,
            "workflow": self.workflow,
            "deployment": self.deployment,
            "q": self.q,
            "page": self.page,
            **change,
        }
        for key in ("status", "workflow", "deployment", "q"):
            if values[key]:
                items.append((key, values[key]))
        items += [("attr", a) for a in self.attrs]
        if values["page"]:
            items.append(("page", values["page"]))
        return urlencode(items)


async def _list_runs(dash: Dashboard, query: RunsQuery) -> tuple[list[RunRecord], bool]:
    world = await dash.world()
    post_filter = bool(query.deployment or query.q)
    wanted = (query.page + 1) * PAGE_SIZE + 1
    flt = RunFilter(
        status=query.status or None,
        workflow_name=query.workflow or None,
        attributes=query.attributes(),
        limit=SCAN_LIMIT if post_filter else wanted,
    )
    runs = await world.list_runs(flt)
    if query.deployment:
        runs = [r for r in runs if r.deployment == query.deployment]
    if query.q:
        needle = query.q.lower()
        runs = [r for r in runs if needle in r.run_id.lower()]
    start = query.page * PAGE_SIZE
    return runs[start : start + PAGE_SIZE], len(runs) > start + PAGE_SIZE


async def home(request: Request) -> Response:
    """``/``: the runs page."""
    return redirect(root(request) + "/runs")


async def runs_page(request: Request) -> Response:
    """``/runs``: runs, newest first, filtered and paged, refreshed live."""
    dash = dashboard(request)
    query = RunsQuery.parse(request)
    if query.q:
        world = await dash.world()
        if await world.get_run(query.q) is not None:
            return redirect(root(request) + f"/runs/{query.q}")
    runs, more = await _list_runs(dash, query)
    seen = await (await dash.world()).list_runs(RunFilter(limit=500))
    return dash.render(
        request,
        "runs.html",
        runs=runs,
        more=more,
        query=query,
        statuses=STATUSES,
        workflows=sorted({r.workflow_name for r in seen}),
        deployments=sorted({r.deployment for r in seen}),
        now=now(),
    )


async def runs_rows(request: Request) -> Response:
    """``/runs/_rows``: the rows of the runs table (what the page polls)."""
    dash = dashboard(request)
    query = RunsQuery.parse(request)
    runs, _ = await _list_runs(dash, query)
    return dash.render(request, "_runs_rows.html", runs=runs, now=now(), flash=None)


async def hooks_page(request: Request) -> Response:
    """``/hooks``: every live hook, newest first."""
    dash = dashboard(request)
    hooks = await (await dash.world()).list_hooks(limit=500)
    return dash.render(request, "hooks.html", hooks=hooks)


# -- one run ----------------------------------------------------------------------------


async def _run(dash: Dashboard, run_id: str) -> RunRecord:
    rec = await (await dash.world()).get_run(run_id)
    if rec is None:
        raise HTTPException(404, f"no run with id {run_id!r} in {dash.world_url}")
    return rec


async def _live_context(dash: Dashboard, rec: RunRecord) -> dict[str, Any]:
    world = await dash.world()
    events = await world.read_events(rec.run_id)
    steps = await world.list_steps(rec.run_id)
    timeline = build_timeline(rec, events, now=now(), steps=steps)
    return {"run": rec, "events": events, "timeline": timeline, "steps": steps}


def _end_event(events: list[Event]) -> Event | None:
    for ev in reversed(events):
        if ev.type in TERMINAL_RUN_TYPES:
            return ev
    return None


@dataclass(frozen=True, slots=True)
class DecryptPanel:
    """What a page says about its encrypted payloads: the Decrypt button (``action``, a
    POST), why it is not offered (``problem``: no key), or that this response shows them
    decrypted (``decrypted``, with the page to go back to, ``back``)."""

    sealed: bool
    action: str
    back: str
    problem: str | None = None
    owns_key: bool = True
    decrypted: bool = False
    recorded: str = ""


def decrypt_panel(
    request: Request,
    sealed: bool,
    *,
    decrypted: bool = False,
    recorded: str = "",
    call: int | None = None,
) -> DecryptPanel:
    """The panel of the run page (or of call ``call``'s page) of this request's run."""
    dash = dashboard(request)
    back = root(request) + f"/runs/{request.path_params['run_id']}"
    if call is not None:
        back += f"/calls/{call}"
    return DecryptPanel(
        sealed=sealed,
        action=back + "/decrypt",
        back=back,
        problem=dash.key_problem() if sealed and not decrypted else None,
        owns_key=dash.owns_registry,
        decrypted=decrypted,
        recorded=recorded,
    )


def _opener(decryption: Decryption | None, ev: Event) -> Opener | None:
    return None if decryption is None else decryption.event(ev)


async def run_context(
    dash: Dashboard, run_id: str, decryption: Decryption | None = None
) -> dict[str, Any]:
    """What ``run.html`` shows of run ``run_id``; with ``decryption``, its payloads (input,
    outcome, the event log's payloads, the streams' chunks) are opened.

    Raises:
        HTTPException: 404, no such run.
        DecryptionError: a payload did not decrypt.
    """
    rec = await _run(dash, run_id)
    world = await dash.world()
    ctx = await _live_context(dash, rec)
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
        "waiting": [s for s in ctx["steps"] if s.kind == "wait" and s.status == "waiting"],
        "terminal": rec.status in TERMINAL_STATUSES,
        "sealed": sealed,
    }


async def run_page(request: Request) -> Response:
    """``/runs/{run_id}``: status, timeline, input and outcome, hooks, streams, event log."""
    dash = dashboard(request)
    ctx = await run_context(dash, request.path_params["run_id"])
    return dash.render(request, "run.html", **ctx, decrypt=decrypt_panel(request, ctx["sealed"]))


async def run_live(request: Request) -> Response:
    """``/runs/{run_id}/_live``: the run's summary and timeline (what the page polls).
    The ``X-Durably-Live: done`` header tells the page the run has ended."""
    dash = dashboard(request)
    rec = await _run(dash, request.path_params["run_id"])
    ctx = await _live_context(dash, rec)
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
    sealed = any(is_sealed(ev.payload) for ev in events)
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
            sealed = sealed or is_sealed(child_input.payload)
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
    ctx = await call_context(dash, request.path_params["run_id"], call)
    panel = decrypt_panel(request, ctx["sealed"], call=call)
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
    response = dash.render(
        request,
        "_chunks.html",
        chunks=[_chunk_view(run_id, namespace, c) for c in chunks],
        flash=None,
    )
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
