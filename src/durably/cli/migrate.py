"""``durably migrate``: create or upgrade a world's schema now, rather than on first use."""

from __future__ import annotations

import click

from ..worlds import open_world, resolve_world_url
from .common import print_json, run_async, world_option

__all__ = ["migrate"]


@click.command()
@world_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def migrate(world_url: str | None, as_json: bool) -> None:
    """Create the world's schema or bring it up to date, then print its version.

    Workers and apps do this on start anyway (safely, several at once); run it from a
    deploy step when the code's database role may not change the schema.
    """

    async def go() -> int | None:
        world = open_world(resolve_world_url(world_url))
        apply = getattr(world, "migrate", None)
        if apply is not None:
            return int(await apply())
        await world.open()  # worlds without explicit migrations migrate on open
        await world.close()
        return None

    url = resolve_world_url(world_url)
    version = run_async(go())
    shown = getattr(open_world(url), "config", None)
    where = getattr(shown, "display", None) or url.split("@")[-1]
    if as_json:
        print_json({"world": where, "schema_version": version})
    elif version is None:
        click.echo(f"{where}: schema up to date")
    else:
        click.echo(f"{where}: schema up to date (version {version})")
