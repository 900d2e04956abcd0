"""``durably inspect locks``: who holds each lock (and concurrency limit), who waits."""

from __future__ import annotations

import time

import click

from ..worlds import World, resolve_world_url
from ..worlds.locks import ADMISSION, LockEntry
from .common import (
    fmt_duration,
    json_option,
    print_json,
    print_table,
    run_async,
    text_type,
    with_world,
    world_option,
)

__all__ = ["locks_cmd"]


def _what(e: LockEntry) -> str:
    return "concurrency" if e.call == ADMISSION else f"lock (call {e.call})"


@click.command("locks")
@click.option("--key", default=None, type=text_type, help="Only this lock.")
@click.option("--run", "run_id", default=None, type=text_type, help="Only this run's entries.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@world_option
@json_option
def locks_cmd(
    key: str | None, run_id: str | None, limit: int, world_url: str | None, as_json: bool
) -> None:
    """List locks and concurrency limits: their holders, then their waiters in the order
    they will be granted (priority, then arrival).

    A key ``concurrency:<namespace>:<workflow>[:<key>]`` is a workflow's concurrency
    limit (its holders are runs started and not ended, its waiters pending runs).
    """

    async def go(world: World) -> None:
        entries = await world.list_locks(key=key, run_id=run_id, limit=limit)
        if as_json:
            print_json([e.to_json() for e in entries])
            return
        now = time.time()
        place: dict[str, int] = {}
        rows = []
        for e in entries:
            if e.holding:
                state = "holding"
            else:
                place[e.key] = place.get(e.key, 0) + 1
                state = f"waiting #{place[e.key]}"
            rows.append(
                [
                    e.key,
                    f"{sum(1 for x in entries if x.key == e.key and x.holding)}/{e.limit}",
                    state,
                    e.run_id,
                    e.workflow_name,
                    _what(e),
                    str(e.priority) if e.priority else "",
                    fmt_duration(e.queued_at, now),
                ]
            )
        print_table(
            ["key", "held", "state", "run id", "workflow", "for", "priority", "since"], rows
        )
        if not entries:
            click.echo(f"no lock is held or waited for in {resolve_world_url(world_url)}")

    run_async(with_world(world_url, go, read_only=True))
