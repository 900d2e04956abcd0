"""Operating runs: ``durably start``, ``wake``, ``cancel`` (one, many, or by filter),
``fork`` and ``prune``. Every change goes through :class:`durably.control.Control`."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import click

from ..control import Control
from ..crypto import Sealer, resolve_keyring
from ..durations import parse_duration
from ..errors import ConfigurationError, DurablyError
from ..worlds import World, resolve_world_url
from ..worlds.base import TERMINAL_STATUSES, RunFilter
from ..worlds.encrypted import EncryptedWorld
from .commands import load_registry
from .common import fail, json_option, print_json, run_async, text_type, with_world, world_option
from .payloads import key_option

__all__ = ["cancel", "fork", "prune", "start", "wake"]

#: How many runs ``cancel --status`` and ``prune`` confirm at most in one listing.
_COUNT_LIMIT = 1_000_000


def _parse_args(raw: str | None) -> tuple[list[Any], dict[str, Any]]:
    if raw is None:
        return [], {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        fail(f"--args is not JSON ({e}); pass an object of keyword arguments or a list")
    if isinstance(value, dict):
        return [], value
    if isinstance(value, list):
        return value, {}
    fail("--args must be a JSON object (keyword arguments) or a list (positional ones)")


@click.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.argument("workflow", type=text_type)
@click.option(
    "--args",
    "raw_args",
    default=None,
    help="JSON: an object of keyword arguments, or a list of positional ones.",
)
@click.option(
    "--idempotency-key",
    default=None,
    type=text_type,
    help="Return the run already started with this key, if any.",
)
@click.option(
    "--deployment",
    default=None,
    help="Pin the run to this deployment (default the registry's; 'latest': the newest seen).",
)
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="K=V",
    help="An attribute the run starts with (repeatable).",
)
@world_option
@json_option
def start(
    target: str,
    workflow: str,
    raw_args: str | None,
    idempotency_key: str | None,
    deployment: str | None,
    attrs: tuple[str, ...],
    world_url: str | None,
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW of the registry MODULE:ATTR and print its id.

    Only records the run: the registry's workers (embedded in your app, or
    `durably worker MODULE:ATTR`) execute it.
    """
    registry = load_registry(target)
    registry.embedded_worker = False  # this process only records the run
    if world_url:
        registry.world_url = resolve_world_url(world_url)
        registry._world = None
    args, kwargs = _parse_args(raw_args)
    attributes = dict(_pair(a) for a in attrs)

    async def go() -> dict[str, Any]:
        try:
            run = await registry.start(
                workflow,
                *args,
                idempotency_key=idempotency_key,
                deployment=deployment,
                attributes=attributes,
                **kwargs,
            )
            rec = await run.record()
            return {"run_id": run.run_id, "workflow": rec.workflow_name, "status": rec.status}
        finally:
            await registry.aclose()

    out = run_async(go())
    if as_json:
        print_json(out)
    else:
        click.echo(out["run_id"])


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        fail(f"--attr takes KEY=VALUE, got {text!r}")
    return key, value


@click.command()
@click.argument("run_id", type=text_type)
@world_option
@json_option
def wake(run_id: str, world_url: str | None, as_json: bool) -> None:
    """Fire the run's pending durable timers now (a sleep ends early)."""

    async def go(world: World) -> int:
        return await Control(world, world_url=resolve_world_url(world_url)).wake(run_id)

    fired = run_async(with_world(world_url, go))
    if as_json:
        print_json({"run_id": run_id, "timers_fired": fired})
    else:
        click.echo(f"run {run_id}: {fired} timer(s) fired")


@click.command()
@click.argument("run_ids", nargs=-1, type=text_type)
@click.option(
    "--status",
    type=click.Choice(["pending", "running"]),
    default=None,
    help="Cancel every run with this status (with --workflow: of that workflow).",
)
@click.option(
    "--workflow",
    default=None,
    type=text_type,
    help="Cancel every run of this workflow that has not ended.",
)
@click.option("--namespace", default=None, help="Only runs of this namespace (with a filter).")
@click.option("--reason", default=None, help="Why (recorded with each cancellation).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@world_option
@json_option
def cancel(
    run_ids: tuple[str, ...],
    status: str | None,
    workflow: str | None,
    namespace: str | None,
    reason: str | None,
    yes: bool,
    world_url: str | None,
    as_json: bool,
) -> None:
    """Cancel runs: their bodies get CancelledError, may clean up, and they end cancelled.

    Name the runs (RUN_ID...), or pick them with --status and/or --workflow: then the
    count is shown and confirmed first (unless --yes).
    """
    by_filter = status is not None or workflow is not None
    if by_filter == bool(run_ids):
        fail("name runs to cancel (RUN_ID...) or pick them with --status/--workflow, not both")

    async def go(world: World) -> dict[str, Any]:
        control = Control(world, world_url=resolve_world_url(world_url))
        ids = list(run_ids)
        if by_filter:
            ids = await _matching(world, status, workflow, namespace)
            if not ids:
                return {"matched": 0, "cancelled": [], "already_ended": {}}
            if not yes:
                what = " and ".join(
                    x
                    for x in (status and f"status {status}", workflow and f"workflow {workflow}")
                    if x
                )
                click.confirm(f"cancel {len(ids)} run(s) with {what}?", abort=True, err=True)
        cancelled, ended = [], {}
        for rid in ids:
            was = await control.cancel(rid, reason)
            if was is None:
                cancelled.append(rid)
            else:
                ended[rid] = was
        return {"matched": len(ids), "cancelled": cancelled, "already_ended": ended}

    out = run_async(with_world(world_url, go))
    if as_json:
        print_json(out)
        return
    for rid in out["cancelled"]:
        click.echo(f"cancellation of run {rid} requested")
    for rid, was in out["already_ended"].items():
        click.echo(f"run {rid} already ended ({was}); nothing to cancel")
    if by_filter:
        click.echo(f"{len(out['cancelled'])} run(s) cancelled")


async def _matching(
    world: World, status: str | None, workflow: str | None, namespace: str | None
) -> list[str]:
    """The ids of the runs that have not ended and match the filter."""
    statuses = [status] if status else ["pending", "running"]
    ids: list[str] = []
    for st in statuses:
        offset = 0
        while True:
            flt = RunFilter(
                status=st, workflow_name=workflow, namespace=namespace, limit=500, offset=offset
            )
            page = await world.list_runs(flt)
            ids += [r.run_id for r in page if r.status not in TERMINAL_STATUSES]
            if len(page) < 500:
                break
            offset += len(page)
    return ids


@click.command()
@click.argument("run_id", type=text_type)
@click.option(
    "--from-step",
    "from_step",
    required=True,
    type=int,
    help="The first durable call to run again (from 0, in call order: see `durably inspect run`).",
)
@click.option(
    "--deployment",
    default=None,
    help="Pin the fork to this deployment (default the source's; 'latest': the newest seen).",
)
@key_option
@world_option
@json_option
def fork(
    run_id: str,
    from_step: int,
    deployment: str | None,
    key: str | None,
    world_url: str | None,
    as_json: bool,
) -> None:
    """Start a new run that reuses RUN_ID's recorded results before --from-step and runs
    from there (on the deployment's current code). RUN_ID itself is not changed.

    The copied payloads are re-encrypted for the new run, so this needs the key
    (--key, $DURABLY_ENCRYPTION_KEY or the key file); nothing is shown in plaintext.
    """
    url = resolve_world_url(world_url)

    async def go(world: World) -> dict[str, Any]:
        ring = resolve_keyring(url, key, create=False)
        sealed = cast(World, EncryptedWorld(world, Sealer(ring)))
        new_id = await Control(sealed, world_url=url).fork(run_id, from_step, deployment=deployment)
        rec = await world.get_run(new_id)
        assert rec is not None
        return {
            "run_id": new_id,
            "fork_of": run_id,
            "from_step": from_step,
            "deployment": rec.deployment,
        }

    out = run_async(with_world(world_url, go))
    if as_json:
        print_json(out)
    else:
        click.echo(out["run_id"])


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Delete runs that ended longer ago than this (30d, 12h, seconds).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(sorted(TERMINAL_STATUSES)),
    help="Only runs that ended so (repeatable; default: any end).",
)
@click.option("--namespace", default=None, help="Only runs of this namespace.")
@click.option(
    "--batch",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Runs deleted per transaction.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@world_option
@json_option
def prune(
    older_than: str,
    statuses: tuple[str, ...],
    namespace: str | None,
    batch: int,
    yes: bool,
    world_url: str | None,
    as_json: bool,
) -> None:
    """Delete runs that ended longer ago than --older-than, with their events, payloads,
    steps, streams and hooks, in bounded batches. A run that has not ended is never
    deleted. Shows the count and asks first (unless --yes)."""
    try:
        age = parse_duration(older_than)
    except (ConfigurationError, DurablyError) as e:
        fail(str(e))
    cutoff = time.time() - age
    wanted = list(statuses) or None

    async def go(world: World) -> int:
        if not yes:
            found = await world.prune_runs(
                ended_before=cutoff,
                statuses=wanted,
                namespace=namespace,
                limit=_COUNT_LIMIT,
                dry_run=True,
            )
            if not found:
                return 0
            click.confirm(
                f"delete {len(found)} run(s) that ended before {older_than} ago, with "
                "everything they recorded?",
                abort=True,
                err=True,
            )
        control = Control(world, world_url=resolve_world_url(world_url))
        return await control.prune(
            ended_before=cutoff, statuses=wanted, namespace=namespace, batch=batch
        )

    deleted = run_async(with_world(world_url, go))
    if as_json:
        print_json({"deleted": deleted})
    else:
        click.echo(f"{deleted} run(s) deleted")
