"""The runs page: runs newest first, searched, counted by status, each with what explains
its status (what a live run waits for and since when; a failed run's error type, failing
step and, when readable, message), and the rows of child runs on a run's page.

What a run waits for and which call failed it come from :mod:`durably.waiting`, the one
place every surface asks (``Run.waiting()``, ``durably inspect``, the HTTP API).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ..errors import DecryptionError
from ..events import EventType
from ..waiting import Waiting, end_event, failing_step, waiting_of
from ..worlds.base import TERMINAL_STATUSES, RunFilter, RunRecord, StepRecord, World
from .payloads import Decryption, render_payload
from .state import Dashboard, dashboard, now, redirect, root

__all__ = [
    "BULK_LIMIT",
    "STATUSES",
    "WAIT_STATES",
    "RunState",
    "RunsQuery",
    "home",
    "hooks_page",
    "normalize_run_id",
    "run_states",
    "runs_counts",
    "runs_page",
    "runs_rows",
    "wait_state",
]

PAGE_SIZE = 50
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
#: What a running run is doing, finer than its status (the runs page's second row of
#: counts and filters): a step or its body runs (``active``), it sleeps (a durable timer
#: or a retry's backoff), it waits on a hook, on a child run, or for a worker to take
#: work that is ready (none of its namespace and deployment is running, or all are busy).
WAIT_STATES = ("active", "sleeping", "hook", "child", "worker")
#: Running runs whose wait is read to count and filter by :data:`WAIT_STATES`.
LIVE_SCAN = 300
#: The most runs one bulk cancel acts on.
BULK_LIMIT = 1000
_STATE_OF_KIND = {
    "step": "active",
    "turn": "active",
    "retry": "sleeping",
    "sleep": "sleeping",
    "hook": "hook",
    "child": "child",
    "worker": "worker",
}


def wait_state(waiting: Waiting | None) -> str | None:
    """The :data:`WAIT_STATES` member a live run's wait falls in (``None``: none)."""
    if waiting is None or waiting.kind is None:
        return None
    return _STATE_OF_KIND.get(waiting.kind)


def normalize_run_id(text: str) -> str:
    """A run id (or the start of one) as typed: ``run_`` in any case, then the id's
    upper-case characters (run ids are ``run_`` and Crockford base32)."""
    text = text.strip()
    if text[:4].lower() == "run_":
        return "run_" + text[4:].upper()
    return text


@dataclass(slots=True)
class RunsQuery:
    """The runs page's filters, from the query string.

    ``status`` is a status or a :data:`WAIT_STATES` member (running runs in that state);
    ``attrs`` are ``key=value`` pairs, all of which a run must have; ``q`` is a run id
    or the start of one.
    """

    status: str = ""
    workflow: str = ""
    deployment: str = ""
    attrs: list[str] = field(default_factory=list)
    q: str = ""
    page: int = 0

    @classmethod
    def parse(cls, request: Request) -> RunsQuery:
        """The filters of ``request``'s query string (or of a posted form's fields)."""
        return cls.from_items(list(request.query_params.multi_items()))

    @classmethod
    def from_items(cls, items: list[tuple[str, str]]) -> RunsQuery:
        """The filters from ``(name, value)`` pairs."""
        p: dict[str, str] = {}
        attrs: list[str] = []
        for key, value in items:
            if key == "attr":
                attrs += [a for a in value.replace(",", " ").split() if "=" in a]
            else:
                p.setdefault(key, value)
        status = p.get("status", "")
        try:
            page = max(int(p.get("page", "0")), 0)
        except ValueError:
            page = 0
        return cls(
            status=status if status in STATUSES or status in WAIT_STATES else "",
            workflow=p.get("workflow", "").strip(),
            deployment=p.get("deployment", "").strip(),
            attrs=attrs,
            q=normalize_run_id(p.get("q", "")),
            page=page,
        )

    def attributes(self) -> dict[str, str]:
        """The attribute filters as a dict."""
        out = {}
        for pair in self.attrs:
            k, _, v = pair.partition("=")
            if k.strip():
                out[k.strip()] = v.strip()
        return out

    def run_filter(self, **change: Any) -> RunFilter:
        """The world's filter for these filters (a wait state filters running runs)."""
        status = self.status if self.status in STATUSES else None
        if self.status in WAIT_STATES:
            status = "running"
        values: dict[str, Any] = {
            "status": status,
            "workflow_name": self.workflow or None,
            "deployment": self.deployment or None,
            "run_id_prefix": self.q or None,
            "attributes": self.attributes(),
            **change,
        }
        return RunFilter(**values)

    def items(self, **change: Any) -> list[tuple[str, Any]]:
        """This query's fields as ``(name, value)`` pairs, with ``change`` applied."""
        values = {
            "status": self.status,
            "workflow": self.workflow,
            "deployment": self.deployment,
            "q": self.q,
            "page": self.page,
            **change,
        }
        out: list[tuple[str, Any]] = [
            (k, values[k]) for k in ("status", "workflow", "deployment", "q") if values[k]
        ]
        if self.attrs:
            out.append(("attr", " ".join(self.attrs)))
        if values["page"]:
            out.append(("page", values["page"]))
        return out

    def qs(self, **change: Any) -> str:
        """This query as a query string, with ``change`` applied."""
        return urlencode(self.items(**change))

    @property
    def filtered(self) -> bool:
        """Whether any filter but the status is set."""
        return bool(self.workflow or self.deployment or self.attrs or self.q)


@dataclass(slots=True)
class RunState:
    """What a row says beside a run's status.

    Attributes:
        waiting: what a live run waits for (``None``: ended, or not read).
        state: its :data:`WAIT_STATES` member.
        failing: the durable call whose error failed the run, if one did.
        message: the failed run's error message, when it can be read (stored in
            plaintext, or opened by the session's decrypt).
        sealed: the message is encrypted (and not opened).
    """

    waiting: Waiting | None = None
    state: str | None = None
    failing: StepRecord | None = None
    message: str = ""
    sealed: bool = False


async def run_states(
    world: World,
    runs: list[RunRecord],
    *,
    decryption: Decryption | None = None,
    at: float | None = None,
) -> list[RunState]:
    """Per run, what its row says beside its status (see :class:`RunState`); a failed
    run's message is opened with ``decryption`` when given (its own grant decides)."""
    at = time.time() if at is None else at
    out = []
    for rec in runs:
        state = RunState()
        if rec.status not in TERMINAL_STATUSES:
            state.waiting = await waiting_of(world, rec, now=at)
            state.state = wait_state(state.waiting)
        elif rec.status == "failed":
            state.failing = failing_step(rec, await world.list_steps(rec.run_id))
            end = await end_event(world, rec)
            if end is not None and end.type is EventType.RUN_FAILED:
                try:
                    view = render_payload(
                        end.payload,
                        kind="error",
                        where=f"the error of {rec.run_id}",
                        opener=decryption.event(end) if decryption is not None else None,
                    )
                except DecryptionError:  # the key changed since the grant
                    view = render_payload(end.payload, kind="error", where="")
                state.message = view.error.get("message", "") if view.state == "error" else ""
                state.sealed = view.state == "encrypted"
        out.append(state)
    return out


async def _wait_counts(world: World, query: RunsQuery, at: float) -> tuple[dict[str, int], bool]:
    """Running runs (matching the other filters) per :data:`WAIT_STATES` member, from
    the newest :data:`LIVE_SCAN`; and whether there were more than that."""
    running = await world.list_runs(
        query.run_filter(status="running", limit=LIVE_SCAN + 1, offset=0)
    )
    counts = dict.fromkeys(WAIT_STATES, 0)
    for rec in running[:LIVE_SCAN]:
        state = wait_state(await waiting_of(world, rec, now=at))
        if state is not None:
            counts[state] += 1
    return counts, len(running) > LIVE_SCAN


async def _list_runs(
    world: World, query: RunsQuery, at: float, decryption: Decryption | None = None
) -> tuple[list[RunRecord], list[RunState], bool]:
    """The page of runs the query shows, their states, and whether there are more (a
    failed run's message is opened with ``decryption``: the session's grants)."""
    start = query.page * PAGE_SIZE
    if query.status in WAIT_STATES:
        # The world cannot filter by what a run waits for: read the running runs and
        # keep those in that state.
        running = await world.list_runs(query.run_filter(limit=LIVE_SCAN, offset=0))
        states = await run_states(world, running, at=at)
        kept = [(r, s) for r, s in zip(running, states, strict=True) if s.state == query.status]
        page = kept[start : start + PAGE_SIZE]
        return [r for r, _ in page], [s for _, s in page], len(kept) > start + PAGE_SIZE
    runs = await world.list_runs(query.run_filter(limit=PAGE_SIZE + 1, offset=start))
    shown = runs[:PAGE_SIZE]
    states = await run_states(world, shown, decryption=decryption, at=at)
    return shown, states, len(runs) > PAGE_SIZE


async def live_runs_matching(world: World, query: RunsQuery) -> tuple[list[RunRecord], bool]:
    """The live (pending or running) runs the query matches, newest first, at most
    :data:`BULK_LIMIT`; and whether there are more."""
    if query.status in WAIT_STATES:
        running = await world.list_runs(query.run_filter(limit=LIVE_SCAN, offset=0))
        states = await run_states(world, running)
        kept = [r for r, s in zip(running, states, strict=True) if s.state == query.status]
        return kept[:BULK_LIMIT], len(kept) > BULK_LIMIT
    statuses = [s for s in ("pending", "running") if query.status in ("", s)]
    runs: list[RunRecord] = []
    for status in statuses:
        runs += await world.list_runs(query.run_filter(status=status, limit=BULK_LIMIT + 1))
    runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return runs[:BULK_LIMIT], len(runs) > BULK_LIMIT


async def home(request: Request) -> Response:
    """``/``: the runs page."""
    return redirect(root(request) + "/runs")


async def runs_page(request: Request) -> Response:
    """``/runs``: runs, newest first, counted by status, searched and paged, live."""
    dash = dashboard(request)
    query = RunsQuery.parse(request)
    world = await dash.world()
    if query.q and (await world.get_run(query.q)) is not None:
        return redirect(root(request) + f"/runs/{query.q}")  # a whole id: its page
    at = now()
    runs, states, more = await _list_runs(world, query, at, dash.session_decryption(request))
    seen = await world.list_runs(RunFilter(limit=500))
    return dash.render(
        request,
        "runs.html",
        rows=list(zip(runs, states, strict=True)),
        more=more,
        query=query,
        **await _counts(world, query, at),
        workflows=sorted({r.workflow_name for r in seen}),
        deployments=sorted({r.deployment for r in seen}),
        now=at,
        bulk=True,
    )


async def _counts(world: World, query: RunsQuery, at: float) -> dict[str, Any]:
    """What the counts above the runs table show."""
    counts = await world.count_runs(query.run_filter())
    waits, capped = await _wait_counts(world, query, at)
    return {
        "statuses": STATUSES,
        "wait_states": WAIT_STATES,
        "counts": counts,
        "total": sum(counts.values()),
        "waits": waits,
        "waits_capped": capped,
        "live_scan": LIVE_SCAN,
    }


async def runs_counts(request: Request) -> Response:
    """``/runs/_counts``: the counts above the runs table (what the page polls)."""
    dash = dashboard(request)
    query = RunsQuery.parse(request)
    ctx = await _counts(await dash.world(), query, now())
    return dash.render(request, "_runs_counts.html", query=query, flash=None, **ctx)


async def runs_rows(request: Request) -> Response:
    """``/runs/_rows``: the rows of the runs table (what the page polls)."""
    dash = dashboard(request)
    query = RunsQuery.parse(request)
    at = now()
    decryption = dash.session_decryption(request)
    runs, states, _ = await _list_runs(await dash.world(), query, at, decryption)
    rows = list(zip(runs, states, strict=True))
    return dash.render(request, "_runs_rows.html", rows=rows, now=at, flash=None, bulk=True)


async def child_rows(
    dash: Dashboard, steps: list[StepRecord], decryption: Decryption | None = None
) -> list[tuple[RunRecord, RunState]]:
    """The child runs of a run (from its ``steps``), as rows of the runs table."""
    world = await dash.world()
    children = []
    for step in steps:
        if step.kind == "child" and step.child_run_id:
            rec = await world.get_run(step.child_run_id)
            if rec is not None:
                children.append(rec)
    states = await run_states(world, children, decryption=decryption)
    return list(zip(children, states, strict=True))


async def hooks_page(request: Request) -> Response:
    """``/hooks``: every live hook, newest first."""
    dash = dashboard(request)
    hooks = await (await dash.world()).list_hooks(limit=500)
    return dash.render(request, "hooks.html", hooks=hooks)
