"""``durably inspect schedules`` and ``durably inspect rates``: flow control across runs."""

from __future__ import annotations

import time

import click

from ..schedules import describe_schedules
from ..worlds import World
from .common import (
    fmt_time,
    json_option,
    print_json,
    print_table,
    run_async,
    text_type,
    with_world,
    world_option,
)

__all__ = ["rates_cmd", "schedules_cmd"]


@click.command("schedules")
@click.option("--namespace", default=None, type=text_type, help="Only this namespace.")
@world_option
@json_option
def schedules_cmd(namespace: str | None, world_url: str | None, as_json: bool) -> None:
    """List scheduled workflows with their next tick and last run.

    A schedule is registered by the workers of the code that declares it
    (``@wf.workflow(schedule=...)``); each tick becomes one run. An overdue next tick
    means no worker of that code is running.
    """

    async def go(world: World) -> None:
        rows = await describe_schedules(world, namespace)
        if as_json:
            print_json(rows)
            return
        print_table(
            ["namespace", "workflow", "schedule", "next tick", "last tick", "last run", ""],
            [
                [
                    r["namespace"],
                    r["workflow"],
                    f"{r['cron']} ({r['timezone']}, catch_up={r['catch_up']})",
                    r["next_tick_local"],
                    r["last_tick_local"] or "-",
                    f"{r['last_run_id']} ({r['last_run_status']})" if r["last_run_id"] else "-",
                    "OVERDUE: is a worker running?" if r["overdue"] else "",
                ]
                for r in rows
            ],
        )
        if not rows:
            click.echo(
                "no schedules: a workflow declared with @wf.workflow(schedule=...) is "
                "registered when a worker of its code starts"
            )

    run_async(with_world(world_url, go, read_only=True))


@click.command("rates")
@world_option
@json_option
def rates_cmd(world_url: str | None, as_json: bool) -> None:
    """List rate limiters with the step starts of their current window.

    Limiters are named by steps (``@wf.step(rate_limit="openai:60/min")``) and shared by
    every run and worker of the world.
    """

    async def go(world: World) -> None:
        now = time.time()
        rates = await world.list_rates()
        if as_json:
            print_json([r.to_json() for r in rates])
            return
        print_table(
            ["limiter", "starts in the last minute", "starts kept (its window)", "last start"],
            [
                [
                    r.name,
                    sum(1 for s in r.starts if s > now - 60),
                    len(r.starts),
                    fmt_time(max(r.starts)) if r.starts else "-",
                ]
                for r in rates
            ],
        )
        if not rates:
            click.echo("no rate limiters have started a step yet")

    run_async(with_world(world_url, go, read_only=True))
