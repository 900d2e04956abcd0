"""The ``durably`` command line: demo, worker, inspect; start, wake, cancel, fork, prune.

Every command takes ``--world URL`` (default ``$DURABLY_WORLD``, else the embedded
SQLite file) and, where it prints data, ``--json`` for scripts and coding agents.
"""

from __future__ import annotations

import click

from .commands import demo, worker
from .deployments import deployments_cmd, runs
from .flow import rates_cmd, schedules_cmd
from .inspect import inspect
from .locks import locks_cmd
from .mcp_cmd import mcp
from .migrate import migrate
from .operate import cancel, fork, prune, start, wake
from .replay import replay
from .security import keygen, rekey
from .skill import skill
from .web import web

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="durably")
def cli() -> None:
    """durably: durable execution where your code is the orchestrator."""


cli.add_command(demo)
cli.add_command(worker)
cli.add_command(inspect)
cli.add_command(start)
cli.add_command(wake)
cli.add_command(cancel)
cli.add_command(fork)
cli.add_command(prune)
cli.add_command(keygen)
cli.add_command(rekey)
cli.add_command(runs)
inspect.add_command(deployments_cmd)
inspect.add_command(schedules_cmd)
inspect.add_command(rates_cmd)
inspect.add_command(locks_cmd)
cli.add_command(web)
cli.add_command(skill)
cli.add_command(migrate)
cli.add_command(mcp)
cli.add_command(replay)


def main() -> None:
    """Entry point of the ``durably`` console script."""
    cli(prog_name="durably")
