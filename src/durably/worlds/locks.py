"""Locks and concurrency limits in the ledger: who holds a permit, who waits, who is next.

A lock is a semaphore shared by every run of a world, named by a string key. Its state
is a set of :class:`LockEntry` rows, one per (key, run, call): *holding* (the run has a
permit) or *waiting* (queued, in priority then arrival order). Every change happens in
the commit of the event that causes it, through the :class:`~durably.worlds.store.Store`
primitives below, so no wake-up can be lost and no crash can leak a permit:

* ``lock_requested`` (a command of the body) queues the run, then :func:`grant` hands out
  the permits that are free; a run granted in the same commit gets its ``lock_acquired``
  fact at once (the world appends it, as it appends ``hook_registered``).
* ``lock_released`` (the body leaves the block, or stops waiting: a timed-out acquire)
  drops the entry and grants the next waiters.
* a run's end (completed, failed, cancelled) drops every entry of the run, in the commit
  that ends it, and grants the next waiters.
* a waiter of another run that is granted gets its ``lock_acquired`` fact appended to its
  own log in the same commit (see :func:`durably.worlds.ledger.apply_commit`), which makes
  its turn due: it is woken FIFO, holding no worker and no compute meanwhile.

A **concurrency limit** (``@wf.workflow(concurrency=N, concurrency_key=fn)``) is the same
machinery: a run created under a limit asks for a permit of the key
``concurrency:<namespace>:<workflow>[:<key>]`` with the call :data:`ADMISSION`; until it
is granted the run stays ``pending`` with no turn due, so no worker can claim it.
Granting its admission makes its first turn due. Its permit is released when it ends.

A worker that dies while its run holds a permit changes nothing here: the permit belongs
to the run, not to the worker, and the run resumes on another worker still holding it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..events import EventType, NewEvent

if TYPE_CHECKING:
    from .projections import WriteState

__all__ = [
    "ADMISSION",
    "LockEntry",
    "LockReads",
    "admission_key",
    "grant",
    "release",
    "release_run",
    "request",
    "waiter_order",
]

#: The ``call`` of a run's admission entry (its permit under a concurrency limit).
ADMISSION = -1


@dataclass(slots=True)
class LockEntry:
    """One run's place at one lock: holding a permit, or waiting for one.

    Attributes:
        key: the lock's name (world-wide).
        run_id: the run.
        call: the durable call of the ``lock_requested`` command, or :data:`ADMISSION`
            for a run's admission under a concurrency limit.
        limit: how many permits the lock has, as this request asked.
        holding: the run holds a permit (else it waits).
        priority: higher is granted first among waiters (then arrival order).
        queued_at: when the run asked (seconds since the epoch).
        namespace: the run's registry namespace (for readers).
        workflow_name: the run's workflow (for readers).
    """

    key: str
    run_id: str
    call: int
    limit: int
    holding: bool
    priority: int
    queued_at: float
    namespace: str = ""
    workflow_name: str = ""

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        return {
            "key": self.key,
            "run_id": self.run_id,
            "call": None if self.call == ADMISSION else self.call,
            "admission": self.call == ADMISSION,
            "limit": self.limit,
            "state": "holding" if self.holding else "waiting",
            "priority": self.priority,
            "queued_at": self.queued_at,
            "namespace": self.namespace,
            "workflow": self.workflow_name,
        }


def waiter_order(e: LockEntry) -> tuple[int, float, str, int]:
    """The order in which waiters are granted: priority (higher first), then arrival."""
    return (-e.priority, e.queued_at, e.run_id, e.call)


def admission_key(namespace: str, workflow_name: str, key: str | None) -> str:
    """The lock key that carries a workflow's concurrency limit (per ``key`` if given)."""
    base = f"concurrency:{namespace}:{workflow_name}"
    return base if key is None else f"{base}:{key}"


class LockReads(Protocol):
    """The lock rows a commit reads (part of :class:`~durably.worlds.store.Store` and of
    :class:`~durably.worlds.store.Source`)."""

    def lock_holders(self, key: str) -> list[LockEntry]:
        """Every entry holding a permit of ``key``."""

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        """The first ``n`` waiters of ``key``, in :func:`waiter_order`."""

    def run_locks(self, run_id: str) -> list[LockEntry]:
        """Every entry of a run (held or waiting), at any key."""


# -- the rules (called from durably.worlds.projections and ledger) -----------------------


def request(x: WriteState, key: str, call: int, limit: int, priority: int = 0) -> None:
    """Queue the run of ``x`` at ``key`` (call ``call``) and grant what is free."""
    rec = x.row.record
    x.store.put_lock(
        LockEntry(
            key,
            rec.run_id,
            call,
            max(int(limit), 1),
            False,
            priority,
            x.now,
            rec.namespace,
            rec.workflow_name,
        )
    )
    grant(x, key)


def release(x: WriteState, key: str, run_id: str, call: int) -> None:
    """Drop the entry of ``run_id`` (held or waiting) and grant the next waiters."""
    x.store.delete_lock(key, run_id, call)
    grant(x, key)


def release_run(x: WriteState) -> None:
    """The run of ``x`` ended: drop all its entries, granting the next waiters of each."""
    run_id = x.row.record.run_id
    for e in x.store.run_locks(run_id):
        release(x, e.key, run_id, e.call)


def grant(x: WriteState, key: str) -> None:
    """Hand the free permits of ``key`` to its first waiters, in order (the first waiter
    blocks those behind it: FIFO, no overtaking by a smaller request)."""
    holders = len(x.store.lock_holders(key))
    while True:
        first = x.store.lock_waiters(key, 1)
        if not first or holders >= first[0].limit:
            return
        w = replace(first[0], holding=True)  # never change a row the store handed out
        x.store.put_lock(w)
        holders += 1
        _deliver(x, w)


def _deliver(x: WriteState, w: LockEntry) -> None:
    """Tell the granted run: its own write gets the fact now; another run's log gets it
    in this same commit, after this write (:attr:`WriteState.grants`)."""
    row = x.row
    if w.run_id != row.record.run_id:
        x.grants.append(w)
    elif w.call == ADMISSION:
        row.turn_due_at = x.now
        x.work[0] = True
    else:
        x.extra.append(NewEvent(EventType.LOCK_ACQUIRED, w.call, {"key": w.key}))
