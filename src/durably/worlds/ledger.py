"""How a commit changes a world: the rules every transactional world shares.

A world that can run synchronous code inside one transaction (memory, SQLite) gives
:func:`apply_commit` a :class:`~durably.worlds.store.Store` of row primitives and gets the
exact semantics of the protocol: fact de-duplication, conditional commands, projections
and queue entries derived from events. A world that cannot (a remote database driven
asynchronously) must reproduce these rules; the conformance suite checks that it does.

What each event type does (whether a fact is new, what an appended event changes in
the status tables and the queue) is its rule in :mod:`durably.worlds.projections`; this
module is the flow of a commit around them.
"""

from __future__ import annotations

from ..events import DELIVERABLE_TYPES, Event, EventType, NewEvent
from . import locks
from .base import TERMINAL_STATUSES, Commit, CommitResult, RunRecord, RunWrite, WriteResult
from .projections import RULES, WriteState, rule_for
from .store import OverlayStore, RunRow, Source, Store, TaskRow, copy_run_row

# The row types and the overlay live in .store; they are re-exported here because the
# worlds import them from the ledger.
__all__ = [
    "OverlayStore",
    "RunRow",
    "Source",
    "Store",
    "TaskRow",
    "apply_commit",
    "copy_run_row",
]


def apply_commit(store: Store, commit: Commit, now: float) -> CommitResult:
    """Apply every write of ``commit`` through ``store`` and report what happened."""
    results: list[WriteResult] = []
    ok_by_run: dict[str, bool] = {}
    work = [False]
    for w in commit.writes:
        if w.requires is not None and not ok_by_run.get(w.requires, False):
            results.append(WriteResult(w.run_id, False, 0))
            continue
        grants: list[locks.LockEntry] = []
        res = _apply_write(store, w, commit, now, work, grants)
        ok_by_run[w.run_id] = res.ok
        results.append(res)
        if grants:
            _wake_granted(store, grants, commit, now, work)
    return CommitResult(results, new_work=work[0])


#: How far a run's first turn moves ahead per point of ``priority`` (seconds): claims
#: take due turns earliest first, so a higher priority is claimed before any backlog.
PRIORITY_STEP = 1e6


def _wake_granted(
    store: Store, grants: list[locks.LockEntry], commit: Commit, now: float, work: list[bool]
) -> None:
    """Runs granted a lock permit by a write of this commit: a body waiting in
    ``durably.lock`` gets its ``lock_acquired`` fact (so its turn is due); a run waiting
    for admission under a concurrency limit gets its first turn."""
    while grants:
        g = grants.pop(0)
        if g.call == locks.ADMISSION:
            row = store.get_run_row(g.run_id)
            if row is not None and row.turn_due_at is None and row.record.status == "pending":
                row.turn_due_at = now
                store.save_run(row)
                work[0] = True
            continue
        fact = NewEvent(EventType.LOCK_ACQUIRED, g.call, {"key": g.key})
        _apply_write(store, RunWrite(g.run_id, facts=[fact]), commit, now, work, grants)


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
    # A creator that gave its ``run_created`` a time (one that begins the run itself,
    # knowing the record without reading it) gets the record at that time too.
    record = RunRecord(
        run_id=w.run_id,
        workflow_name=meta.workflow_name,
        namespace=meta.namespace,
        deployment=meta.deployment,
        status="pending",
        created_at=(w.facts[0].created_at if w.facts else 0.0) or now,
        started_at=None,
        completed_at=None,
        last_seq=0,
        idempotency_key=meta.idempotency_key,
        parent_run_id=meta.parent_run_id,
        parent_call=meta.parent_call,
    )
    due = now - max(meta.priority, 0) * PRIORITY_STEP
    row = RunRow(record, turn_due_at=None if meta.concurrency_limit else due)
    if w.lease:
        row.lease_owner = commit.owner
        row.lease_until = now + commit.lease_seconds
    store.insert_run(row)
    return None


def _apply_write(
    store: Store,
    w: RunWrite,
    commit: Commit,
    now: float,
    work: list[bool],
    grants: list[locks.LockEntry],
) -> WriteResult:
    created = False
    if w.create is not None:
        refused = _create(store, w, commit, now)
        if refused is not None:
            return refused
        created = True
        if not w.lease:
            # A run created leased is begun by its creator: no other worker need wake.
            work[0] = True

    row = store.get_run_row(w.run_id)
    if row is None:
        return WriteResult(w.run_id, False, 0)
    rec = row.record
    x = WriteState(store, row, commit, now, work)
    x.grants = grants
    meta = w.create
    if created and meta is not None and meta.concurrency_limit and meta.concurrency_key:
        locks.request(
            x, meta.concurrency_key, locks.ADMISSION, meta.concurrency_limit, meta.priority
        )
        if row.turn_due_at is None:  # not admitted: nobody may begin it
            row.lease_owner = row.lease_until = None
    decided_before = row.decided_seq
    lease_ok = (
        row.lease_owner is None
        or row.lease_owner == commit.owner
        or (row.lease_until is not None and row.lease_until < now)
    )
    ok = True
    delivered = False
    for fact in w.facts:
        if not (RULES.get(fact.type) or rule_for(fact.type)).is_new(store, row, fact):
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
    if w.turn and row.turn_due_at is None:
        row.turn_due_at = now
        work[0] = True
    if rec.status in TERMINAL_STATUSES:
        row.turn_due_at = None
    if w.release and row.lease_owner == commit.owner:
        row.lease_owner = None
        row.lease_until = None
    store.save_run(row)
    return WriteResult(w.run_id, ok, rec.last_seq, created=created, own_seq=own_seq)


def _append(x: WriteState, ev: NewEvent, *, claim: bool = False) -> None:
    # Before anything changes: an unknown type (rule_for raises) changes nothing.
    rule = RULES.get(ev.type) or rule_for(ev.type)
    rec = x.row.record
    rec.last_seq += 1
    at = ev.created_at or x.now
    payload = ev.payload
    sealer = x.commit.sealer
    if sealer is not None and payload is not None:
        # ``_value_``: the enum's ``value`` property costs two Python calls per event.
        payload = sealer.seal_event(rec.run_id, rec.last_seq, ev.type._value_, ev.call, payload)
    x.store.insert_event(Event(rec.run_id, rec.last_seq, ev.type, ev.call, ev.data, payload, at))
    if rule.project(x, ev, at, claim):
        x.work[0] = True
