"""``durably inspect``: runs, one run's steps, its event log."""

from __future__ import annotations

import json

import click

from ..errors import RunNotFoundError
from ..worlds import World, resolve_world_url
from ..worlds.base import RunFilter
from .common import (
    fail,
    fmt_duration,
    fmt_time,
    json_option,
    print_json,
    print_table,
    run_async,
    with_world,
    world_option,
)

__all__ = ["inspect"]


@click.group()
def inspect() -> None:
    """Look at runs, their steps and their event logs."""


def _parse_attrs(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--attr takes KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = v
    return out


@inspect.command("runs")
@click.option(
    "--status", type=click.Choice(["pending", "running", "completed", "failed", "cancelled"])
)
@click.option("--workflow", default=None, help="Only runs of this workflow.")
@click.option("--namespace", default=None, help="Only runs of this namespace.")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Attribute filter.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@world_option
@json_option
def runs_cmd(
    status: str | None,
    workflow: str | None,
    namespace: str | None,
    attrs: tuple[str, ...],
    limit: int,
    world_url: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    flt = RunFilter(
        status=status,
        workflow_name=workflow,
        namespace=namespace,
        attributes=_parse_attrs(attrs),
        limit=limit,
    )

    async def go(world: World) -> None:
        runs = await world.list_runs(flt)
        if as_json:
            print_json([r.to_json() for r in runs])
            return
        print_table(
            ["run id", "workflow", "status", "created", "duration", "deployment", "attributes"],
            [
                [
                    r.run_id,
                    r.workflow_name,
                    r.status,
                    fmt_time(r.created_at),
                    fmt_duration(r.started_at, r.completed_at),
                    r.deployment,
                    " ".join(f"{k}={v}" for k, v in sorted(r.attributes.items())),
                ]
                for r in runs
            ],
        )
        if not runs:
            click.echo(f"no runs in {resolve_world_url(world_url)}")

    run_async(with_world(world_url, go))


@inspect.command("run")
@click.argument("run_id")
@world_option
@json_option
def run_cmd(run_id: str, world_url: str | None, as_json: bool) -> None:
    """Show one run: its status and its steps (status, attempts, timings)."""

    async def go(world: World) -> None:
        rec = await world.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(run_id, resolve_world_url(world_url))
        steps = await world.list_steps(run_id)
        if as_json:
            print_json({**rec.to_json(), "steps": [s.to_json() for s in steps]})
            return
        click.echo(f"run       {rec.run_id}")
        click.echo(f"workflow  {rec.workflow_name}")
        click.echo(f"status    {rec.status}" + (f" ({rec.error_type})" if rec.error_type else ""))
        click.echo(f"namespace {rec.namespace}   deployment {rec.deployment}")
        click.echo(
            f"created   {fmt_time(rec.created_at)}   started {fmt_time(rec.started_at)}   "
            f"took {fmt_duration(rec.started_at, rec.completed_at)}"
        )
        if rec.parent_run_id:
            click.echo(f"parent    {rec.parent_run_id}")
        if rec.attributes:
            attrs = " ".join(f"{k}={v}" for k, v in sorted(rec.attributes.items()))
            click.echo(f"attrs     {attrs}")
        click.echo("")
        print_table(
            ["#", "kind", "name", "status", "attempts", "started", "took", "detail"],
            [
                [
                    s.call,
                    s.kind,
                    s.name,
                    s.status,
                    s.attempts if s.kind == "step" else "",
                    fmt_time(s.started_at),
                    fmt_duration(s.started_at, s.completed_at),
                    s.error_type
                    or (f"until {fmt_time(s.due_at)}" if s.due_at else "")
                    or (s.child_run_id or ""),
                ]
                for s in steps
            ],
        )

    run_async(with_world(world_url, go))


@inspect.command("events")
@click.argument("run_id")
@world_option
@json_option
def events_cmd(run_id: str, world_url: str | None, as_json: bool) -> None:
    """Print a run's event log (payloads are shown by size only)."""

    async def go(world: World) -> None:
        if await world.get_run(run_id) is None:
            raise RunNotFoundError(run_id, resolve_world_url(world_url))
        events = await world.read_events(run_id)
        if as_json:
            print_json([e.to_json() for e in events])
            return
        print_table(
            ["seq", "time", "type", "call", "data", "payload"],
            [
                [
                    e.seq,
                    fmt_time(e.created_at),
                    e.type.value,
                    "" if e.call is None else e.call,
                    json.dumps(e.data, separators=(",", ":"), default=str) if e.data else "",
                    f"{len(e.payload)} B" if e.payload is not None else "",
                ]
                for e in events
            ],
        )

    run_async(with_world(world_url, go))
