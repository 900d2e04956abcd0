"""``Workflows``: the registry of workflows and steps, and its decorators.

A registry names a world (where runs live), a namespace (whose queue) and a deployment
(which code version runs are pinned to). With ``worker=True`` (the default) it also runs
an embedded worker in the application's event loop, started on first use.

The *default registry* of the process is the one the top-level calls use when none is
given (``durably.get_run``; ``resume_hook``, ``get_hook_by_token`` and a hook's ``resume``):
each ``Workflows`` becomes it when it is made (so it is the registry made last), and
:func:`set_default_registry` names another. It is one explicit slot, not a search.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import os
import sys
import types
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from .attributes import check_attributes
from .clock import Clock, WallClock
from .concurrency import Concurrency, check_priority
from .control import Control, new_run_id
from .crypto import Sealer, resolve_keyring
from .durations import parse_duration
from .errors import (
    ConfigurationError,
    DurablyWarning,
    PayloadTooLargeError,
    RunNotFoundError,
    WorkflowNotRegisteredError,
)
from .rate_limits import RateLimit, parse_rate_limit
from .retry import DEFAULT_RETRY
from .run import Run
from .runtime.calls import CallShape
from .runtime.context import current_instance
from .runtime.limits import Limits
from .runtime.specs import StepSpec, WorkflowSpec
from .schedules import Schedule, parse_schedule
from .worlds import key_policy, open_world, resolve_world_url
from .worlds.base import World
from .worlds.encrypted import EncryptedWorld

if TYPE_CHECKING:
    from .worker import Worker

__all__ = [
    "BoundStep",
    "Step",
    "Workflow",
    "Workflows",
    "default_registry",
    "new_run_id",
    "set_default_registry",
]

P = ParamSpec("P")
R = TypeVar("R")


class Step(Generic[P, R]):
    """A registered step. Inside a workflow, calling it records the call and returns an
    awaitable of its result; anywhere else it is a plain function call."""

    def __init__(
        self, registry: Workflows, fn: Callable[P, Any], spec: StepSpec, binds: str | None = None
    ) -> None:
        self.registry = registry
        self.fn = fn
        self.spec = spec
        self.name = spec.name
        self._binds = binds  # "class", "instance" or None: see __get__
        self._bound_shape: CallShape | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the step: recorded inside a workflow body, a plain call outside one."""
        inst = current_instance()
        if inst is None:
            return self.fn(*args, **kwargs)
        assert self.spec.shape is not None
        fut = inst.call_step(self.spec, self.spec.shape, args, kwargs)
        caller = sys._getframe(1)
        fut.site = (caller.f_code.co_filename, caller.f_lineno)  # named if never awaited
        return fut

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        """A step defined in a class body: a classmethod step binds its class, and an
        instance method step (first parameter ``self``) binds the instance it is read
        from. The receiver is passed to the function, never recorded (see
        :class:`BoundStep`); read from the class, an instance method step is the step."""
        if self._binds == "class":
            return BoundStep(self, objtype if objtype is not None else type(obj))
        if self._binds == "instance" and obj is not None:
            return BoundStep(self, obj)
        return self

    def bound_spec(self, receiver: Any) -> StepSpec:
        """The spec of a call of this step bound to ``receiver``."""
        if self._bound_shape is None:
            self._bound_shape = CallShape(
                types.MethodType(self.fn, object()), kind="step", name=self.name
            )
        return dataclasses.replace(
            self.spec, fn=types.MethodType(self.fn, receiver), shape=self._bound_shape, bound=True
        )

    def __repr__(self) -> str:
        return f"<durably step {self.name!r}>"


class BoundStep:
    """A step that is a method, bound to its instance or class (what ``obj.step`` and
    ``Cls.step`` return). Inside a workflow, calling it records the call with the
    arguments after ``self``/``cls`` only: the receiver lives in the body's memory, and a
    worker that did not run the body recovers it by replaying the body (as for
    :func:`durably.run_step`). So an instance method step of an object the body made
    (or a module-level one) works on every worker."""

    def __init__(self, step: Step[Any, Any], receiver: Any) -> None:
        self.step = step
        self.receiver = receiver
        self.name = step.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method as a step: recorded inside a workflow, a plain call outside."""
        inst = current_instance()
        if inst is None:
            return self.step.fn(self.receiver, *args, **kwargs)
        spec = self.step.bound_spec(self.receiver)
        assert spec.shape is not None
        fut = inst.call_step(spec, spec.shape, args, kwargs)
        caller = sys._getframe(1)
        fut.site = (caller.f_code.co_filename, caller.f_lineno)
        return fut

    def __repr__(self) -> str:
        return f"<durably step {self.name!r} bound to {self.receiver!r}>"


class Workflow(Generic[P, R]):
    """A registered workflow. Start runs with ``start(wf, ...)``; inside another workflow,
    calling it starts a child run and returns an awaitable of its result."""

    def __init__(self, registry: Workflows, fn: Callable[P, Any], spec: WorkflowSpec) -> None:
        self.registry = registry
        self.fn = fn
        self.spec = spec
        self.name = spec.name
        #: The workflow's concurrency limit, if it has one (``@wf.workflow(concurrency=)``).
        self.concurrency: Concurrency | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the workflow: as a child run inside a workflow body, else the plain
        function, with a :class:`DurablyWarning` (nothing is recorded then)."""
        inst = current_instance()
        if inst is None:
            warnings.warn(
                f"this ran {self.name} as a plain function: nothing was recorded. "
                f"Use `await start({self.name}, ...)` for a durable run (or call it "
                "inside a workflow body for a child run).",
                DurablyWarning,
                stacklevel=2,
            )
            return self.fn(*args, **kwargs)
        return inst.call_child(self.spec, args, kwargs)

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> Run:
        """Start a run of this workflow (same as ``durably.start(self, ...)``)."""
        call_kwargs: dict[str, Any] = dict(kwargs)
        return await self.registry.start(self, *args, **call_kwargs)

    def __repr__(self) -> str:
        return f"<durably workflow {self.name!r}>"


_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _worker_flag(worker: bool | None) -> bool:
    """``worker=``, else ``$DURABLY_WORKER``, else on: one module can then serve both the
    processes that start runs (``DURABLY_WORKER=0``) and the workers."""
    if worker is not None:
        return worker
    raw = os.environ.get("DURABLY_WORKER", "").strip().lower()
    if not raw or raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ConfigurationError(
        f"DURABLY_WORKER={raw!r} is not understood: set it to 1 (this process runs an "
        "embedded worker) or 0 (it only starts and reads runs)"
    )


def _binding(f: Any) -> str | None:
    """How a step defined in a class body binds: ``"class"`` (a classmethod),
    ``"instance"`` (a function whose first parameter is ``self``) or ``None``."""
    if isinstance(f, classmethod):
        return "class"
    if isinstance(f, staticmethod) or not callable(f) or inspect.isclass(f):
        return None
    try:
        params = list(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        return None
    return "instance" if params[:1] == ["self"] and not inspect.ismethod(f) else None


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    return parse_duration(value)


class Workflows:
    """The registry of workflows and steps, bound to a world.

    Args:
        world: a world URL (``sqlite:///PATH``, ``postgresql://...``, ``memory://``);
            default ``$DURABLY_WORLD``, else ``sqlite:///.durably/durably.db``.
        namespace: isolates this registry's queue from others on the same world
            (default ``$DURABLY_NAMESPACE``, else ``"default"``).
        deployment: the code version runs are pinned to (default ``$DURABLY_DEPLOYMENT``,
            else ``"default"``).
        encryption_key: the master key(s) for payload encryption, ``KEY_ID:BASE64``
            (``durably keygen``), several comma separated for rotation (newest first);
            default ``$DURABLY_ENCRYPTION_KEY``, else a key file beside an SQLite
            database. ``False`` stores payloads in plaintext.
        worker: run an embedded worker in this process (started on first use); default
            ``$DURABLY_WORKER`` (``1``/``0``), else ``True``. A process that only starts
            and reads runs (a script, a web app beside ``durably worker`` processes) sets
            it off, so that it never begins a run it will not stay up to finish.
        concurrency: how many steps the embedded worker runs at once (default 16).
        limits: payload size limits.
        retention: how long an ended run is kept (``"30d"``, seconds, ``timedelta``);
            default ``$DURABLY_RETENTION``, else forever. The registry's workers delete
            runs of its namespace that ended longer ago than this, with everything they
            recorded, periodically (as ``durably prune`` does).
    """

    def __init__(
        self,
        *,
        world: str | None = None,
        namespace: str | None = None,
        deployment: str | None = None,
        encryption_key: str | bytes | bool | None = None,
        worker: bool | None = None,
        concurrency: int | None = None,
        limits: Limits | None = None,
        retention: str | float | timedelta | None = None,
    ) -> None:
        self.world_url = resolve_world_url(world)
        self.namespace = namespace or os.environ.get("DURABLY_NAMESPACE") or "default"
        self.deployment = deployment or os.environ.get("DURABLY_DEPLOYMENT") or "default"
        self.encryption_key = encryption_key
        self.embedded_worker = _worker_flag(worker)
        self.concurrency = concurrency or int(os.environ.get("DURABLY_CONCURRENCY", "16"))
        self.limits = limits or Limits()
        keep = retention if retention is not None else os.environ.get("DURABLY_RETENTION")
        self.retention: float | None = None if keep is None or keep == "" else parse_duration(keep)
        #: The worker's time (:mod:`durably.clock`): the real time, unless a test put a
        #: virtual clock here (``durably.testing.time_skipping``).
        self.clock: Clock = WallClock()
        self.workflows: dict[str, Workflow[Any, Any]] = {}
        self.steps: dict[str, Step[Any, Any]] = {}
        # Flow control: rate limits by step name, schedules by workflow name.
        self.rate_limits: dict[str, RateLimit] = {}
        self.schedules: dict[str, Schedule] = {}
        self._world_opened = False
        self._worker: Worker | None = None
        self._open_lock: asyncio.Lock | None = None
        self._open_loop: asyncio.AbstractEventLoop | None = None
        set_default_registry(self)
        # Fail fast on a bad URL, before anything is recorded.
        self._world: World | None = None
        open_world(self.world_url)
        if key_policy(self.world_url).source == "none":
            # A world with no default key (Postgres, plug-ins) refuses to start without
            # one, here rather than at first use; the message names `durably keygen`.
            resolve_keyring(self.world_url, encryption_key, create=False)

    # -- decorators --------------------------------------------------------------------

    @overload
    def workflow(self, fn: Callable[P, Any], /) -> Workflow[P, Any]: ...

    @overload
    def workflow(
        self,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        concurrency_key: Callable[..., str] | None = None,
        schedule: str | None = None,
        timezone: str | None = None,
        catch_up: str | None = None,
    ) -> Callable[[Callable[P, Any]], Workflow[P, Any]]: ...

    def workflow(  # type: ignore[misc]
        self,
        fn: Callable[P, Any] | None = None,
        /,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        concurrency_key: Callable[..., str] | None = None,
        schedule: str | None = None,
        timezone: str | None = None,
        catch_up: str | None = None,
    ) -> Any:
        """Register an ``async def`` as a workflow (``@wf.workflow`` or
        ``@wf.workflow(name="...")``).

        Args:
            fn: the workflow function (when used without parentheses).
            name: the workflow's recorded name (default: the function's name).
            concurrency: at most this many runs at once across all workers (a sleeping
                or waiting run counts); the others stay pending (see
                :mod:`durably.concurrency`).
            concurrency_key: apply ``concurrency`` per key: a function of the
                workflow's arguments returning a string, called once at start.
            schedule: a five-field cron expression (``"*/5 * * * *"``): the registry's
                workers start one run per tick, across every worker and process, with
                the tick (an aware ``datetime``) as its one argument. See
                :mod:`durably.schedules`.
            timezone: the IANA time zone the schedule is read in (default ``"UTC"``).
            catch_up: after downtime, ``"latest"`` (default: the latest missed tick
                runs), ``"all"`` (every missed tick) or ``"skip"`` (none).

        Raises:
            ConfigurationError: a malformed schedule, time zone or catch-up, or
                ``timezone``/``catch_up`` without a ``schedule``.
        """
        if schedule is None and (timezone is not None or catch_up is not None):
            raise ConfigurationError(
                'timezone= and catch_up= apply to a schedule: add schedule="<cron>" '
                '(for example schedule="0 9 * * *") or drop them'
            )

        def register(f: Callable[P, Any]) -> Workflow[P, Any]:
            if not inspect.iscoroutinefunction(f):
                raise ConfigurationError(
                    f"workflow {getattr(f, '__qualname__', f)!r} must be an `async def` "
                    "function: workflow bodies run on durably's own event loop"
                )
            wname = name or f.__name__
            self._check_free(wname, "workflow")
            limit = Concurrency.of(wname, concurrency, concurrency_key)
            sched = None
            if schedule is not None:
                sched = parse_schedule(
                    schedule,
                    "UTC" if timezone is None else timezone,
                    "latest" if catch_up is None else catch_up,
                    workflow=wname,
                    fn=f,
                )
            spec = WorkflowSpec(wname, f, CallShape(f, kind="workflow", name=wname))
            if limit is not None:
                spec.admission = limit.admission(wname)
            wfobj: Workflow[P, Any] = Workflow(self, f, spec)
            wfobj.concurrency = limit
            self.workflows[wname] = wfobj
            if sched is not None:
                self.schedules[wname] = sched
                if self._worker is not None:
                    self._worker.schedules.wake()  # registered after it started: now
            return wfobj

        return register(fn) if fn is not None else register

    @overload
    def step(self, fn: Callable[P, Any], /) -> Step[P, Any]: ...

    @overload
    def step(
        self,
        *,
        name: str | None = None,
        max_retries: int = DEFAULT_RETRY.max_retries,
        retry_after: str | float | None = None,
        timeout: str | float | None = None,
        rate_limit: str | None = None,
    ) -> Callable[[Callable[P, Any]], Step[P, Any]]: ...

    def step(  # type: ignore[misc]
        self,
        fn: Callable[P, Any] | None = None,
        /,
        *,
        name: str | None = None,
        max_retries: int = DEFAULT_RETRY.max_retries,
        retry_after: Any = None,
        timeout: Any = None,
        rate_limit: Any = None,
    ) -> Any:
        """Register a step (``@wf.step`` or ``@wf.step(max_retries=5, timeout="30s")``).

        An ``async def`` step runs on the worker's loop: past its ``timeout``, or when its
        run is cancelled, it gets ``asyncio.CancelledError`` at its current await. A plain
        ``def`` step runs in a thread, which Python cannot stop: the attempt is abandoned
        at once (recorded as timed out, or as cancelled), the thread runs on to its end in
        the background, what it returns is discarded and what it writes is refused
        (``StepAbandonedError``). Poll :func:`durably.step_cancelled` in its long loops to
        return early.

        Args:
            fn: the step function (when used as ``@wf.step`` without parentheses).
            name: the step's recorded name (default: the function's qualified name).
            max_retries: retries after the first attempt (default 3: up to 4 attempts).
            retry_after: backoff base (a duration); attempt n waits base * 2**(n-1).
            timeout: longest one attempt may run (a duration).
            rate_limit: ``"NAME:COUNT/UNIT"`` (``"openai:60/min"``): the bodies of all
                steps naming limiter ``NAME`` begin at most COUNT times in any window
                of the unit (``s``, ``min``, ``h``), across every run and worker of the
                world; a step over it waits durably (never fails for it). See
                :mod:`durably.rate_limits`.
        """
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be a whole number >= 0, got {max_retries!r}"
            )
        retry_s = _seconds(retry_after, "retry_after")
        timeout_s = _seconds(timeout, "timeout")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout!r}")
        rate = None if rate_limit is None else parse_rate_limit(rate_limit, step=name)

        def register(f: Any) -> Step[P, Any]:
            binds = _binding(f)
            if isinstance(f, classmethod | staticmethod):
                f = f.__func__
            if not callable(f) or inspect.isclass(f):
                raise ConfigurationError(
                    f"@wf.step decorates an `async def` or a plain `def` function, got {f!r}"
                )
            sname = name or f.__name__
            self._check_free(sname, "step")
            spec = StepSpec(
                sname,
                f,
                CallShape(f, kind="step", name=sname),
                max_retries=max_retries,
                retry_after=retry_s,
                timeout=timeout_s,
            )
            st: Step[P, Any] = Step(self, f, spec, binds)
            self.steps[sname] = st
            if rate is not None:
                self.rate_limits[sname] = rate
            return st

        return register(fn) if fn is not None else register

    def _check_free(self, name: str, kind: str) -> None:
        if name in self.workflows or name in self.steps:
            other = "workflow" if name in self.workflows else "step"
            raise ConfigurationError(
                f"cannot register {kind} {name!r}: a {other} of that name is already "
                "registered in this registry; give one of them another name "
                f"(@wf.{kind}(name=...))"
            )

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def worker(self) -> Worker | None:
        """The embedded worker, once started."""
        return self._worker

    async def open(self) -> World:
        """Open the world (and start the embedded worker); done on first use anyway."""
        loop = asyncio.get_running_loop()
        if self._open_loop is not loop:
            # A new event loop (asyncio.run called again, a new test): what ran on the
            # old one is gone; the worker handed its leases back as that loop ended (or,
            # if the loop was dropped without ending its tasks, they expire).
            if self._worker is not None:
                self._worker.abandon()
                self._worker = None
            self._open_loop = loop
            self._open_lock = asyncio.Lock()
        assert self._open_lock is not None
        async with self._open_lock:
            if self._world is None:
                ring = resolve_keyring(self.world_url, self.encryption_key)
                inner = open_world(self.world_url)
                self._world = cast(World, EncryptedWorld(inner, Sealer(ring)))
            if not self._world_opened:
                await self._world.open()
                self._world_opened = True
            if self.embedded_worker and self._worker is None:
                # Imported here, not at the top: only a registry that runs a worker needs it.
                from .worker import Worker

                self._worker = Worker(self, self._world, concurrency=self.concurrency)
                self._worker.start()
        return self._world

    async def serve(self, *, concurrency: int | None = None, stop: asyncio.Event) -> None:
        """Run a worker for this registry until ``stop`` is set (``durably worker``)."""
        from .worker import Worker  # imported here: only a registry that runs one needs it

        self.embedded_worker = False
        world = await self.open()
        worker = Worker(self, world, concurrency=concurrency or self.concurrency)
        self._worker = worker
        worker.start()
        try:
            await stop.wait()
        finally:
            await worker.stop()
            self._worker = None

    async def aclose(self) -> None:
        """Stop the embedded worker (handing back what it holds) and close the world.

        Cancelled meanwhile (``asyncio.wait_for(wf.aclose(), timeout)``), it still
        closes the world, so nothing of it (a Postgres listener) outlives the registry.
        """
        worker, self._worker = self._worker, None
        try:
            if worker is not None:
                with contextlib.suppress(RuntimeError):
                    if self._open_loop is asyncio.get_running_loop():
                        await worker.stop()
                    else:
                        worker.abandon()
        finally:
            world, opened = self._world, self._world_opened
            self._world_opened = False
            self._open_loop = None
            if world is not None and opened:
                # A world stops its background work (listener) before its first await.
                await world.close()

    async def __aenter__(self) -> Workflows:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- runs --------------------------------------------------------------------------

    def _resolve(self, workflow: Workflow[Any, Any] | str) -> Workflow[Any, Any]:
        if isinstance(workflow, Workflow):
            return workflow
        wfobj = self.workflows.get(str(workflow))
        if wfobj is None:
            raise WorkflowNotRegisteredError(
                f"no workflow named {workflow!r} in this registry; registered: "
                f"{', '.join(sorted(self.workflows)) or 'none'}"
            )
        return wfobj

    async def start(
        self,
        workflow: Workflow[Any, Any] | str,
        *args: Any,
        idempotency_key: str | None = None,
        deployment: str | None = None,
        attributes: dict[str, Any] | None = None,
        priority: int = 0,
        **kwargs: Any,
    ) -> Run:
        """Record a new run durably and return its handle before it executes.

        Args:
            workflow: a registered workflow (or its name).
            *args: positional arguments of the workflow.
            **kwargs: keyword arguments of the workflow.
            idempotency_key: when a run was already started with this key (in this
                namespace, for this workflow), return that run instead.
            deployment: the deployment to pin the run to (default: this registry's;
                ``"latest"``: the newest the world has seen).
            attributes: plaintext attributes the run starts with (as
                :func:`durably.set_attributes` takes them), recorded with its creation.
            priority: higher starts first among pending runs (default 0).

        Raises:
            ConfigurationError: called inside a workflow body (call the workflow there
                for a child run, or start the run from a step), or an attribute is
                not valid.
        """
        wfobj = self._resolve(workflow)
        if current_instance() is not None:
            # Not a durable call: a replay would start another run each time, and the
            # world's I/O would run on the body's deterministic loop (it hangs there).
            raise ConfigurationError(
                f"start() of workflow {wfobj.name!r} cannot be called inside a workflow "
                f"body. For a child run the body waits for, call it: `await "
                f"{wfobj.name}(...)`. For an independent run, call start() inside a step "
                "(its result, e.g. the run id, is recorded as the step's result)."
            )
        attrs = check_attributes(attributes or {})
        priority = check_priority(priority)
        limit = wfobj.concurrency
        ckey = limit.key(self.namespace, wfobj.name, args, kwargs) if limit else None
        payload = wfobj.spec.shape.encode_args(args, kwargs)
        if len(payload) > self.limits.max_payload_bytes:
            raise PayloadTooLargeError(
                f"the arguments of workflow {wfobj.name!r} are {len(payload):,} bytes "
                f"serialized, over the limit of {self.limits.max_payload_bytes:,}"
            )
        control = await self.control()
        run_id = await control.create_run(
            wfobj.name,
            payload,
            namespace=self.namespace,
            deployment=deployment,
            idempotency_key=idempotency_key,
            attributes=attrs,
            priority=priority,
            concurrency=(ckey, limit.limit) if limit is not None and ckey is not None else None,
        )
        return Run(self, run_id, wfobj.name)

    async def control(self) -> Control:
        """The control plane over this registry's world (opened on first use): what
        creates, cancels, resumes and wakes runs, waking the embedded worker."""
        world = await self.open()
        return Control(
            world, worker=self._worker, world_url=self.world_url, deployment=self.deployment
        )

    async def get_run(self, run_id: str) -> Run:
        """A handle on an existing run.

        Raises:
            RunNotFoundError: no run has this id in this registry's world.
        """
        world = await self.open()
        rec = await world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, self.world_url)
        return Run(self, run_id, rec.workflow_name)


_default: Workflows | None = None


def set_default_registry(registry: Workflows | None) -> None:
    """Make ``registry`` the process's default registry (``None``: no default). Each
    ``Workflows`` calls this when it is made."""
    global _default
    _default = registry


def default_registry() -> Workflows:
    """The process's default registry: the one made last, unless
    :func:`set_default_registry` named another.

    Raises:
        ConfigurationError: there is none yet.
    """
    if _default is None:
        raise ConfigurationError(
            "no Workflows registry exists in this process yet; make one "
            "(wf = Workflows()) or call wf.get_run(run_id) on yours"
        )
    return _default
