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
@click.option(
    "--key",
    default=None,
    metavar="KEY",
    help="Key ring for the Decrypt action (default: $DURABLY_ENCRYPTION_KEY, else the "
    "SQLite world's key file, if there is one).",
)
def web(world_url: str | None, host: str, port: int, token: str | None, key: str | None) -> None:
    """Serve the dashboard: runs (counted by status, searched, each saying what it waits
    for or why it failed), a timeline of each run, its hooks, streams and events, the
    workers and what they hold, and actions (cancel one run or many, wake, rerun, resume
    a hook, decrypt payloads).

    Binds 127.0.0.1 by default. Any other address needs a token; open the dashboard once
    with ?token=TOKEN (a cookie keeps you signed in) or send `Authorization: Bearer TOKEN`.

    Encrypted payloads show as encrypted. With the key at hand (--key, else
    $DURABLY_ENCRYPTION_KEY, else the key file beside an SQLite database), a run's page and
    a step's page offer Decrypt: after a data_decrypted record (who, via which client,
    when, which events) is appended to the run, every page of that run shows its payloads
    in plaintext to that browser session (an hour at most, or until Hide plaintext).
    """
    from .._extras import require
    from ..errors import MissingExtraError

    try:
        require("web", "`durably web` (the dashboard)")
    except MissingExtraError as e:
        fail(str(e))
    import uvicorn

    from ..crypto import KeyRing
    from ..errors import ConfigurationError
    from ..web import create_app
    from ..web.security import LOOPBACK_HOSTS, is_loopback

    if not is_loopback(host) and not token:
        fail(
            f"--host {host} would serve the dashboard beyond this machine: give it a token "
            "(--token TOKEN or $DURABLY_WEB_TOKEN), for example `--token $(openssl rand -hex 16)`"
        )
    if key is not None:
        try:
            KeyRing.parse(key)
        except ConfigurationError as e:
            fail(f"--key: {e}")
    url = resolve_world_url(world_url)
    app = create_app(
        world=url,
        token=token,
        allowed_hosts=None if token else LOOPBACK_HOSTS,
        encryption_key=key,
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"durably web: {url}", err=True)
    login = "?token=TOKEN" if token else ""
    click.echo(f"durably web: open http://{shown}:{port}/{login}  (Ctrl-C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
