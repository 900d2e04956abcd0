"""One run, live in memory: its body, its loop, and where it stands in its log.

A :class:`RunInstance` is fed the run's events in log order (:meth:`feed`) and local facts
that are about to be recorded (:meth:`deliver`). Facts resolve the futures the body is
awaiting, each through its ``_apply_<type>`` method; commands recorded in the log are
checked against the calls the body makes again (that is replay); calls the log has not
seen yet are new commands, collected by :meth:`new_commands` (with the child runs to
create, :meth:`child_writes`) for the next commit. An instance that stays in memory
between events (the sticky cache) is simply an instance whose feeding continues where it
stopped, which is why a step costs the same at step 5,000 as at step 1.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import telemetry
from ..crypto import Sealer
from ..errors import HookConflictError, NonDeterminismError, PayloadTooLargeError, SandboxError
from ..events import (
    COMMAND_TYPES,
    DELIVERABLE_TYPES,
    EVENTS,
    TERMINAL_RUN_TYPES,
    Event,
    EventType,
    NewEvent,
    UnknownEventTypeError,
    handlers_by_name,
)
from ..retry import DEFAULT_RETRY
from ..worlds.base import RunRecord
from .calls import CallShape
from .context import WorkflowMetadata
from .divergence import divergence_message
from .failures import encode_error, error_type_name, rebuild_error
from .futures import StepFuture
from .loop import WorkflowLoop
from .recorded import LogCursor, PayloadOpener, SettledCalls
from .specs import ChildStart, HookSink, StepCall, StepSpec, WorkflowSpec

if TYPE_CHECKING:
    from .limits import Limits

__all__ = ["ChildStart", "HookSink", "RunInstance", "StepCall", "StepSpec", "WorkflowSpec"]


_Decoder = Callable[[bytes | None], Any]


#: The arguments of a step call settled in the log: never run again, never committed.
_SETTLED_ARGS = b""


def _key(t: EventType, call: int | None) -> tuple[str, int | None]:
    """Where a command is kept until the log records it: by its call, or as the run's
    one end (whichever way it ends)."""
    if t in TERMINAL_RUN_TYPES:
        return ("end", None)
    return (t.value, call)


class RunInstance:
    """The live, replayable execution of one run."""

    def __init__(
        self,
        record: RunRecord,
        workflow: WorkflowSpec,
        limits: Limits,
        *,
        hook_digest: Callable[[str], str] | None = None,
    ) -> None:
        self.run_id = record.run_id
        self.record = record
        self.workflow = workflow
        self.limits = limits
        self.loop = WorkflowLoop(self, record.created_at)  # type: ignore[abstract]
        self.rng = random.Random(record.run_id)
        self.task: asyncio.Task[Any] | None = None
        self.seen_seq = 0
        self.started_at: float | None = None
        self._metadata: tuple[float, WorkflowMetadata] | None = None
        self.input: bytes | None = None
        self.payload_bytes = 0
        self.done = False
        self.cancel_requested = False
        self.evicted = False
        self.cancel_reason: str | None = None
        #: The steps the body had called and not seen end when it was cancelled: the
        #: attempts a worker stops (steps its cleanup calls afterwards are not in it).
        self.steps_at_cancel: frozenset[int] = frozenset()
        self._next_call = 0
        self._settled = SettledCalls()
        self._cursor: LogCursor | None = None  # the log being fed, if one is (feed_log)
        self._issued: dict[tuple[str, int | None], NewEvent] = {}
        self._children: dict[int, ChildStart] = {}
        self._pending: dict[int, tuple[asyncio.Future[Any], _Decoder]] = {}
        self._hooks: dict[int, HookSink] = {}
        self._recorded_tokens: dict[int, str] = {}
        # A hook's key in the world's index: a digest of its token (see
        # Sealer.hook_digest), or the raw token in a log written before digests.
        self.hook_digest = hook_digest or Sealer(None).hook_digest
        self._hook_keys: dict[int, str] = {}
        self._child_ids: dict[int, str] = {}
        # Only what the body itself set: it must be the same on every replay, whatever
        # steps set meanwhile (those are facts, counted by the step that sets them).
        self.attributes: dict[str, str] = {}
        self.steps: dict[int, StepCall] = {}
        #: The first divergence from the log, once one was found: the recorded event,
        #: the command the body issued in its place (or ``None``) and what it issued.
        self.divergence: tuple[Event, NewEvent | None, list[NewEvent]] | None = None
        #: Lock requests waiting for their ``lock_acquired`` fact, by call.
        self._lock_waits: dict[int, asyncio.Future[None]] = {}
        #: The run asked for a lock or was created under a concurrency limit: its end
        #: releases permits (a world that preloads rows reads its lock entries then).
        self.uses_locks = False

    # -- feeding the log ---------------------------------------------------------------

    def feed(self, ev: Event, opener: PayloadOpener | None = None) -> None:
        """Advance over one recorded event (in log order); ``opener`` decrypts the
        payloads the body consumes, if the log's are sealed (the others stay sealed).

        Raises:
            NonDeterminismError: the body's calls differ from the recorded commands.
        """
        self.seen_seq = ev.seq
        t = ev.type
        if (
            opener is not None
            and ev.payload is not None
            and (t is EventType.RUN_CREATED or t in DELIVERABLE_TYPES)
        ):
            ev = Event(ev.run_id, ev.seq, t, ev.call, ev.data, opener(ev), ev.created_at)
        if t is EventType.RUN_CREATED:
            self.input = ev.payload
            self._count(ev.payload)
            if ev.data.get("concurrency_key"):
                self.uses_locks = True
        elif t in COMMAND_TYPES:
            if t is EventType.ATTRIBUTES_SET:
                if ev.call is None:
                    return  # set by a step: a fact, not a call of the body
                self._attributes(ev.data)
            self._match(ev)
        elif t in DELIVERABLE_TYPES:
            self._count(ev.payload)
            self._apply(t, ev.call, ev.payload, ev.created_at, ev.data)
        elif t not in EVENTS:
            raise _unknown(t)
        # Other facts (a retry scheduled, a stream closed, an audit record) are for the
        # status tables and the dashboard; the body never sees them.

    def feed_log(self, events: list[Event], opener: PayloadOpener | None = None) -> None:
        """Feed a run's events in log order, as :meth:`feed` does one by one; a step the
        body awaits whose creation and end come next in the log resolves at once (see
        :meth:`_settle_from_log`), without a pass of the body's loop per step.

        Raises:
            NonDeterminismError: the body's calls differ from the recorded commands.
        """
        cursor = self._cursor = LogCursor(events, opener)
        try:
            while cursor.next < len(events):
                ev = events[cursor.next]
                cursor.next += 1
                self.feed(ev, opener)
        finally:
            self._cursor = None

    def _settle_from_log(self, fut: StepFuture) -> None:
        """The body awaits step ``fut``, still pending: if feeding the log on would
        only match the step's creation and deliver its end, and nothing else in the
        body's loop could run before (so the body would be the first to go on), do now
        what that feeding would do, and the body goes on without suspending.

        Anything else (steps in parallel, a timer, a hook, a cancellation in between,
        another task ready to run) leaves the future pending: the log's events are
        then fed one by one, as always."""
        cursor = self._cursor
        call = fut.call
        if cursor is None or call is None or self.loop.has_ready() or fut._callbacks:
            return
        task = asyncio.current_task(self.loop)
        if task is None or task._must_cancel:  # type: ignore[attr-defined]
            return  # the awaiting task is to be cancelled at its next suspension
        key = ("step_created", call)
        issued = self._issued.get(key)
        if issued is None:
            return
        j = cursor.settled_end(call, issued.data.get("name"))
        if j is None:
            return
        end = cursor.events[j]
        payload = end.payload
        if cursor.opener is not None and payload is not None:
            try:
                payload = cursor.opener(end)
            except Exception:
                return  # feeding the log raises it, where it always did
        # What feed() does for the creation (a match) and for the end (an _apply).
        del self._issued[key]
        cursor.next = j + 1
        self.seen_seq = end.seq
        self._count(payload)
        self.loop.advance_to(end.created_at)
        self.loop.new_turn()
        _APPLY[end.type](self, call, payload, end.data, end.created_at)

    def deliver(self, fact: NewEvent, at: float) -> None:
        """Advance over a fact this worker is about to record."""
        self._count(fact.payload)
        if fact.type is EventType.RUN_CREATED:
            self.input = fact.payload
        elif fact.type in DELIVERABLE_TYPES:
            self._apply(fact.type, fact.call, fact.payload, at, fact.data)
        elif fact.type not in EVENTS:
            raise _unknown(fact.type)

    def index(self, events: list[Event], opener: PayloadOpener | None = None) -> None:
        """Note what a cold replay must know before the body asks for it: the steps
        already settled (see :class:`SettledCalls`), and the tokens the log's hooks
        were created with (generated ones are not reproducible), kept sealed in the
        payload (in the data, by a log written before token digests)."""
        self._settled.note(events)
        for ev in events:
            if ev.type is EventType.HOOK_CREATED and ev.call is not None:
                key = str(ev.data.get("token"))
                self._hook_keys[ev.call] = key
                payload = opener(ev) if opener is not None and ev.payload else ev.payload
                token = json.loads(payload)["token"] if payload else key
                self._recorded_tokens[ev.call] = str(token)

    def _attributes(self, data: dict[str, Any]) -> None:
        for k, v in (data.get("set") or {}).items():
            self.attributes[str(k)] = str(v)
        for k in data.get("remove") or ():
            self.attributes.pop(str(k), None)

    def _count(self, payload: bytes | None) -> None:
        if payload:
            self.payload_bytes += len(payload)

    def _match(self, ev: Event) -> None:
        key = _key(ev.type, ev.call)
        issued = self._issued.pop(key, None)
        if ev.type is EventType.CHILD_CREATED and ev.call is not None:
            self._children.pop(ev.call, None)
        if issued is None:
            raise NonDeterminismError(self._divergence(ev, None))
        if key[0] != "end" and issued.data.get("name") != ev.data.get("name"):
            raise NonDeterminismError(self._divergence(ev, issued))

    def _divergence(self, ev: Event, issued: NewEvent | None) -> str:
        others = list(self._issued.values())
        # Kept for replay checks (durably.testing.replay), which report it piece by piece.
        self.divergence = (ev, issued, others)
        return divergence_message(self.run_id, self.workflow.name, ev, issued, others)

    def _apply(
        self,
        t: EventType,
        call: int | None,
        payload: bytes | None,
        at: float,
        data: dict[str, Any],
    ) -> None:
        self.loop.advance_to(at)
        _APPLY[t](self, call, payload, data, at)
        try:
            self.loop.run_until_quiet()
        except SandboxError as e:  # the body spins: it fails, the worker goes on
            if not self.done:
                self._finish_failed(e)
            return
        self._check_done()

    # -- one handler per fact the body consumes (_APPLY, checked at import) ----------------

    def _apply_run_started(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        if self.task is None:
            self.started_at = at
            self._start_body()

    def _apply_run_cancel_requested(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        self.cancel_requested = True
        self.cancel_reason = data.get("reason")
        self.steps_at_cancel = frozenset(self.steps)
        if self.task is not None and not self.task.done():
            self.task.cancel("the run was cancelled")

    def _apply_step_completed(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        if call is not None:
            self.steps.pop(call, None)  # done: its arguments are no longer needed
        entry = self._pending.pop(call, None) if call is not None else None
        if entry is not None and not entry[0].done():
            fut, decode = entry
            try:
                fut.set_result(decode(payload))
            except Exception as e:  # a result that no longer fits its annotation
                fut.set_exception(e)

    _apply_child_completed = _apply_step_completed

    def _apply_step_failed(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        if call is not None:
            self.steps.pop(call, None)
        entry = self._pending.pop(call, None) if call is not None else None
        if entry is not None and not entry[0].done():
            entry[0].set_exception(rebuild_error(payload))

    _apply_child_failed = _apply_step_failed

    def _apply_wait_completed(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        if call is not None:
            self.loop.fire_timer(call)

    def _apply_hook_received(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        sink = self._hooks.get(call) if call is not None else None
        if sink is not None:
            sink.received(payload)

    def _apply_hook_registered(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        sink = self._hooks.get(call) if call is not None else None
        if sink is not None:
            sink.registered(None)

    def _apply_hook_conflict(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        sink = self._hooks.get(call) if call is not None else None
        if sink is not None:
            token = self._recorded_tokens.get(call, "") if call is not None else ""
            sink.registered(
                HookConflictError(
                    f"hook token {token!r} is already held by a live hook "
                    f"of run {data.get('held_by')}; pick another token (or let "
                    "durably generate one) or wait until that hook is disposed"
                )
            )

    def _apply_lock_acquired(
        self, call: int | None, payload: bytes | None, data: dict[str, Any], at: float
    ) -> None:
        fut = self._lock_waits.pop(call, None) if call is not None else None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _start_body(self) -> None:
        if self.cancel_requested:
            self._end(self._cancelled())
            return
        wf = self.workflow
        try:
            args, kwargs = wf.shape.decode_args(self.input)
            coro = wf.fn(*args, **kwargs)
        except BaseException as e:
            self._finish_failed(e)
            return
        self.task = self.loop.create_task(coro, name=f"durably:{self.run_id}")

    def _check_done(self) -> None:
        task = self.task
        if self.done or task is None or not task.done():
            return
        if task.cancelled() or self.cancel_requested:
            self._end(self._cancelled())
            return
        exc = task.exception()
        if exc is not None:
            self._finish_failed(exc)
            return
        try:
            payload = self.workflow.shape.encode_result(task.result())
            self._charge(payload, f"the return value of workflow {self.workflow.name!r}")
        except Exception as e:
            self._finish_failed(e)
            return
        self._end(NewEvent(EventType.RUN_COMPLETED, None, {}, payload))

    def _cancelled(self) -> NewEvent:
        data = {"reason": self.cancel_reason} if self.cancel_reason else {}
        return NewEvent(EventType.RUN_CANCELLED, None, data)

    def _finish_failed(self, exc: BaseException) -> None:
        self._end(
            NewEvent(
                EventType.RUN_FAILED,
                None,
                {"error_type": error_type_name(exc)},
                encode_error(exc),
            )
        )

    def _end(self, ev: NewEvent) -> None:
        self.done = True
        self._issued[("end", None)] = ev

    # -- calls the body makes ----------------------------------------------------------

    def _next(self) -> int:
        if self.evicted:
            raise _Evicted()
        n = self._next_call
        self._next_call += 1
        return n

    def _charge(self, payload: bytes, where: str) -> None:
        lim = self.limits
        if len(payload) > lim.max_payload_bytes:
            raise PayloadTooLargeError(
                f"{where} is {len(payload):,} bytes serialized, over the limit of "
                f"{lim.max_payload_bytes:,} bytes per payload; store large data elsewhere "
                "(object storage) and pass a reference"
            )
        if self.payload_bytes + len(payload) > lim.max_run_bytes:
            raise PayloadTooLargeError(
                f"{where} ({len(payload):,} bytes) would take run {self.run_id} over its "
                f"limit of {lim.max_run_bytes:,} bytes of stored payloads "
                f"({self.payload_bytes:,} used); continue in a new run (start one from a "
                "step) or store large data elsewhere"
            )
        self.payload_bytes += len(payload)

    def call_step(
        self, spec: StepSpec, shape: CallShape, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> StepFuture:
        """Record the intent to run a step and return the future of its result."""
        recorded = self._settled.take(self._next_call, spec.name)
        if recorded is None:
            payload = shape.encode_args(args, kwargs)
            self._charge(payload, f"the arguments of step {spec.name!r}")
        else:  # its result is in the log: the arguments are only counted
            payload = _SETTLED_ARGS
            self.payload_bytes += recorded
        n = self._next()
        data: dict[str, Any] = {"name": spec.name}
        if spec.max_retries != DEFAULT_RETRY.max_retries:
            data["max_retries"] = spec.max_retries
        if spec.retry_after is not None:
            data["retry_after"] = spec.retry_after
        if spec.timeout is not None:
            data["timeout"] = spec.timeout
        if spec.bound:
            data["bound"] = True
        self._issued[("step_created", n)] = NewEvent(EventType.STEP_CREATED, n, data, payload)
        self.steps[n] = StepCall(n, spec, payload)
        fut = StepFuture(loop=self.loop)
        fut.name = spec.name
        fut.call = n
        if recorded is not None and self._cursor is not None:
            fut.settle = self._settle_from_log
        self._pending[n] = (fut, shape.decode_result)
        return fut

    def call_child(
        self, workflow: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """Record the intent to start a child run and return the future of its result."""
        payload = workflow.shape.encode_args(args, kwargs)
        self._charge(payload, f"the arguments of child workflow {workflow.name!r}")
        n = self._next()
        child_id = f"{self.run_id}-{n}"
        self._child_ids[n] = child_id
        created = telemetry.run_created_data(workflow.name)  # + the parent run's trace context
        self._issued[("child_created", n)] = NewEvent(
            EventType.CHILD_CREATED, n, {"name": workflow.name, "child_run_id": child_id}
        )
        if workflow.admission is not None:  # a child counts against its workflow's limit
            key, limit = workflow.admission(self.record.namespace, args, kwargs)
            created.update(concurrency_key=key, concurrency_limit=limit)
        self._children[n] = ChildStart(n, child_id, workflow.name, payload, created)
        fut = self.loop.create_future()
        self._pending[n] = (fut, workflow.shape.decode_result)
        return fut

    def call_hook(
        self,
        sink: HookSink,
        hook_type: str,
        token: str | None,
        metadata: dict[str, Any],
        *,
        webhook: bool = False,
    ) -> tuple[int, str]:
        """Record the intent to create a hook (a webhook: resumable over HTTP); returns
        its call and token. The event's data holds the token's digest (the world
        indexes it and checks conflicts on it); the token and metadata go in its payload.
        """
        n, name = self._next(), hook_type.rsplit(":", 1)[-1]
        if token is None:
            # A generated token must be unguessable, so it cannot come from the run's
            # seeded random source; a replay reads it back from the log instead.
            token = self._recorded_tokens.get(n) or secrets.token_urlsafe(24)
        payload = json.dumps({"token": token, "metadata": metadata}).encode()
        self._charge(payload, f"the token and metadata of hook {name!r}")
        key = self._hook_keys[n] = self._hook_keys.get(n) or self.hook_digest(token)
        self._recorded_tokens[n] = token
        data: dict[str, Any] = {"name": name, "type": hook_type, "token": key}
        if webhook:
            data["webhook"] = True
        self._issued[("hook_created", n)] = NewEvent(EventType.HOOK_CREATED, n, data, payload)
        self._hooks[n] = sink
        return n, token

    def dispose_hook(self, call: int, token: str) -> None:
        """Record that the body is done with hook ``call``."""
        key = self._hook_keys.get(call) or self.hook_digest(token)
        self._issued[("hook_disposed", call)] = NewEvent(
            EventType.HOOK_DISPOSED, call, {"token": key}
        )

    def request_lock(self, key: str, limit: int) -> tuple[int, asyncio.Future[None]]:
        """Record a request for a permit of lock ``key``; returns its call and the
        future its ``lock_acquired`` fact resolves."""
        n = self._next()
        self.uses_locks = True
        self._issued[("lock_requested", n)] = NewEvent(
            EventType.LOCK_REQUESTED, n, {"name": key, "key": key, "limit": limit}
        )
        fut: asyncio.Future[None] = self.loop.create_future()
        self._lock_waits[n] = fut
        return n, fut

    def release_lock(self, call: int, key: str) -> None:
        """Record that the body leaves lock ``call`` (or no longer waits for it)."""
        self._lock_waits.pop(call, None)
        self._issued[("lock_released", call)] = NewEvent(
            EventType.LOCK_RELEASED, call, {"name": key, "key": key}
        )

    def set_attributes(self, changes: dict[str, str], removals: list[str]) -> None:
        """Record an attribute change made by the body."""
        n = self._next()
        data: dict[str, Any] = {}
        if changes:
            data["set"] = changes
        if removals:
            data["remove"] = removals
        self._attributes(data)
        self._issued[("attributes_set", n)] = NewEvent(EventType.ATTRIBUTES_SET, n, data)

    @property
    def calls_made(self) -> int:
        """How many durable calls the body has made so far (the next call's number)."""
        return self._next_call

    def pending_children(self) -> list[str]:
        """Child runs this run started and still waits for."""
        return [cid for call, cid in self._child_ids.items() if call in self._pending]

    def new_timer(self, when: float, name: str) -> int:
        """Issue a durable timer due at ``when`` (the loop's clock); returns its call number."""
        n = self._next()
        self._issued[("wait_created", n)] = NewEvent(
            EventType.WAIT_CREATED, n, {"name": name, "due_at": when}
        )
        return n

    def cancel_timer(self, call: int) -> None:
        """Record that the body no longer waits on timer ``call`` (a race was decided)."""
        self._issued[("wait_cancelled", call)] = NewEvent(EventType.WAIT_CANCELLED, call, {})

    # -- what goes into the next commit ------------------------------------------------

    def new_commands(self) -> list[NewEvent]:
        """Commands the body issued that the log has not recorded yet, in call order."""
        return list(self._issued.values())

    def new_step_calls(self) -> list[StepCall]:
        """Step calls among :meth:`new_commands`."""
        return [
            self.steps[ev.call]
            for ev in self._issued.values()
            if ev.type is EventType.STEP_CREATED and ev.call is not None
        ]

    def new_child_starts(self) -> list[ChildStart]:
        """Child runs to create with :meth:`new_commands`."""
        return list(self._children.values())

    def committed(self, last_seq: int) -> None:
        """The commands were recorded; the log now ends at ``last_seq``."""
        self._issued.clear()
        self._children.clear()
        self.seen_seq = last_seq

    def waiting_on_steps(self) -> bool:
        """True while a step this run started has not finished (keep it in memory)."""
        return not self._pending.keys().isdisjoint(self.steps)

    def metadata(self) -> WorkflowMetadata:
        """The run's :class:`WorkflowMetadata`."""
        started = self.started_at or self.record.created_at
        made = self._metadata
        if made is not None and made[0] == started:
            return made[1]  # asked once per step attempt: made once per run
        meta = WorkflowMetadata(
            run_id=self.run_id,
            workflow_name=self.workflow.name,
            started_at=datetime.fromtimestamp(started, UTC),
            deployment=self.record.deployment,
        )
        self._metadata = (started, meta)
        return meta

    def close(self) -> None:
        """Drop the body (the run is evicted or finished)."""
        self.evicted = True
        task = self.task
        if task is not None and not task.done():
            # Unwind the body's frames now, on its own loop, so that no cleanup code in
            # the body can reach a step (every durable call raises while evicted).
            task.cancel()
            try:
                self.loop.run_until_quiet()
            except BaseException:
                pass
        self.loop.close()


class _Evicted(BaseException):
    """Raised at any durable call a body makes while it is being dropped from memory."""


def _unknown(t: object) -> UnknownEventTypeError:
    return UnknownEventTypeError(
        f"a run's log holds an event of type {t!r}, which durably.events.EVENTS does not "
        "know (written by a newer durably, or damaged)"
    )


#: The instance's handler of each fact the body consumes (``RunInstance._apply_<type>``).
_APPLY = handlers_by_name(RunInstance, "_apply_", DELIVERABLE_TYPES)
