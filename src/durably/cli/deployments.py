"""``durably inspect deployments`` and ``durably runs move``."""

from __future__ import annotations

import time

import click

from ..worlds import World
from .common import (
    fmt_time,
    json_option,
    print_json,
    print_table,
    run_async,
    with_world,
    world_option,
)

__all__ = ["deployments_cmd", "runs"]

#: A deployment whose workers were last seen longer ago than this, with runs in flight,
#: is flagged: its runs wait for a worker that may never come back.
STRANDED_AFTER = 300.0


@click.command("deployments")
@click.option("--namespace", default=None, help="Only this namespace.")
@click.option(
    "--stale-after",
    default=STRANDED_AFTER,
    show_default=True,
    type=float,
    help="Seconds without a live worker after which runs in flight count as stranded.",
)
@world_option
@json_option
def deployments_cmd(
    namespace: str | None, stale_after: float, world_url: str | None, as_json: bool
) -> None:
    """List deployments with their runs in flight; flag stranded runs (runs pinned to a
    deployment that has had no live worker for a while)."""

    async def go(world: World) -> None:
        now = time.time()
        rows = await world.list_deployments(namespace)
        out = []
        for d in rows:
            stranded = d.in_flight > 0 and (now - d.last_seen) > stale_after
            out.append({**d.to_json(), "stranded": stranded})
        if as_json:
            print_json(out)
            return
        print_table(
            ["namespace", "deployment", "first seen", "last worker seen", "in flight", ""],
            [
                [
                    d["namespace"],
                    d["deployment"],
                    fmt_time(d["first_seen"] or None),
                    fmt_time(d["last_seen"] or None),
                    d["in_flight"],
                    "STRANDED: no live worker" if d["stranded"] else "",
                ]
                for d in out
            ],
        )
        if any(d["stranded"] for d in out):
            click.echo(
                "\nstranded runs wait for a worker of their deployment; start one, or move "
                "them with `durably runs move --from OLD --to NEW` if the code is compatible"
            )

    run_async(with_world(world_url, go, read_only=True))


@click.group()
def runs() -> None:
    """Operate on many runs at once."""


@runs.command("move")
@click.option("--from", "from_dep", required=True, help="Deployment the runs are pinned to.")
@click.option("--to", "to_dep", required=True, help="Deployment to pin them to.")
@click.option("--namespace", default="default", show_default=True)
@world_option
@json_option
def move(from_dep: str, to_dep: str, namespace: str, world_url: str | None, as_json: bool) -> None:
    """Re-pin runs that are waiting (not mid-step) from one deployment to another.

    Use it when you know the new code replays the old runs' histories (same durable
    calls in the same order); a run whose replay diverges fails with NonDeterminismError.
    Runs with a step in flight stay; run the command again once it finished.
    """

    async def go(world: World) -> int:
        return await world.move_runs(namespace, from_dep, to_dep)

    moved = run_async(with_world(world_url, go))
    if as_json:
        print_json({"moved": moved, "from": from_dep, "to": to_dep})
    else:
        click.echo(f"moved {moved} run(s) from deployment {from_dep!r} to {to_dep!r}")
