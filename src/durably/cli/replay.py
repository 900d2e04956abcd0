"""``durably replay FILE MODULE:ATTR``: check new code against exported histories.

Exit status: 0 when every history replays (the code is compatible with those runs), 1
at the first history that diverges (the step index counted from 0, what the log has,
what the code called), 2 on bad input (no such file, not a history, a workflow the
registry lacks, a target that does not import).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import HistoryError
from ..testing.history import load_history
from ..testing.replay import ReplayReport, check_history
from .commands import load_registry
from .common import json_option, print_json, text_type

__all__ = ["replay"]


def _bad_input(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _files(target: str) -> list[Path]:
    path = Path(target)
    if path.is_dir():
        found = sorted(path.glob("*.json"))
        if not found:
            _bad_input(f"no *.json history in folder {target}")
        return found
    if not path.exists():
        _bad_input(
            f"no history file at {target}; write one with "
            "`durably inspect events RUN_ID --export FILE`"
        )
    return [path]


@click.command("replay")
@click.argument("file", metavar="FILE", type=text_type)
@click.argument("target", metavar="MODULE:ATTR")
@json_option
def replay(file: str, target: str, as_json: bool) -> None:
    """Replay the exported history FILE (or every *.json in a folder) against the
    workflows of the registry MODULE:ATTR, running no step.

    Exits 0 when the code replays every history unchanged, 1 with the first divergence
    (the step index, counted from 0 in call order; what the log has; what the code
    called), 2 on bad input. Write histories with
    `durably inspect events RUN_ID --export FILE`."""
    paths = _files(file)
    try:
        wf = load_registry(target)
    except SystemExit:
        sys.exit(2)  # load_registry said why
    reports: list[ReplayReport] = []
    for path in paths:
        try:
            reports.append(check_history(load_history(path), wf))
        except HistoryError as e:
            _bad_input(str(e))
        if not reports[-1].ok:
            break
    if as_json:
        print_json([r.to_json() for r in reports])
    else:
        for r in reports:
            _say(r, target)
    sys.exit(0 if all(r.ok for r in reports) else 1)


def _say(r: ReplayReport, target: str) -> None:
    d = r.divergence
    if d is None:
        click.echo(
            f"ok: {r.source}: run {r.run_id} ({r.workflow}, {r.events} events, {r.calls} "
            f"calls) replays against {target}"
        )
        return
    click.echo(
        f"DIVERGED: {r.source}: run {r.run_id} ({r.workflow}) at step {d.index} "
        f"(event {d.seq})\n"
        f"  the log has:     {d.recorded}\n"
        f"  the code called: {d.called}\n"
        f"{d.message}"
    )
