"""``durably web``: the dashboard, served by uvicorn."""

from __future__ import annotations

import click

from ..worlds import resolve_world_url
from .common import fail, world_option

__all__ = ["web"]


@click.command()
@world_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=8233, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
@click.option(
    "--token",
    envvar="DURABLY_WEB_TOKEN",
    default=None,
    metavar="TOKEN",
    help="Require this token on every request (default $DURABLY_WEB_TOKEN); "
    "needed to bind any address other than loopback.",
)
def web(world_url: str | None, host: str, port: int, token: str | None) -> None:
    """Serve the dashboard: runs, a timeline of each run, its hooks, streams and events,
    and actions (cancel, wake, rerun, resume a hook).

    Binds 127.0.0.1 by default. Any other address needs a token; open the dashboard once
    with ?token=TOKEN (a cookie keeps you signed in) or send `Authorization: Bearer TOKEN`.
    """
    import uvicorn

    from ..web import create_app
    from ..web.security import LOOPBACK_HOSTS, is_loopback

    if not is_loopback(host) and not token:
        fail(
            f"--host {host} would serve the dashboard beyond this machine: give it a token "
            "(--token TOKEN or $DURABLY_WEB_TOKEN), for example `--token $(openssl rand -hex 16)`"
        )
    url = resolve_world_url(world_url)
    app = create_app(world=url, token=token, allowed_hosts=None if token else LOOPBACK_HOSTS)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"durably web: {url}", err=True)
    login = "?token=TOKEN" if token else ""
    click.echo(f"durably web: open http://{shown}:{port}/{login}  (Ctrl-C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
