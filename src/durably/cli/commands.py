"""``durably demo``, ``durably worker``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

import click

from ..registry import Workflows
from ..worlds import resolve_world_url
from .common import fail, print_json, run_async, world_option

__all__ = ["demo", "load_registry", "worker"]


def load_registry(target: str) -> Workflows:
    """Import ``MODULE:ATTR`` and return the ``Workflows`` registry it names."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        fail(f"expected MODULE:ATTR (for example `myapp.workflows:wf`), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        fail(
            f"cannot import module {module_name!r} (from {target!r}): {type(e).__name__}: "
            f"{e}. Check the module path, and that the current directory or PYTHONPATH "
            "contains it."
        )
    obj = getattr(module, attr, None)
    if obj is None:
        fail(f"module {module_name!r} has no attribute {attr!r} (from {target!r})")
    if not isinstance(obj, Workflows):
        fail(
            f"{target!r} is a {type(obj).__name__}, not a durably Workflows registry; "
            "point at the object made by `wf = Workflows(...)`"
        )
    return obj


@click.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.option(
    "--concurrency",
    default=None,
    type=click.IntRange(1, 10_000),
    help="Steps run at once (default: the registry's, 16).",
)
@world_option
def worker(target: str, concurrency: int | None, world_url: str | None) -> None:
    """Run a worker for the registry MODULE:ATTR until SIGTERM or SIGINT.

    On a signal it stops claiming, lets running steps finish (10 s at most) and hands
    back what it holds, so other workers take over at once.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    registry = load_registry(target)
    if world_url:
        registry.world_url = resolve_world_url(world_url)
        registry._world = None  # reopened from the new URL on first use

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        click.echo(
            f"durably worker: serving {target} (namespace {registry.namespace!r}, "
            f"deployment {registry.deployment!r}) on {registry.world_url}",
            err=True,
        )
        await registry.serve(concurrency=concurrency, stop=stop)
        await registry.aclose()
        click.echo("durably worker: stopped", err=True)

    run_async(serve())


def durably_command() -> str:
    """How to run this very ``durably`` again from the current shell: ``durably`` when that
    is what the PATH finds, else the path of the script running (``.venv/bin/durably``
    after ``make demo``), else ``python -m durably`` with this interpreter."""
    script = sys.argv[0] if sys.argv else ""
    if Path(script).stem == "durably":
        on_path = shutil.which("durably")
        if on_path and Path(on_path).resolve() == Path(script).resolve():
            return "durably"
        return shlex.quote(script)
    python = sys.executable
    on_path = shutil.which("python")
    if on_path and Path(on_path).resolve() == Path(python).resolve():
        python = "python"
    return f"{shlex.quote(python)} -m durably"


@click.command()
@world_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(world_url: str | None, as_json: bool) -> None:
    """Run a small three-step workflow end to end and show where to look at it."""
    from ..demo import run_demo

    result = run_async(run_demo(world_url))
    if as_json:
        print_json(result)
        return
    click.echo(f"world:   {result['world']}")
    click.echo(f"run:     {result['run_id']}  ({result['status']})")
    click.echo(f"result:  {result['result']}")
    click.echo("")
    click.echo("look at it:")
    cmd = durably_command()
    world_arg = "" if world_url is None else f" --world {shlex.quote(world_url)}"
    click.echo(f"  {cmd} inspect run {result['run_id']}{world_arg}")
    click.echo(f"  {cmd} inspect events {result['run_id']}{world_arg}")
    click.echo(f"  {cmd} inspect runs{world_arg}")
