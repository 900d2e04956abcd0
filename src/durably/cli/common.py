"""What every command shares: the --world and --json options, output helpers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ..errors import DurablyError, WorldError
from ..worlds import World, open_world, resolve_world_url

__all__ = [
    "fail",
    "fmt_duration",
    "fmt_time",
    "json_option",
    "print_json",
    "print_table",
    "run_async",
    "text_type",
    "with_world",
    "world_option",
]

T = TypeVar("T")


class _Text(click.ParamType[str]):
    """Text a world can be asked about: what the shell passes as undecodable bytes
    (lone surrogates) and NUL bytes are refused as a usage error, not a traceback."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(f"{text!r} is not UTF-8 text (check the terminal's encoding)", param, ctx)
        if "\x00" in text:
            self.fail(f"{text!r} holds a NUL character", param, ctx)
        return text


text_type = _Text()

world_option = click.option(
    "--world",
    "world_url",
    default=None,
    metavar="URL",
    help="World URL (default: $DURABLY_WORLD, else sqlite:///.durably/durably.db).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

# Piped output (scripts, agents) gets full lines rather than an 80-column wrap.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def fail(message: str) -> NoReturn:
    """Print an error to stderr and exit with status 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine, turning durably's errors into a clean message and exit 1."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except DurablyError as e:
        fail(str(e))


async def with_world(
    url: str | None, fn: Callable[[World], Awaitable[T]], *, read_only: bool = False
) -> T:
    """Open the world for ``url``, run ``fn`` with it, close it.

    Args:
        url: the ``--world`` option (``None``: ``$DURABLY_WORLD``, else the default).
        fn: what to do with the open world.
        read_only: the command only reads: a world that is not there (no database
            file) is an error, not created empty.

    Raises:
        WorldError: ``read_only`` and the world is not there; the message says where
            it was looked for and how to point at another.
    """
    resolved = resolve_world_url(url)
    world = open_world(resolved)
    missing = getattr(world, "missing", None)
    where = missing() if read_only and callable(missing) else None
    if where is not None:
        raise WorldError(
            f"no database at {where}: nothing to read (this command creates none). Pass "
            "--world URL or set $DURABLY_WORLD to the world your app uses "
            "(sqlite:///relative/path.db is relative to the current folder, "
            "sqlite:////abs/path.db is absolute)"
        )
    await world.open()
    try:
        return await fn(world)
    finally:
        await world.close()


def print_json(data: Any) -> None:
    """Print data as indented JSON."""
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """Print an aligned table."""
    table = Table(title=title or None, show_edge=False, header_style="bold", pad_edge=False)
    for col in columns:
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def fmt_time(ts: float | None) -> str:
    """A timestamp as local-free ISO text (UTC)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def fmt_duration(start: float | None, end: float | None) -> str:
    """The time between two timestamps, human sized."""
    if start is None or end is None:
        return "-"
    d = max(end - start, 0.0)
    if d < 1:
        return f"{d * 1000:.1f}ms"
    if d < 120:
        return f"{d:.2f}s"
    if d < 7200:
        return f"{d / 60:.1f}m"
    return f"{d / 3600:.1f}h"
