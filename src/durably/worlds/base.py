"""The ``World`` protocol: the one seam between the runtime and a storage backend.

A world stores three things for every run, in one transaction per :class:`Commit`:

1. the **event log** (append-only, numbered per run),
2. the **projections** of that log (the ``runs`` and ``steps`` status tables), and
3. the **queue**: runs that need a turn, step tasks to execute and timers to fire,
   each claimed under a lease that expires so a dead worker's work is taken over.

A world knows nothing about user functions and the runtime knows nothing about SQL;
the vocabulary between them is :mod:`durably.events` and the records below. The
conformance suite in ``tests/worlds`` is the definition of a correct world.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..events import Event, EventType, NewEvent
from .locks import LockEntry
from .rates import RateDecision, RateState
from .rates_schedules import RatesAndSchedules
from .schedules import ScheduleRecord, TickDecision

__all__ = [
    "ChunkBatch",
    "Claim",
    "Commit",
    "CommitResult",
    "DeploymentRecord",
    "HookRecord",
    "LeaseRecord",
    "PayloadSealer",
    "QueuedTask",
    "RateDecision",
    "RateState",
    "RunFilter",
    "RunMeta",
    "RunQueue",
    "RunRecord",
    "RunStatus",
    "RunWrite",
    "ScheduleRecord",
    "StepRecord",
    "StreamChunk",
    "StreamInfo",
    "Task",
    "TickDecision",
    "World",
    "WriteResult",
]

RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


@dataclass(slots=True)
class RunMeta:
    """What a new run is: written once, with its ``run_created`` event."""

    workflow_name: str
    namespace: str
    deployment: str
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_call: int | None = None
    # -- flow control (durably.worlds.locks) --
    #: Higher starts first among pending runs (and among waiters for admission).
    priority: int = 0
    #: With ``concurrency_limit``: the lock key that admits the run (its first turn is
    #: due only once it holds a permit); see :func:`durably.worlds.locks.admission_key`.
    concurrency_key: str | None = None
    concurrency_limit: int | None = None


@dataclass(slots=True)
class RunRecord:
    """The ``runs`` projection of one run."""

    run_id: str
    workflow_name: str
    namespace: str
    deployment: str
    status: RunStatus
    created_at: float
    started_at: float | None
    completed_at: float | None
    last_seq: int
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_call: int | None = None
    error_type: str | None = None
    cancel_requested: bool = False
    attributes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow_name,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "last_seq": self.last_seq,
            "idempotency_key": self.idempotency_key,
            "parent_run_id": self.parent_run_id,
            "error_type": self.error_type,
            "attributes": self.attributes,
        }


@dataclass(slots=True)
class StepRecord:
    """The ``steps`` projection: one row per durable call (step, wait or child run)."""

    run_id: str
    call: int
    kind: Literal["step", "wait", "child", "hook"]
    name: str
    status: str
    attempts: int
    created_at: float
    started_at: float | None
    completed_at: float | None
    due_at: float | None = None
    error_type: str | None = None
    child_run_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "call": self.call,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "due_at": self.due_at,
            "error_type": self.error_type,
            "child_run_id": self.child_run_id,
        }


@dataclass(slots=True)
class HookRecord:
    """A live hook in the token index: what a resume needs to find its run."""

    token: str
    run_id: str
    call: int
    hook_type: str
    namespace: str
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "token": self.token,
            "run_id": self.run_id,
            "call": self.call,
            "type": self.hook_type,
            "namespace": self.namespace,
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class StreamChunk:
    """One chunk of a run's stream.

    ``call`` and ``attempt`` say which step attempt of the run wrote it (``call`` is the
    step's durable call, ``attempt`` 1 for its first attempt, 2 for the first retry, ...).
    ``call`` ``None`` and ``attempt`` 0: not written by a step attempt of this run (a
    chunk stored before attempts were recorded, or written for another run): such a
    chunk counts as committed. ``committed`` is filled by readers
    (:meth:`durably.Run.chunks`): ``True`` when the attempt's completion is recorded,
    ``False`` when it failed or was superseded, ``None`` when not known (a live reader
    does not wait to find out); worlds return ``None``.
    """

    index: int
    payload: bytes
    created_at: float
    call: int | None = None
    attempt: int = 0
    committed: bool | None = None


@dataclass(slots=True)
class StreamInfo:
    """A stream of a run: how many chunks it has and whether it is closed.

    ``closer_call`` and ``closer_attempt`` say which step attempt closed it (as on
    :class:`StreamChunk`); ``None`` and 0 when it is open, or was closed otherwise (by
    the run's end, or through a writable of another run). A stream closed by an attempt
    that does not complete may be reopened by a later attempt of the same step.
    """

    namespace: str
    count: int
    closed: bool
    updated_at: float
    closer_call: int | None = None
    closer_attempt: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "namespace": self.namespace,
            "count": self.count,
            "closed": self.closed,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class DeploymentRecord:
    """A deployment (code version) a worker of a namespace has run.

    ``in_flight`` counts runs pinned to it that have not ended; ``last_seen`` is when a
    worker of it was last alive.
    """

    namespace: str
    name: str
    first_seen: float
    last_seen: float
    in_flight: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "namespace": self.namespace,
            "deployment": self.name,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "in_flight": self.in_flight,
        }


@dataclass(slots=True)
class ChunkBatch:
    """Chunks to append to one stream (``namespace`` ``""`` is the default stream);
    ``close`` closes it after them. Indexes are given by the world, from 0, in order.

    ``writers`` holds, per chunk, the step attempt that wrote it as ``(call, attempt)``
    (``(None, 0)``: not a step attempt of this run); a chunk past its end has none.
    ``closer`` is the attempt that closes the stream, stored with the close.

    A stream closed by step attempt ``(call, n)`` takes no more chunks, except from a
    later attempt of that same step (a retry after attempt ``n`` failed or was killed
    between its ``close()`` and its completion): such a batch reopens it
    (:meth:`reopens`), and its own close closes it again.
    """

    run_id: str
    namespace: str
    chunks: list[bytes]
    close: bool = False
    writers: list[tuple[int | None, int]] = field(default_factory=list)
    closer: tuple[int | None, int] = (None, 0)

    def writer(self, i: int) -> tuple[int | None, int]:
        """The ``(call, attempt)`` that wrote chunk ``i`` of the batch."""
        return self.writers[i] if i < len(self.writers) else (None, 0)

    def reopens(self, closer_call: int | None, closer_attempt: int) -> bool:
        """Whether this batch may reopen its stream, closed by ``(closer_call,
        closer_attempt)``: it writes or closes, and every chunk and its close come from
        a later attempt of the step that closed it."""
        if closer_call is None:
            return False
        mine = [self.writer(i) for i in range(len(self.chunks))]
        if self.close:
            mine.append(self.closer)
        return bool(mine) and all(c == closer_call and a > closer_attempt for c, a in mine)

    def closing_fact(self, count: int) -> NewEvent:
        """The ``stream_closed`` fact of this batch's close at ``count`` chunks (naming
        the step attempt that closes it, if one does)."""
        data: dict[str, Any] = {"namespace": self.namespace, "count": count}
        call, attempt = self.closer
        if call is not None:
            data.update(step_call=call, attempt=attempt)
        return NewEvent(EventType.STREAM_CLOSED, None, data)


@dataclass(slots=True)
class Task:
    """A claimed queue entry: a step to execute or a timer that is due."""

    run_id: str
    call: int
    kind: Literal["step", "timer"]
    attempt: int
    visible_at: float


@dataclass(slots=True)
class QueuedTask:
    """A run's queue entry as a reader sees it (see :meth:`World.run_queue`).

    ``visible_at`` is when it becomes claimable (a retry's time, a timer's due time);
    ``lease_owner`` and ``lease_until`` say which worker holds it and until when (an
    expired lease is held by nobody). ``attempt`` counts the claims of a step task.
    """

    call: int
    kind: Literal["step", "timer"]
    visible_at: float
    attempt: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(slots=True)
class LeaseRecord:
    """A lease a worker holds on a run's turn or on one of its tasks (see
    :meth:`World.list_leases`); ``owner`` is the worker's id (``host:pid:suffix``).

    A lease that expired stays recorded until the work is claimed again or ends, so
    ``lease_until`` in the past says its worker stopped beating (or is stuck).
    """

    owner: str
    run_id: str
    kind: Literal["turn", "step", "timer"]
    lease_until: float
    call: int | None = None
    name: str | None = None
    workflow_name: str = ""
    namespace: str = ""
    deployment: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "owner": self.owner,
            "run_id": self.run_id,
            "kind": self.kind,
            "lease_until": self.lease_until,
            "call": self.call,
            "name": self.name,
            "workflow": self.workflow_name,
            "namespace": self.namespace,
            "deployment": self.deployment,
        }


@dataclass(slots=True)
class RunQueue:
    """What a run has in the queue: whether it needs a turn (``turn_due_at``, when it
    became due), the lease on its turn, and its tasks by call."""

    turn_due_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    tasks: list[QueuedTask] = field(default_factory=list)


@dataclass(slots=True)
class RunWrite:
    """Everything one run contributes to a commit.

    Attributes:
        run_id: the run.
        create: set to create the run (its first fact must be ``run_created``).
        facts: appended in order; a fact that repeats a recorded one (the same step
            completed twice, a timer fired twice, a run started twice) is dropped, and
            then the commands are not applied either.
        expected_seq: when set, ``commands`` are appended only if no fact the body
            consumes (see ``DELIVERABLE_TYPES``) and no command was appended after this seq
            (informational facts such as ``step_retrying`` do not count), and no other
            worker holds the run's lease.
        commands: what the workflow body decided in this turn.
        claim_calls: step calls among ``commands`` that the committing worker will
            execute itself at once (their tasks are created already leased to it).
        release: drop the run's lease held by the committing worker.
        requires: apply this write only if the write to that run, earlier in the same
            commit, was ok (a child run is created only if its parent's command is).
        lease: with ``create``, the new run is created already leased to the committing
            worker, which advances it at once (no claim); if that worker dies, the lease
            expires and any worker claims the run.
        turn: after this write, the run needs a turn (unless it ended): its body must
            replay what was just written and decide (a forked run, whose copied history
            ends with commands, gets its first turn this way).
        locks: the run may have lock entries (it asked for a lock, or was created under
            a concurrency limit) and this write may end it: a world that reads rows
            before it commits (Postgres) reads the run's lock entries too. Every world
            releases a run's entries when it ends, whatever this says.
    """

    run_id: str
    create: RunMeta | None = None
    facts: list[NewEvent] = field(default_factory=list)
    expected_seq: int | None = None
    commands: list[NewEvent] = field(default_factory=list)
    claim_calls: Sequence[int] = ()
    release: bool = False
    requires: str | None = None
    lease: bool = False
    turn: bool = False
    locks: bool = False


class PayloadSealer(Protocol):
    """Encrypts payloads once their place is known (see :mod:`durably.crypto`)."""

    def seal_event(
        self, run_id: str, seq: int, type_: str, call: int | None, payload: bytes
    ) -> bytes:
        """Encrypt an event's payload, bound to its run, sequence, type and call."""

    def seal_chunk(self, run_id: str, namespace: str, index: int, payload: bytes) -> bytes:
        """Encrypt a stream chunk, bound to its run, namespace and index."""


@dataclass(slots=True)
class Commit:
    """Writes to one or more runs, committed atomically (one transaction).

    ``sealer``, when set, encrypts every event payload as the world appends it (when its
    sequence number, which the ciphertext is bound to, is known).
    """

    writes: list[RunWrite]
    owner: str = ""
    lease_seconds: float = 30.0
    sealer: PayloadSealer | None = None


@dataclass(slots=True)
class WriteResult:
    """What happened to one :class:`RunWrite`.

    ``ok`` is true when every fact was appended and the commands too (or when there were
    no commands to append). ``run_id`` differs from the write's when an idempotency key
    matched an existing run (then ``created`` is false). ``own_seq`` is the seq of the last
    event the write itself appended; the world may append facts of its own after it (a
    ``hook_conflict``), which the run's next turn reads.
    """

    run_id: str
    ok: bool
    last_seq: int
    created: bool = False
    own_seq: int = 0


@dataclass(slots=True)
class CommitResult:
    """One :class:`WriteResult` per write, in order.

    ``new_work`` is true when the commit made something claimable (a task nobody holds,
    a run that needs a turn): worlds wake idle workers only then.
    """

    results: list[WriteResult]
    new_work: bool = False


@dataclass(slots=True)
class Claim:
    """Work handed to one worker under a lease."""

    runs: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)


@dataclass(slots=True)
class RunFilter:
    """Which runs :meth:`World.list_runs` returns (newest first)."""

    status: str | None = None
    workflow_name: str | None = None
    namespace: str | None = None
    deployment: str | None = None
    run_id_prefix: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    limit: int = 50
    offset: int = 0


@runtime_checkable
class World(RatesAndSchedules, Protocol):
    """A storage backend. Every method is safe to call from any task of any event loop."""

    url: str

    async def open(self) -> None:
        """Connect and create or upgrade the schema; idempotent."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def commit(self, commit: Commit) -> CommitResult:
        """Apply the writes atomically and return one result per write."""

    async def claim(
        self,
        *,
        owner: str,
        namespace: str,
        deployment: str,
        max_runs: int,
        max_tasks: int,
        lease_seconds: float,
        workflows: Collection[str] | None = None,
        steps: Collection[str] | None = None,
        due_by: float | None = None,
    ) -> Claim:
        """Lease runs that need a turn and tasks that are due, oldest first.

        Only work the claiming worker can do is handed out: runs and timer tasks of
        runs whose workflow is in ``workflows``, and step tasks whose step name is in
        ``steps`` or whose run's workflow is in ``workflows`` (an ad-hoc step,
        ``durably.run_step``, is executed by replaying its run's body). A lease that
        expired is taken over on the same terms. ``None`` means any (tools and tests);
        a worker always passes its registry's names, so work no live worker has waits
        in the queue (``durably inspect run`` shows it) instead of failing elsewhere.

        ``due_by``: hand out what is due at or before this time instead of now (a worker
        on a virtual clock, ``durably.testing.time_skipping``, claims timers and retries
        ahead of the real time); leases still expire on the world's real time.
        """

    async def extend_leases(
        self,
        *,
        owner: str,
        run_ids: Sequence[str],
        tasks: Sequence[tuple[str, int]],
        lease_seconds: float,
    ) -> None:
        """Push back the expiry of leases ``owner`` still holds."""

    async def release(
        self, *, owner: str, run_ids: Sequence[str], tasks: Sequence[tuple[str, int]]
    ) -> None:
        """Hand back leases early: they become claimable again at once, and a step task
        handed back does not count as an attempt (its ``attempt`` goes back down)."""

    async def next_due(
        self,
        *,
        namespace: str,
        deployment: str,
        workflows: Collection[str] | None = None,
        steps: Collection[str] | None = None,
    ) -> float | None:
        """When the earliest queued run turn or task that :meth:`claim` with the same
        arguments would hand out becomes claimable, if any."""

    async def wait_for_work(self, *, namespace: str, timeout: float) -> None:
        """Return when new work may be claimable, or after ``timeout`` seconds."""

    async def wait_for_run(self, run_id: str, *, after_seq: int, timeout: float) -> None:
        """Return when the run's log grows past ``after_seq``, or after ``timeout``."""

    async def wait_for_run_end(self, run_id: str, *, timeout: float) -> RunRecord | None:
        """The run's record once it has ended, or as it is after ``timeout``; ``None``
        if there is no such run. Unlike :meth:`wait_for_run`, not woken (nor read
        again) at every step: ``Run.wait()`` costs nothing per step of the run."""

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's projection, or ``None``."""

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        """Runs matching the filter, newest first."""

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""

    async def read_command(self, run_id: str, call: int) -> Event | None:
        """The command event that created durable call ``call`` of the run."""

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        """The run's ``steps`` projection, by call."""

    async def run_queue(self, run_id: str) -> RunQueue | None:
        """What the run has in the queue (its turn, its tasks, who holds their leases),
        for readers that show what a run waits for; ``None`` when there is no such run.
        Not a claim: it changes nothing."""

    async def count_runs(self, flt: RunFilter) -> dict[str, int]:
        """How many runs match ``flt``, by status (statuses with none are left out).
        ``flt.status``, ``limit`` and ``offset`` are ignored: the counts are what a
        status filter would choose among."""

    async def list_leases(self, namespace: str | None = None) -> list[LeaseRecord]:
        """Every lease on a run's turn or a task, by owner, run and call: who holds
        what, and until when (expired leases included, until their work is claimed
        again). For readers (the dashboard's workers page); changes nothing."""

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, if any."""

    async def list_locks(
        self, *, key: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[LockEntry]:
        """Lock entries (:mod:`durably.worlds.locks`): by key, holders first, then
        waiters in the order they will be granted; only ``key``'s or ``run_id``'s."""

    async def list_hooks(
        self, *, namespace: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[HookRecord]:
        """Live hooks, newest first."""

    async def append_chunks(
        self, batches: Sequence[ChunkBatch], sealer: PayloadSealer | None = None
    ) -> list[int]:
        """Append chunks to streams in one transaction; per batch, the stream's chunk
        count after it. ``sealer`` encrypts each chunk once its index is known. Raises
        ``ValueError`` for a stream that is already closed."""

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        """Chunks from ``start_index`` on, in order, and whether the stream is closed
        (closed and no chunk after these: the reader is done)."""

    async def wait_for_chunks(
        self, run_id: str, namespace: str, *, after_count: int, timeout: float
    ) -> None:
        """Return when the stream has more than ``after_count`` chunks or is closed, or
        after ``timeout``."""

    async def stream_info(self, run_id: str) -> list[StreamInfo]:
        """The run's streams."""

    async def touch_deployment(self, namespace: str, deployment: str) -> None:
        """Record that a worker of ``deployment`` is alive now (first seen, last seen)."""

    async def list_deployments(self, namespace: str | None = None) -> list[DeploymentRecord]:
        """Deployments seen, newest first, with their runs in flight. A deployment runs
        are pinned to that no worker ever announced is listed too (first/last seen 0)."""

    async def move_runs(self, namespace: str, from_deployment: str, to_deployment: str) -> int:
        """Re-pin runs of ``from_deployment`` that are waiting (not ended, no step in
        flight) to ``to_deployment``; returns how many moved."""

    async def prune_runs(
        self,
        *,
        ended_before: float,
        statuses: Collection[str] | None = None,
        namespace: str | None = None,
        limit: int = 500,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete up to ``limit`` runs that ended (completed, failed or cancelled)
        before ``ended_before``, oldest end first, with everything they own (events,
        steps, queue entries, hooks, streams and chunks, their idempotency key), in one
        transaction; return their ids. A run that has not ended is never deleted.

        Args:
            ended_before: seconds since the epoch; only runs whose ``completed_at`` is
                earlier.
            statuses: only runs with one of these (ended) statuses; ``None``: any ended.
            namespace: only runs of this namespace; ``None``: any.
            limit: at most this many (a bounded batch: call again for more).
            dry_run: delete nothing; return the ids that would be deleted.
        """

    async def scan_event_payloads(
        self, *, after: tuple[str, int] | None, limit: int
    ) -> list[Event]:
        """Events that carry a payload, in (run_id, seq) order after ``after``."""

    async def scan_chunk_payloads(
        self, *, after: tuple[str, str, int] | None, limit: int
    ) -> list[tuple[str, str, StreamChunk]]:
        """Stream chunks as (run_id, namespace, chunk), in that order after ``after``."""

    async def swap_payloads(
        self,
        events: Sequence[tuple[str, int, bytes, bytes]],
        chunks: Sequence[tuple[str, str, int, bytes, bytes]],
    ) -> int:
        """Replace stored payloads (run_id, seq, old, new) / (run_id, namespace, index,
        old, new) where they still equal ``old``; returns how many were replaced."""
