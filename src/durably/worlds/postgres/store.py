"""A commit's rows in and out: what the ledger may read (preloaded in one query, or kept
from this process's last commit), and what it changed (written back in one statement).

The ledger (:func:`durably.worlds.ledger.apply_commit`) is synchronous; a remote database
is not. So a commit gathers every row the ledger can ask for (:class:`CommitReads` says
which; :class:`Preloaded` serves them, read in one round trip or taken from
:class:`RecentRows`), runs the ledger on an :class:`~durably.worlds.ledger.OverlayStore`,
and turns the overlay into the parameters of ``queries.WRITE`` (:func:`write_params`).
The rows are decoded by :mod:`..sql.rows`, as SQLite's are.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...events import CREATING_TYPES, EventType
from ..base import TERMINAL_STATUSES, Commit, CommitResult, HookRecord, StepRecord
from ..ledger import OverlayStore, RunRow
from ..locks import LockEntry
from ..sql.rows import hook_from_row, run_row_from_row, step_from_row

__all__ = [
    "CommitAttempt",
    "CommitReads",
    "LockRows",
    "Preloaded",
    "RecentRows",
    "woken_namespaces",
    "write_params",
]

_json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(value: Any) -> str:
    """``value`` as compact JSON text: orjson writes a step's commit document in ~1 us
    where the standard library takes ~19 (the same text: shortest float reprs, UTF-8
    kept); what orjson refuses (an int past 64 bits) goes the standard way."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _json_dumps(value)


_STEP_DONE = frozenset({"completed", "failed", "cancelled"})
#: Events whose ``data["token"]`` the ledger looks up in the hook index.
_HOOK_TOKEN_TYPES = frozenset({EventType.HOOK_CREATED, EventType.HOOK_DISPOSED})


class CommitAttempt:
    """One try of a commit, and what settles it if the connection drops after its write
    was sent: the events it appends (looked for in the log), its result, the runs whose
    log grew (``run_id -> last_seq``) and the namespaces to wake."""

    __slots__ = ("ended", "events", "namespaces", "result", "runs", "sent")

    def __init__(self) -> None:
        self.sent = False
        self.events: list[tuple[str, int, str, float]] = []
        self.result: CommitResult | None = None
        self.runs: dict[str, int] = {}
        self.namespaces: set[str] = set()
        self.ended: list[str] = []


@dataclass(slots=True)
class CommitReads:
    """Which rows a commit's ledger may ask for: the parameters of ``queries.PRELOAD``."""

    run_ids: list[str] = field(default_factory=list)
    idem_keys: list[tuple[str, str, str]] = field(default_factory=list)
    step_keys: list[tuple[str, int]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    #: Runs the commit creates under an id just made for them (a ``start()`` without an
    #: idempotency key): no row of theirs can exist yet (see :meth:`RecentRows.source`).
    fresh: frozenset[str] = frozenset()

    @classmethod
    def of(cls, commit: Commit) -> CommitReads:
        """Every run written, every idempotency key created, every call and hook token
        named."""
        runs: dict[str, None] = {}
        fresh: set[str] = set()
        idem: dict[tuple[str, str, str], None] = {}
        steps: dict[tuple[str, int], None] = {}
        tokens: dict[str, None] = {}
        for w in commit.writes:
            runs[w.run_id] = None
            meta = w.create
            if meta is not None and meta.idempotency_key is not None:
                idem[(meta.namespace, meta.workflow_name, meta.idempotency_key)] = None
            elif meta is not None and meta.parent_run_id is None and w.requires is None:
                fresh.add(w.run_id)  # a child's id is made again on replay: not fresh
            for ev in (*w.facts, *w.commands):
                if ev.call is None:
                    continue
                # A command that creates a call reads no steps row (the ledger writes it).
                if ev.type not in CREATING_TYPES or ev in w.facts:
                    steps[(w.run_id, ev.call)] = None
                if ev.type in _HOOK_TOKEN_TYPES and ev.data.get("token") is not None:
                    tokens[str(ev.data["token"])] = None
        return cls(sorted(runs), list(idem), list(steps), list(tokens), frozenset(fresh))

    def params(self) -> list[Any]:
        """The arguments of ``queries.PRELOAD`` / ``PRELOAD_LOCKED``."""
        return [
            self.run_ids,
            [k[0] for k in self.idem_keys],
            [k[1] for k in self.idem_keys],
            [k[2] for k in self.idem_keys],
            [k[0] for k in self.step_keys],
            [k[1] for k in self.step_keys],
            self.tokens,
        ]


class LockRows:
    """The lock rows a lock commit read (see :mod:`.locks`): by key, every holder and the
    first waiters in order; by run, its entries."""

    __slots__ = ("by_run", "holders", "waiters")

    def __init__(self) -> None:
        self.holders: dict[str, list[LockEntry]] = {}
        self.waiters: dict[str, list[LockEntry]] = {}
        self.by_run: dict[str, list[LockEntry]] = {}


class Preloaded:
    """The committed rows a commit read, as a :class:`~durably.worlds.ledger.Source`.

    Asking for a row that was not preloaded is a bug in :class:`CommitReads` (the ledger
    would decide on rows it never saw), so it raises instead of guessing.
    """

    __slots__ = (
        "_hooks_asked",
        "_idem_asked",
        "_runs_asked",
        "_steps_asked",
        "hooks",
        "idem",
        "locks",
        "runs",
        "step_versions",
        "steps",
        "versions",
    )

    def __init__(self, reads: CommitReads) -> None:
        self.runs: dict[str, RunRow] = {}
        self.versions: dict[str, int] = {}
        self.idem: dict[tuple[str, str, str], str] = {}
        self.steps: dict[tuple[str, int], StepRecord] = {}
        self.step_versions: dict[tuple[str, int], int] = {}
        self.hooks: dict[str, HookRecord] = {}
        #: Read only by commits that change lock state (see :mod:`.locks`).
        self.locks: LockRows | None = None
        self._runs_asked = set(reads.run_ids)
        self._idem_asked = set(reads.idem_keys)
        self._steps_asked = set(reads.step_keys)
        self._hooks_asked = set(reads.tokens)

    @classmethod
    def read(cls, reads: CommitReads, rows: Sequence[Sequence[Any]]) -> Preloaded:
        """The rows ``queries.PRELOAD`` returned."""
        out = cls(reads)
        for r in rows:
            if r[0] == "r":
                row = run_row_from_row(r, 2)
                rec = row.record
                out.runs[rec.run_id] = row
                out.versions[rec.run_id] = r[1]
                if rec.idempotency_key is not None:
                    out.idem[(rec.namespace, rec.workflow_name, rec.idempotency_key)] = rec.run_id
            elif r[0] == "s":
                step = step_from_row(r, 22)
                out.steps[(step.run_id, step.call)] = step
                out.step_versions[(step.run_id, step.call)] = r[1]
            else:
                hook = hook_from_row(r, 34)
                out.hooks[hook.token] = hook
        out._runs_asked |= set(out.runs)
        return out

    def get_run_row(self, run_id: str) -> RunRow | None:
        if run_id not in self._runs_asked:
            raise RuntimeError(f"durably bug: the commit did not preload run {run_id!r}")
        return self.runs.get(run_id)

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        k = (namespace, workflow_name, key)
        if k not in self._idem_asked:
            raise RuntimeError(f"durably bug: the commit did not preload idempotency key {k!r}")
        return self.idem.get(k)

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        if (run_id, call) not in self._steps_asked:
            raise RuntimeError(
                f"durably bug: the commit did not preload call {call} of run {run_id!r}"
            )
        return self.steps.get((run_id, call))

    def get_hook(self, token: str) -> HookRecord | None:
        if token not in self._hooks_asked:
            raise RuntimeError(f"durably bug: the commit did not preload hook token {token!r}")
        return self.hooks.get(token)

    # -- locks: read by the lock path only; a commit off it ends no run holding one --

    def _lock_rows(self, what: str) -> LockRows:
        if self.locks is None:
            raise RuntimeError(f"durably bug: the commit did not read the lock rows ({what})")
        return self.locks

    def lock_holders(self, key: str) -> list[LockEntry]:
        rows = self._lock_rows(key).holders
        if key not in rows:
            raise RuntimeError(f"durably bug: the commit did not read lock {key!r}")
        return list(rows[key])

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        rows = self._lock_rows(key).waiters
        if key not in rows:
            raise RuntimeError(f"durably bug: the commit did not read lock {key!r}")
        return rows[key][:n]

    def run_locks(self, run_id: str) -> list[LockEntry]:
        # Read for the writes that set RunWrite.locks; any other run never asked for a
        # lock nor was created under a concurrency limit (its worker says so).
        found = self.locks.by_run.get(run_id) if self.locks is not None else None
        return list(found) if found is not None else []

    def add_runs(self, other: Preloaded, run_ids: Iterable[str]) -> None:
        """Serve the runs rows ``other`` read (waiters a lock commit may grant) too."""
        self.runs.update(other.runs)
        self.versions.update(other.versions)
        self._runs_asked.update(run_ids)


class RecentRows:
    """The rows this process last wrote, so that its next commit to the same runs (the
    next step of a run it advances) need not read them back: one round trip, not two.

    Rows are kept with their version (``xmin``) as written; a commit's write applies only
    where that is still the current version, so a row someone else changed since (a
    claim, another worker's commit) costs a retry, never a wrong decision. A run's steps
    rows are kept while not done; a run that ended is dropped.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._runs: OrderedDict[str, tuple[RunRow, int, dict[int, tuple[StepRecord, int]]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def source(self, reads: CommitReads) -> Preloaded | None:
        """The commit's rows, if every one it may ask for is here.

        A run the commit creates under a fresh id (``reads.fresh``) and not kept here is
        taken as absent, with no steps: a start() commits in one round trip. Were its
        row there after all, the write's ``INSERT`` would meet it (a unique violation:
        a lost race), and the commit is tried again reading the rows.
        """
        if reads.idem_keys or reads.tokens:
            return None
        out = Preloaded(reads)
        fresh = reads.fresh
        with self._lock:
            for run_id in reads.run_ids:
                kept = self._runs.get(run_id)
                if kept is None:
                    if run_id in fresh:
                        continue
                    return None
                out.runs[run_id], out.versions[run_id] = kept[0], kept[1]
            for run_id, call in reads.step_keys:
                if run_id not in out.runs:
                    continue  # a fresh run: no steps yet
                step = self._runs[run_id][2].get(call)
                if step is None:
                    return None
                out.steps[(run_id, call)], out.step_versions[(run_id, call)] = step
            for run_id in out.runs:
                self._runs.move_to_end(run_id)
        return out

    def remember(
        self,
        txn: OverlayStore,
        base: Preloaded,
        versions: Mapping[str, int],
        step_versions: Mapping[tuple[str, int], int],
    ) -> None:
        """Keep the rows a successful commit read or wrote (``versions``,
        ``step_versions``: those it wrote, as the write returned them)."""
        with self._lock:
            for run_id, row in txn.runs.items():
                version = versions.get(run_id, base.versions.get(run_id))
                if version is None or row.record.status in TERMINAL_STATUSES:
                    self._runs.pop(run_id, None)
                    continue
                kept = self._runs.get(run_id)
                steps = kept[2] if kept is not None else {}
                for key, step in base.steps.items():
                    if key[0] == run_id and key in base.step_versions:
                        steps.setdefault(key[1], (step, base.step_versions[key]))
                self._runs[run_id] = (row, version, steps)
                self._runs.move_to_end(run_id)
            for key, (step, _new) in txn.steps.items():
                kept = self._runs.get(key[0])
                if kept is None:
                    continue
                written = step_versions.get(key)
                if step.status in _STEP_DONE or written is None:
                    kept[2].pop(key[1], None)
                else:
                    kept[2][key[1]] = (step, written)
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)

    def forget(self, run_ids: Iterable[str]) -> None:
        """Drop what is kept of these runs (a commit to them lost a race)."""
        with self._lock:
            for run_id in run_ids:
                self._runs.pop(run_id, None)


def woken_namespaces(txn: OverlayStore, base: Preloaded, new_work: bool) -> set[str]:
    """The namespaces whose workers a commit must wake: every namespace written when the
    ledger says the commit made work, and that of a run whose turn became claimable
    without it (a turn left due when its lease is handed back: the ledger does not count
    that as new work, but an idle worker must still hear of it)."""
    out: set[str] = set()
    for run_id, row in txn.runs.items():
        rec = row.record
        if new_work:
            out.add(rec.namespace)
            continue
        if row.turn_due_at is None or row.lease_owner is not None:
            continue
        before = base.runs.get(run_id)
        if before is None or before.lease_owner is not None or before.turn_due_at is None:
            out.add(rec.namespace)
    return out


#: Changes only ``queries.WRITE`` makes; a commit without them can use ``WRITE_STEPS``.
_FULL_ONLY = frozenset({"i", "tr", "hd", "hr", "hp", "sc", "sr"})


def write_params(
    txn: OverlayStore, base: Preloaded, now: float, notes: list[list[str]]
) -> tuple[list[Any], bool]:
    """The parameters of ``queries.WRITE`` for the overlay's changes, committed at
    ``now``, with the ``[channel, payload]`` notifications to send; and whether
    ``queries.WRITE_STEPS`` (which takes the same) is enough for them.

    Runs the ledger read but left as they were are neither written nor checked: from
    such a row the ledger can only have refused something (a duplicate fact, a log that
    moved, a lease held by another), and a fresher row would have given the same answer
    or one the caller handles the same way, as a race lost by a hair.
    """
    doc: dict[str, Any] = {"now": now}
    updated: list[list[Any]] = []
    inserted: list[dict[str, Any]] = []
    for run_id, row in txn.runs.items():
        rec = row.record
        if run_id in txn.new_runs:
            fields = {
                "run_id": rec.run_id,
                "status": rec.status,
                "started_at": rec.started_at,
                "completed_at": rec.completed_at,
                "last_seq": rec.last_seq,
                "error_type": rec.error_type,
                "cancel_requested": rec.cancel_requested,
                "attributes": rec.attributes,
                "decided_seq": row.decided_seq,
                "turn_seq": row.turn_seq,
                "turn_due_at": row.turn_due_at,
                "lease_owner": row.lease_owner,
                "lease_until": row.lease_until,
            }
            fields.update(
                workflow_name=rec.workflow_name,
                namespace=rec.namespace,
                deployment=rec.deployment,
                created_at=rec.created_at,
                idempotency_key=rec.idempotency_key,
                parent_run_id=rec.parent_run_id,
                parent_call=rec.parent_call,
            )
            inserted.append(fields)
        elif row != base.runs.get(run_id):
            # queries.RUN_UPDATE_COLUMNS, in order
            updated.append(
                [
                    rec.run_id,
                    base.versions[run_id],
                    rec.status,
                    rec.started_at,
                    rec.completed_at,
                    rec.last_seq,
                    rec.error_type,
                    rec.cancel_requested,
                    rec.attributes,
                    row.decided_seq,
                    row.turn_seq,
                    row.turn_due_at,
                    row.lease_owner,
                    row.lease_until,
                ]
            )
    if updated:
        doc["u"] = updated
    if inserted:
        doc["i"] = inserted
    dropped = txn.dropped_task_runs
    # A task deleted on its own whose run drops all its tasks goes with the rest.
    deleted = [[k[0], k[1]] for k, t in txn.tasks.items() if t is None and k[0] not in dropped]
    if deleted:
        doc["td"] = deleted
    if dropped:
        doc["tr"] = sorted(dropped)
    tasks = [  # queries.TASK_COLUMNS_W, in order
        [
            t.run_id,
            t.call,
            t.kind,
            t.namespace,
            t.deployment,
            t.visible_at,
            t.attempt,
            t.lease_owner,
            t.lease_until,
        ]
        for t in txn.tasks.values()
        if t is not None
    ]
    if tasks:
        doc["tp"] = tasks
    new_steps: list[list[Any]] = []
    old_steps: list[list[Any]] = []
    for key, (st, new) in txn.steps.items():
        version = base.step_versions.get(key)
        made = new or version is None  # made by this commit (or by none: made now)
        # queries.STEP_COLUMNS_W, in order
        (new_steps if made else old_steps).append(
            [
                st.run_id,
                st.call,
                st.kind,
                st.name,
                st.status,
                st.attempts,
                st.created_at,
                st.started_at,
                st.completed_at,
                st.due_at,
                st.error_type,
                st.child_run_id,
                None if made else version,
            ]
        )
    if new_steps:
        doc["sn"] = new_steps
    if old_steps:
        doc["su"] = old_steps
    gone = [token for token, h in txn.hooks.items() if h is None]
    if gone:
        doc["hd"] = gone
    if txn.dropped_hook_runs:
        doc["hr"] = sorted(txn.dropped_hook_runs)
    hooks = [
        {
            "token": h.token,
            "run_id": h.run_id,
            "call": h.call,
            "hook_type": h.hook_type,
            "namespace": h.namespace,
            "created_at": h.created_at,
            "metadata": _dumps(h.metadata),
        }
        for h in txn.hooks.values()
        if h is not None
    ]
    if hooks:
        doc["hp"] = hooks
    if txn.closed_streams:
        doc["sc"] = [{"run_id": r, "namespace": n} for r, n in sorted(txn.closed_streams)]
    if txn.closed_stream_runs:
        doc["sr"] = sorted(txn.closed_stream_runs)
    if notes:
        doc["n"] = notes
    evs = txn.events
    if evs:
        doc["e"] = [  # queries.EVENT_COLUMNS_W, in order
            [
                e.run_id,
                e.seq,
                e.type.value,
                e.call,
                _dumps(e.data) if e.data else None,
                e.created_at,
            ]
            for e in evs
        ]
    slim = not _FULL_ONLY.intersection(doc)
    return [_dumps(doc), [e.payload for e in evs]], slim
