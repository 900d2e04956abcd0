"""How a commit changes a world: the rules every transactional world shares.

A world that can run synchronous code inside one transaction (memory, SQLite) gives
:func:`apply_commit` a :class:`Store` of row primitives and gets the exact semantics of
the protocol: fact de-duplication, conditional commands, projections and queue entries
derived from events. A world that cannot (a remote database driven asynchronously) must
reproduce these rules; the conformance suite checks that it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..events import DELIVERABLE_TYPES, Event, EventType, NewEvent
from .base import (
    TERMINAL_STATUSES,
    Commit,
    CommitResult,
    HookRecord,
    RunRecord,
    RunWrite,
    StepRecord,
    WriteResult,
)

__all__ = ["OverlayStore", "RunRow", "Source", "Store", "TaskRow", "apply_commit"]


@dataclass(slots=True)
class RunRow:
    """A run's projection plus the bookkeeping the queue needs."""

    record: RunRecord
    decided_seq: int = 0
    turn_seq: int = 0
    turn_due_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(slots=True)
class TaskRow:
    """A queue entry: a step to execute or a timer to fire."""

    run_id: str
    call: int
    kind: str
    namespace: str
    deployment: str
    visible_at: float
    attempt: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None


class Store(Protocol):
    """Row primitives inside one open transaction."""

    def get_run_row(self, run_id: str) -> RunRow | None: ...

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None: ...

    def insert_run(self, row: RunRow) -> None: ...

    def save_run(self, row: RunRow) -> None: ...

    def insert_event(self, event: Event) -> None: ...

    def get_step(self, run_id: str, call: int) -> StepRecord | None: ...

    def save_step(self, step: StepRecord, *, new: bool) -> None: ...

    def put_task(self, task: TaskRow) -> None: ...

    def delete_task(self, run_id: str, call: int) -> None: ...

    def delete_run_tasks(self, run_id: str) -> None: ...

    def get_hook(self, token: str) -> HookRecord | None: ...

    def put_hook(self, hook: HookRecord) -> None: ...

    def delete_hook(self, token: str) -> None: ...

    def delete_run_hooks(self, run_id: str) -> None: ...

    def close_stream(self, run_id: str, namespace: str) -> None: ...

    def close_run_streams(self, run_id: str) -> None: ...


class Source(Protocol):
    """Read access to committed rows, for :class:`OverlayStore`."""

    def get_run_row(self, run_id: str) -> RunRow | None: ...

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None: ...

    def get_step(self, run_id: str, call: int) -> StepRecord | None: ...

    def get_hook(self, token: str) -> HookRecord | None: ...


def copy_run_row(row: RunRow) -> RunRow:
    """A copy that can be changed without touching the original (built field by field:
    this runs for every commit, and ``copy.copy`` is several times slower)."""
    r = row.record
    rec = RunRecord(
        r.run_id,
        r.workflow_name,
        r.namespace,
        r.deployment,
        r.status,
        r.created_at,
        r.started_at,
        r.completed_at,
        r.last_seq,
        r.idempotency_key,
        r.parent_run_id,
        r.parent_call,
        r.error_type,
        r.cancel_requested,
        dict(r.attributes),
    )
    return RunRow(
        rec, row.decided_seq, row.turn_seq, row.turn_due_at, row.lease_owner, row.lease_until
    )


def copy_step(s: StepRecord) -> StepRecord:
    """A copy of a steps row that can be changed without touching the original."""
    return StepRecord(
        s.run_id,
        s.call,
        s.kind,
        s.name,
        s.status,
        s.attempts,
        s.created_at,
        s.started_at,
        s.completed_at,
        s.due_at,
        s.error_type,
        s.child_run_id,
    )


class OverlayStore:
    """A :class:`Store` that collects a commit's changes in memory over a read-only
    :class:`Source`; the world then applies them (or drops them) in one go.

    The memory world reads its dicts through it; a world driven asynchronously (a remote
    database) preloads the rows a commit touches, runs :func:`apply_commit` here, and
    writes the collected changes back in one transaction.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.runs: dict[str, RunRow] = {}
        self.new_runs: set[str] = set()
        self.events: list[Event] = []
        self.steps: dict[tuple[str, int], tuple[StepRecord, bool]] = {}
        self.tasks: dict[tuple[str, int], TaskRow | None] = {}
        self.dropped_task_runs: set[str] = set()
        self.idem: dict[tuple[str, str, str], str] = {}
        self.hooks: dict[str, HookRecord | None] = {}
        self.dropped_hook_runs: set[str] = set()
        self.closed_streams: set[tuple[str, str]] = set()
        self.closed_stream_runs: set[str] = set()

    def get_run_row(self, run_id: str) -> RunRow | None:
        row = self.runs.get(run_id)
        if row is None:
            base = self.source.get_run_row(run_id)
            if base is None:
                return None
            row = self.runs[run_id] = copy_run_row(base)
        return row

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        k = (namespace, workflow_name, key)
        return self.idem.get(k) or self.source.find_idempotent(*k)

    def insert_run(self, row: RunRow) -> None:
        rec = row.record
        self.runs[rec.run_id] = row
        self.new_runs.add(rec.run_id)
        if rec.idempotency_key is not None:
            self.idem[(rec.namespace, rec.workflow_name, rec.idempotency_key)] = rec.run_id

    def save_run(self, row: RunRow) -> None:
        self.runs[row.record.run_id] = row

    def insert_event(self, event: Event) -> None:
        self.events.append(event)

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        entry = self.steps.get((run_id, call))
        if entry is not None:
            return entry[0]
        return self.source.get_step(run_id, call)

    def save_step(self, step: StepRecord, *, new: bool) -> None:
        key = (step.run_id, step.call)
        prior = self.steps.get(key)
        self.steps[key] = (step, new or (prior is not None and prior[1]))

    def put_task(self, task: TaskRow) -> None:
        self.tasks[(task.run_id, task.call)] = task

    def delete_task(self, run_id: str, call: int) -> None:
        self.tasks[(run_id, call)] = None

    def delete_run_tasks(self, run_id: str) -> None:
        self.dropped_task_runs.add(run_id)
        for key in [k for k in self.tasks if k[0] == run_id]:
            del self.tasks[key]

    def get_hook(self, token: str) -> HookRecord | None:
        if token in self.hooks:
            return self.hooks[token]
        hook = self.source.get_hook(token)
        if hook is not None and hook.run_id in self.dropped_hook_runs:
            return None
        return hook

    def put_hook(self, hook: HookRecord) -> None:
        self.hooks[hook.token] = hook

    def delete_hook(self, token: str) -> None:
        self.hooks[token] = None

    def delete_run_hooks(self, run_id: str) -> None:
        self.dropped_hook_runs.add(run_id)
        for token, hook in list(self.hooks.items()):
            if hook is not None and hook.run_id == run_id:
                self.hooks[token] = None

    def close_stream(self, run_id: str, namespace: str) -> None:
        self.closed_streams.add((run_id, namespace))

    def close_run_streams(self, run_id: str) -> None:
        self.closed_stream_runs.add(run_id)


_STEP_DONE = frozenset({"completed", "failed", "cancelled"})


class _Write:
    """What applying one write needs to hand around."""

    __slots__ = ("commit", "extra", "now", "row", "store", "work")

    def __init__(
        self, store: Store, row: RunRow, commit: Commit, now: float, work: list[bool]
    ) -> None:
        self.store = store
        self.row = row
        self.commit = commit
        self.now = now
        self.work = work
        self.extra: list[NewEvent] = []  # facts the world itself appends after the write


def apply_commit(store: Store, commit: Commit, now: float) -> CommitResult:
    """Apply every write of ``commit`` through ``store`` and report what happened."""
    results: list[WriteResult] = []
    ok_by_run: dict[str, bool] = {}
    work = [False]
    for w in commit.writes:
        if w.requires is not None and not ok_by_run.get(w.requires, False):
            results.append(WriteResult(w.run_id, False, 0))
            continue
        res = _apply_write(store, w, commit, now, work)
        ok_by_run[w.run_id] = res.ok
        results.append(res)
    return CommitResult(results, new_work=work[0])


def _create(store: Store, w: RunWrite, commit: Commit, now: float) -> WriteResult | None:
    meta = w.create
    assert meta is not None
    if meta.idempotency_key is not None:
        existing = store.find_idempotent(meta.namespace, meta.workflow_name, meta.idempotency_key)
        if existing is not None:
            row = store.get_run_row(existing)
            assert row is not None
            return WriteResult(existing, False, row.record.last_seq, created=False)
    row = store.get_run_row(w.run_id)
    if row is not None:
        # Deterministic ids (child runs) make creation idempotent on replay.
        return WriteResult(w.run_id, False, row.record.last_seq, created=False)
    record = RunRecord(
        run_id=w.run_id,
        workflow_name=meta.workflow_name,
        namespace=meta.namespace,
        deployment=meta.deployment,
        status="pending",
        created_at=now,
        started_at=None,
        completed_at=None,
        last_seq=0,
        idempotency_key=meta.idempotency_key,
        parent_run_id=meta.parent_run_id,
        parent_call=meta.parent_call,
    )
    row = RunRow(record, turn_due_at=now)
    if w.lease:
        row.lease_owner = commit.owner
        row.lease_until = now + commit.lease_seconds
    store.insert_run(row)
    return None


def _apply_write(
    store: Store, w: RunWrite, commit: Commit, now: float, work: list[bool]
) -> WriteResult:
    created = False
    if w.create is not None:
        refused = _create(store, w, commit, now)
        if refused is not None:
            return refused
        created = True
        work[0] = True

    row = store.get_run_row(w.run_id)
    if row is None:
        return WriteResult(w.run_id, False, 0)
    rec = row.record
    x = _Write(store, row, commit, now, work)
    decided_before = row.decided_seq
    lease_ok = (
        row.lease_owner is None
        or row.lease_owner == commit.owner
        or (row.lease_until is not None and row.lease_until < now)
    )
    ok = True
    delivered = False
    for fact in w.facts:
        if not _fact_is_new(store, row, fact):
            ok = False
            continue
        _append(x, fact)
        if fact.type in DELIVERABLE_TYPES:
            delivered = True
            row.decided_seq = rec.last_seq

    if w.expected_seq is not None:
        # Informational facts (a retry recorded, attributes set) may have been appended
        # since the turn's writer last read the log; only facts the body consumes and
        # other commands make its decisions stale.
        ended = rec.status in TERMINAL_STATUSES  # an ended run takes no more commands
        if ok and lease_ok and not ended and decided_before <= w.expected_seq:
            claim = set(w.claim_calls)
            for cmd in w.commands:
                _append(x, cmd, claim=cmd.call in claim)
            row.decided_seq = rec.last_seq
            row.turn_seq = rec.last_seq
            row.turn_due_at = None
        else:
            ok = False
    own_seq = rec.last_seq
    for fact in x.extra:
        _append(x, fact)
        row.decided_seq = rec.last_seq
        delivered = True
    if row.turn_seq < row.decided_seq and delivered and row.turn_due_at is None:
        row.turn_due_at = now
        work[0] = True
    if rec.status in TERMINAL_STATUSES:
        row.turn_due_at = None
    if w.release and row.lease_owner == commit.owner:
        row.lease_owner = None
        row.lease_until = None
    store.save_run(row)
    return WriteResult(w.run_id, ok, rec.last_seq, created=created, own_seq=own_seq)


def _fact_is_new(store: Store, row: RunRow, fact: NewEvent) -> bool:
    t = fact.type
    rec = row.record
    if t is EventType.RUN_CREATED:
        return rec.last_seq == 0
    if t is EventType.RUN_STARTED:
        return rec.status == "pending"
    if t is EventType.RUN_CANCEL_REQUESTED:
        return not rec.cancel_requested and rec.status not in TERMINAL_STATUSES
    if fact.call is None:
        return True
    step = store.get_step(rec.run_id, fact.call)
    if step is None:
        return False
    if t is EventType.STEP_RETRYING:
        # Only the latest attempt may reschedule the step: a late report from an attempt
        # whose lease expired must not take the task from the worker now holding it.
        latest = int(fact.data.get("attempt", step.attempts)) >= step.attempts
        return step.kind == "step" and step.status not in _STEP_DONE and latest
    if t in (EventType.STEP_COMPLETED, EventType.STEP_FAILED):
        return step.kind == "step" and step.status not in _STEP_DONE
    if t is EventType.WAIT_COMPLETED:
        return step.kind == "wait" and step.status == "waiting"
    if t in (EventType.CHILD_COMPLETED, EventType.CHILD_FAILED):
        return step.kind == "child" and step.status not in _STEP_DONE
    if t is EventType.HOOK_RECEIVED:
        live = rec.status not in TERMINAL_STATUSES
        return live and step.kind == "hook" and step.status == "waiting"
    return True


def _append(x: _Write, ev: NewEvent, *, claim: bool = False) -> None:
    rec = x.row.record
    rec.last_seq += 1
    at = ev.created_at or x.now
    payload = ev.payload
    sealer = x.commit.sealer
    if sealer is not None and payload is not None:
        payload = sealer.seal_event(rec.run_id, rec.last_seq, ev.type.value, ev.call, payload)
    x.store.insert_event(Event(rec.run_id, rec.last_seq, ev.type, ev.call, ev.data, payload, at))
    if _project(x, ev, at, claim):
        x.work[0] = True


_RUN_END = {
    EventType.RUN_COMPLETED: "completed",
    EventType.RUN_FAILED: "failed",
    EventType.RUN_CANCELLED: "cancelled",
}


def _project(x: _Write, ev: NewEvent, at: float, claim: bool) -> bool:
    """Update the status tables and the queue for one appended event.

    Returns true when the event made a queue entry that nobody holds yet.
    """
    store, row = x.store, x.row
    rec = row.record
    t = ev.type
    call = ev.call
    if t is EventType.RUN_STARTED:
        rec.status = "running"
        rec.started_at = at
    elif t in _RUN_END:
        rec.status = _RUN_END[t]  # type: ignore[assignment]
        rec.completed_at = at
        rec.error_type = ev.data.get("error_type")
        row.lease_owner = None
        row.lease_until = None
        # Nothing of an ended run runs or fires any more (steps in flight may still
        # record late results as facts); its hooks go and its streams close.
        store.delete_run_tasks(rec.run_id)
        store.delete_run_hooks(rec.run_id)
        store.close_run_streams(rec.run_id)
    elif t is EventType.RUN_CANCEL_REQUESTED:
        rec.cancel_requested = True
    elif t is EventType.ATTRIBUTES_SET:
        # data: {"set": {key: value, ...}, "remove": [key, ...]}, plaintext and searchable.
        for key, value in (ev.data.get("set") or {}).items():
            rec.attributes[str(key)] = str(value)
        for key in ev.data.get("remove") or ():
            rec.attributes.pop(str(key), None)
    elif t is EventType.STREAM_CLOSED:
        store.close_stream(rec.run_id, str(ev.data.get("namespace", "")))
    elif t is EventType.STEP_CREATED and call is not None:
        step = StepRecord(
            run_id=rec.run_id,
            call=call,
            kind="step",
            name=str(ev.data.get("name", "")),
            status="running" if claim else "pending",
            attempts=1 if claim else 0,
            created_at=at,
            started_at=at if claim else None,
            completed_at=None,
        )
        store.save_step(step, new=True)
        store.put_task(
            TaskRow(
                rec.run_id,
                call,
                "step",
                rec.namespace,
                rec.deployment,
                visible_at=at,
                attempt=1 if claim else 0,
                lease_owner=x.commit.owner if claim else None,
                lease_until=x.now + x.commit.lease_seconds if claim else None,
            )
        )
        return not claim
    elif t is EventType.WAIT_CREATED and call is not None:
        due = float(ev.data["due_at"])
        store.save_step(
            StepRecord(
                run_id=rec.run_id,
                call=call,
                kind="wait",
                name=str(ev.data.get("name", "sleep")),
                status="waiting",
                attempts=0,
                created_at=at,
                started_at=at,
                completed_at=None,
                due_at=due,
            ),
            new=True,
        )
        store.put_task(TaskRow(rec.run_id, call, "timer", rec.namespace, rec.deployment, due))
        return True
    elif t is EventType.CHILD_CREATED and call is not None:
        store.save_step(
            StepRecord(
                run_id=rec.run_id,
                call=call,
                kind="child",
                name=str(ev.data.get("name", "")),
                status="running",
                attempts=1,
                created_at=at,
                started_at=at,
                completed_at=None,
                child_run_id=ev.data.get("child_run_id"),
            ),
            new=True,
        )
    elif t is EventType.HOOK_CREATED and call is not None:
        _hook_created(x, ev, call, at)
    elif call is not None:
        return _project_call(x, ev, call, at)
    return False


def _hook_created(x: _Write, ev: NewEvent, call: int, at: float) -> None:
    store, rec = x.store, x.row.record
    token = str(ev.data["token"])
    holder = store.get_hook(token)
    conflict = holder is not None and (holder.run_id, holder.call) != (rec.run_id, call)
    store.save_step(
        StepRecord(
            run_id=rec.run_id,
            call=call,
            kind="hook",
            name=str(ev.data.get("name", ev.data.get("type", "hook"))),
            status="conflict" if conflict else "waiting",
            attempts=0,
            created_at=at,
            started_at=at,
            completed_at=at if conflict else None,
        ),
        new=True,
    )
    if conflict:
        assert holder is not None
        x.extra.append(
            NewEvent(
                EventType.HOOK_CONFLICT,
                call,
                {"token": token, "held_by": holder.run_id, "error_type": "HookConflictError"},
            )
        )
        return
    x.extra.append(NewEvent(EventType.HOOK_REGISTERED, call, {"token": token}))
    store.put_hook(
        HookRecord(
            token=token,
            run_id=rec.run_id,
            call=call,
            hook_type=str(ev.data.get("type", "hook")),
            namespace=rec.namespace,
            created_at=at,
            metadata=dict(ev.data.get("metadata") or {}),
        )
    )


def _project_call(x: _Write, ev: NewEvent, call: int, at: float) -> bool:
    store, rec = x.store, x.row.record
    t = ev.type
    found = store.get_step(rec.run_id, call)
    if found is None:
        return False
    step = copy_step(found)
    if t is EventType.STEP_RETRYING:
        step.status = "retrying"
        step.attempts = int(ev.data.get("attempt", step.attempts))
        step.error_type = ev.data.get("error_type")
        retry_at = float(ev.data.get("retry_at", at))
        store.save_step(step, new=False)
        if rec.status in TERMINAL_STATUSES:
            return False  # the run ended meanwhile: no more attempts
        store.put_task(
            TaskRow(
                rec.run_id,
                call,
                "step",
                rec.namespace,
                rec.deployment,
                retry_at,
                attempt=step.attempts,
            )
        )
        return True
    if t in (EventType.STEP_COMPLETED, EventType.STEP_FAILED):
        step.status = "completed" if t is EventType.STEP_COMPLETED else "failed"
        step.attempts = int(ev.data.get("attempt", step.attempts))
        if ev.data.get("started_at") is not None:
            step.started_at = float(ev.data["started_at"])
        step.completed_at = at
        step.error_type = ev.data.get("error_type")
        store.delete_task(rec.run_id, call)
    elif t is EventType.WAIT_COMPLETED:
        step.status = "completed"
        step.completed_at = at
        store.delete_task(rec.run_id, call)
    elif t is EventType.WAIT_CANCELLED:
        if step.status == "waiting":
            step.status = "cancelled"
            step.completed_at = at
        store.delete_task(rec.run_id, call)
    elif t in (EventType.CHILD_COMPLETED, EventType.CHILD_FAILED):
        step.status = "completed" if t is EventType.CHILD_COMPLETED else "failed"
        step.completed_at = at
        step.error_type = ev.data.get("error_type")
    elif t is EventType.HOOK_RECEIVED:
        step.attempts += 1  # resumes received
    elif t is EventType.HOOK_DISPOSED:
        if step.status == "waiting":
            step.status = "disposed"
            step.completed_at = at
        token = ev.data.get("token")
        holder = store.get_hook(str(token)) if token is not None else None
        if holder is not None and (holder.run_id, holder.call) == (rec.run_id, call):
            store.delete_hook(holder.token)
    else:
        return False
    store.save_step(step, new=False)
    return False
