"""``durably mcp``: the MCP server over stdio (see :mod:`durably.mcp_server`)."""

from __future__ import annotations

import click

from ..errors import DurablyError
from .common import fail, world_option
from .payloads import key_option

__all__ = ["mcp"]


@click.command("mcp")
@key_option
@world_option
def mcp(key: str | None, world_url: str | None) -> None:
    """Serve a Model Context Protocol server on stdin/stdout for coding agents.

    Its tools list and inspect runs, steps, events, streams and hooks, and cancel, wake,
    resume and fork runs, with the CLI's rules: payloads stay "<encrypted>" unless a
    tool is asked to decrypt (needs the key; recorded in the run's audit trail).
    Needs the extra: pip install "durably[mcp]". Register it with an agent as the
    command `durably mcp --world URL`.
    """
    from ..mcp_server import serve_stdio

    try:
        serve_stdio(world_url, key)
    except DurablyError as e:
        fail(str(e))
