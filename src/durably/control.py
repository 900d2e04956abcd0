"""The control plane: the one writer of log records for everything that is not the worker.

Why "control": durably splits, as durable-execution systems do, the *data plane* (the
worker, which executes runs and records what their bodies do) from the *control plane*
(what acts on a run from outside its execution: create it, cancel it, resume one of its
hooks, fire its timers early, set its attributes, fork it, prune it). Every act of
the control plane is made here and only here; the registry (``start``), :class:`~durably.
run.Run` (``cancel``, ``wake``), hooks (``resume``), attributes set from a step, the CLI,
the HTTP app and the dashboard call :class:`Control`, and none of them builds a
``RunWrite`` or a ``Commit`` itself.

An act that gives a worker of this process something to do wakes it: :class:`Control`
talks to that worker through :class:`LocalWorker`, a small protocol, so that this module
(and the surfaces above it) import no worker module.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from typing import Any, Protocol

from . import telemetry
from .crypto import HOOK_DIGEST_PREFIX, is_sealed, sealer_of
from .errors import DecryptionError, HookNotFoundError, RunNotFoundError, WorldError
from .events import EventType, NewEvent
from .fork import plan_fork
from .worlds.base import (
    TERMINAL_STATUSES,
    Commit,
    HookRecord,
    RunMeta,
    RunWrite,
    World,
    WriteResult,
)

__all__ = ["Control", "LocalWorker", "hook_not_found", "new_run_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_run_id() -> str:
    """A new run id: ``run_`` and 26 characters that sort by creation time."""
    n = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[n & 31])
        n >>= 5
    return "run_" + "".join(reversed(chars))


def hook_not_found(token: str) -> str:
    """The message of a resume whose token no live hook holds."""
    return (
        f"no live hook has token {token!r}: it was never created, was disposed, or its run "
        "ended; list live hooks with `durably inspect hooks`"
    )


class LocalWorker(Protocol):
    """What the control plane needs of a worker running in this process."""

    @property
    def owner(self) -> str:
        """The worker's lease owner id."""
        ...

    @property
    def lease_seconds(self) -> float:
        """How long a lease it takes lasts without a heartbeat."""
        ...

    def can_begin(self) -> bool:
        """Whether a run created now should be advanced by this worker at once."""
        ...

    def begin(self, run_id: str) -> None:
        """Advance a run just created leased to this worker."""
        ...

    async def begin_created(self, create: RunWrite) -> WriteResult | None:
        """Create the run (``create``, its facts timed) and take its first turn in one
        commit; ``None`` if this worker cannot (then the caller creates it)."""
        ...

    def kick(self) -> None:
        """Look for work now: something was just recorded."""
        ...


class Control:
    """Acts on runs of one world from outside their execution (cheap to make).

    Args:
        world: the world to write to (the registry's, sealed when it encrypts, so that
            payloads are stored as the run's own are).
        worker: the worker of this process, if any: woken after each act that gives it
            work, and handed the runs it can start at once.
        world_url: names the world in errors.
        deployment: the deployment this process serves: the fallback of ``"latest"``,
            and the only one whose new runs the local worker begins at once.
    """

    def __init__(
        self,
        world: World,
        *,
        worker: LocalWorker | None = None,
        world_url: str = "",
        deployment: str = "default",
    ) -> None:
        self.world = world
        self.worker = worker
        self.world_url = world_url
        self.deployment = deployment

    def wake_worker(self) -> None:
        """Wake the local worker (if any): something was just recorded for it."""
        if self.worker is not None:
            self.worker.kick()

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self,
        workflow_name: str,
        payload: bytes | None,
        *,
        namespace: str,
        deployment: str | None = None,
        idempotency_key: str | None = None,
        rerun_of: str | None = None,
        resolve_latest: bool = True,
        begin_here: bool = True,
        attributes: dict[str, str] | None = None,
        priority: int = 0,
        concurrency: tuple[str, int] | None = None,
    ) -> str:
        """Record a new run (its ``run_created`` event with ``payload``, the encoded
        input) and return its id; with ``idempotency_key``, an existing run of this
        workflow in ``namespace`` started with the same key is returned instead.

        Args:
            workflow_name: the registered name of the workflow to run.
            payload: the encoded (and sealed) input, or None for no input.
            namespace: the registry namespace the run belongs to.
            idempotency_key: a key making the call idempotent per workflow and namespace.
            deployment: the deployment to pin the run to (default this control's);
                ``"latest"`` (when ``resolve_latest``) is the newest the world has seen.
            rerun_of: the run whose input this one copies (recorded in its first event).
            resolve_latest: whether ``"latest"`` names the newest deployment (else literal).
            begin_here: when the local worker has room and serves the run's deployment,
                create the run leased to it and begin it at once, without a claim (no
                queue round trip before the first step); otherwise queue it and wake
                the worker.
            attributes: attributes the run starts with (values already checked),
                recorded with its creation.
            priority: higher starts first among pending runs.
            concurrency: ``(lock key, limit)``: the run starts only once it holds a
                permit of that key (see :mod:`durably.concurrency`).
        """
        dep = await self._deployment(deployment, namespace, resolve_latest)
        data: dict[str, Any] = telemetry.run_created_data(workflow_name)  # + traceparent
        if rerun_of is not None:
            data["rerun_of"] = rerun_of
        if priority:
            data["priority"] = priority
        if concurrency is not None:
            data["concurrency_key"], data["concurrency_limit"] = concurrency
            begin_here = False  # it may have to wait for a permit: the ledger decides
        facts = [NewEvent(EventType.RUN_CREATED, None, data, payload)]
        if attributes:
            facts.append(NewEvent(EventType.ATTRIBUTES_SET, None, {"set": dict(attributes)}))
        write = RunWrite(
            new_run_id(),
            create=RunMeta(
                workflow_name=workflow_name,
                namespace=namespace,
                deployment=dep,
                idempotency_key=idempotency_key,
                priority=priority,
                concurrency_key=concurrency[0] if concurrency else None,
                concurrency_limit=concurrency[1] if concurrency else None,
            ),
            facts=facts,
        )
        worker = self.worker
        if begin_here and worker is not None and worker.can_begin() and dep == self.deployment:
            # Timed here, so the record and the log are what this process writes: the
            # worker makes the live body from them, without reading the run back, and
            # commits its first turn with its creation (one commit to the first step).
            now = time.time()
            for fact in facts:
                fact.created_at = now
            write.lease = True
            begun = await worker.begin_created(write)
            if begun is not None:
                return begun.run_id
            commit = Commit([write], owner=worker.owner, lease_seconds=worker.lease_seconds)
            result = (await self.world.commit(commit)).results[0]
            if result.created:
                worker.begin(result.run_id)
            return result.run_id
        result = (await self.world.commit(Commit([write]))).results[0]
        self.wake_worker()
        return result.run_id

    async def _deployment(self, deployment: str | None, namespace: str, resolve: bool) -> str:
        """The deployment a new run is pinned to: ``deployment`` (default this
        control's); ``"latest"`` (when ``resolve``) is the newest the world has seen."""
        dep = deployment or self.deployment
        if resolve and dep == "latest":
            seen = [d for d in await self.world.list_deployments(namespace) if d.first_seen]
            dep = seen[0].name if seen else self.deployment
        return dep

    async def fork(self, run_id: str, from_step: int, *, deployment: str | None = None) -> str:
        """Record a fork of run ``run_id`` and return the new run's id: a run of the same
        workflow, input and namespace whose log copies the source's history before
        durable call ``from_step`` (counted from 0 in call order), so that those calls
        keep their recorded results, and whose body goes on from call ``from_step`` (see
        :mod:`durably.fork`). The source is not changed.

        Args:
            run_id: the run to fork (any status).
            from_step: the first call the fork runs again.
            deployment: the deployment to pin the fork to (default the source's;
                ``"latest"``: the newest the world has seen).

        Raises:
            RunNotFoundError: no run has this id.
            ForkError: ``from_step`` is out of range, or what precedes it cannot be
                copied (a child run that has not ended, a hook still live).
            DecryptionError: the payloads are encrypted and this world has no key (a
                fork re-encrypts what it copies for the new run).
        """
        rec = await self.world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, self.world_url)
        events = await self.world.read_events(run_id)
        if any(is_sealed(e.payload) for e in events):
            raise DecryptionError(
                f"run {run_id} has encrypted payloads and no key is at hand to re-encrypt "
                "them for the fork: pass --key or set $DURABLY_ENCRYPTION_KEY"
            )
        dep = await self._deployment(deployment or rec.deployment, rec.namespace, True)
        data: dict[str, Any] = telemetry.run_created_data(rec.workflow_name)
        data.update(fork_of=run_id, from_step=from_step)
        source = next((e for e in events if e.type is EventType.RUN_CREATED), None)
        plan = plan_fork(
            source,
            events,
            run_id=new_run_id(),
            meta=RunMeta(rec.workflow_name, rec.namespace, dep),
            from_step=from_step,
            created=data,
            steps=await self.world.list_steps(run_id),
            live_hooks=await self.world.list_hooks(run_id=run_id, limit=10_000),
        )
        result = await self.world.commit(Commit(plan.writes))
        if not all(r.ok for r in result.results):
            raise WorldError(
                f"the fork of run {run_id} was not recorded as planned (the world refused "
                "part of the copied history); nothing was started. Report this with "
                f"`durably inspect events {run_id}`"
            )
        self.wake_worker()
        return plan.run_id

    async def prune(
        self,
        *,
        ended_before: float,
        statuses: list[str] | None = None,
        namespace: str | None = None,
        batch: int = 500,
    ) -> int:
        """Delete every run that ended before ``ended_before`` (of these statuses, and
        this namespace, when given) with all it owns, in batches of ``batch`` runs, one
        transaction each; returns how many runs were deleted. Never a run that has not
        ended: such runs are skipped whatever the filter says."""
        total = 0
        while True:
            gone = await self.world.prune_runs(
                ended_before=ended_before, statuses=statuses, namespace=namespace, limit=batch
            )
            total += len(gone)
            if len(gone) < batch:
                return total

    async def cancel(self, run_id: str, reason: str | None = None) -> str | None:
        """Ask run ``run_id`` to stop: its body gets ``asyncio.CancelledError`` at its
        current await and the run ends ``cancelled``; its live child runs are cancelled
        with it when it ends (the worker records that, with the run's end).

        Returns:
            ``None`` when the cancellation was recorded; the run's status when it had
            already ended (nothing is recorded then).

        Raises:
            RunNotFoundError: no run has this id.
        """
        rec = await self.world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, self.world_url)
        if rec.status in TERMINAL_STATUSES:
            return rec.status
        data = {"reason": reason} if reason else {}
        fact = NewEvent(EventType.RUN_CANCEL_REQUESTED, None, data)
        await self.world.commit(Commit([RunWrite(run_id, facts=[fact])]))
        self.wake_worker()
        return None

    async def wake(self, run_id: str) -> int:
        """Fire the run's pending durable timers now; returns how many."""
        # A pending timer is a timer task in the queue (from its wait_created until its
        # wait_completed or wait_cancelled): read those, not the run's every step.
        queue = await self.world.run_queue(run_id)
        timers = [t.call for t in queue.tasks if t.kind == "timer"] if queue else []
        facts = [NewEvent(EventType.WAIT_COMPLETED, call, {"early": True}) for call in timers]
        if facts:
            await self.world.commit(Commit([RunWrite(run_id, facts=facts)]))
            self.wake_worker()
        return len(facts)

    # -- hooks -------------------------------------------------------------------------

    async def live_hook(
        self,
        token: str,
        *,
        run_id: str | None = None,
        namespace: str | None = None,
        webhook: bool = False,
    ) -> HookRecord:
        """The live hook holding ``token``, as the world indexes it (its ``token`` is
        the index key: a digest of the token, see :meth:`Sealer.hook_digest`).

        Args:
            token: the token the hook was created with.
            run_id: only a hook of this run.
            namespace: only a hook of a run of this namespace.
            webhook: only a webhook (``wait(webhook=True)``): what HTTP may resume.

        Raises:
            HookNotFoundError: no live hook holds the token (that fits), the same error
                whether none exists or one exists that does not fit.
        """
        hook = None
        for key in sealer_of(self.world).hook_digests(token):
            hook = await self.world.get_hook(key)
            if hook is not None:
                break
        if hook is None and not token.startswith(HOOK_DIGEST_PREFIX):
            # A hook of a log written before digests is indexed by its raw token. A
            # digest given as a token is refused: reading it in the database must not
            # be enough to resume the hook.
            hook = await self.world.get_hook(token)
        if run_id is not None and (hook is None or hook.run_id != run_id):
            raise HookNotFoundError(f"run {run_id} has no live hook with token {token!r}")
        if hook is not None and namespace is not None and hook.namespace != namespace:
            hook = None
        if hook is not None and webhook and not await self._is_webhook(hook):
            hook = None
        if hook is None:
            raise HookNotFoundError(hook_not_found(token))
        return hook

    async def indexed_hook(self, key: str, *, run_id: str) -> HookRecord:
        """The live hook of run ``run_id`` whose index key is ``key`` (what
        ``list_hooks`` shows): for operators, who act on a run they see.

        Raises:
            HookNotFoundError: the run has no live hook with that key.
        """
        hook = await self.world.get_hook(key)
        if hook is None or hook.run_id != run_id:
            raise HookNotFoundError(f"run {run_id} has no live hook {key!r}")
        return hook

    async def _is_webhook(self, hook: HookRecord) -> bool:
        created = await self.world.read_command(hook.run_id, hook.call)
        return created is not None and bool(created.data.get("webhook"))

    async def reveal_hook(self, hook: HookRecord) -> HookRecord:
        """``hook`` with its token and metadata as the body gave them: read from its
        ``hook_created`` event (sealed there; this world must hold the key).

        Raises:
            DecryptionError: the payload does not decrypt with this world's key.
        """
        created = await self.world.read_command(hook.run_id, hook.call)
        if created is None or not created.payload:
            return hook  # a log written before digests: the index holds both in clear
        secret = json.loads(created.payload)
        return dataclasses.replace(
            hook, token=str(secret["token"]), metadata=dict(secret.get("metadata") or {})
        )

    async def resume_hook(self, hook: HookRecord | str, payload: bytes | None) -> str:
        """Deliver ``payload`` (encoded, already checked against the hook's type) to
        ``hook`` (a live hook, or its token) and return its run id.

        Raises:
            HookNotFoundError: no live hook holds the token (or it was disposed, or its
                run ended, in the meantime).
        """
        if isinstance(hook, str):
            hook = await self.live_hook(hook)
        fact = NewEvent(EventType.HOOK_RECEIVED, hook.call, {"token": hook.token}, payload)
        result = await self.world.commit(Commit([RunWrite(hook.run_id, facts=[fact])]))
        if not result.results[0].ok:
            raise HookNotFoundError(hook_not_found(hook.token))
        self.wake_worker()
        return hook.run_id

    # -- attributes --------------------------------------------------------------------

    async def set_attributes(
        self, run_id: str, changes: dict[str, str], removals: list[str]
    ) -> None:
        """Record an attribute change of run ``run_id`` (values already checked). It
        gives the run's body nothing to do, so no worker is woken."""
        data: dict[str, Any] = {}
        if changes:
            data["set"] = changes
        if removals:
            data["remove"] = removals
        fact = NewEvent(EventType.ATTRIBUTES_SET, None, data)
        await self.world.commit(Commit([RunWrite(run_id, facts=[fact])]))
