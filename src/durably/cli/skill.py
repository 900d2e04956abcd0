"""``durably skill``: print the agent skill (how to write, run, inspect and debug
durably workflows from the command line), shipped in the package as ``SKILL.md``."""

from __future__ import annotations

from importlib.resources import files

import click

__all__ = ["skill", "skill_text"]


def skill_text() -> str:
    """The text of ``durably/SKILL.md``."""
    return files("durably").joinpath("SKILL.md").read_text(encoding="utf-8")


@click.command()
def skill() -> None:
    """Print SKILL.md: how a coding agent writes, runs, inspects and debugs workflows.

    Save it where your agent reads skills, e.g.
    `durably skill > .claude/skills/durably/SKILL.md`.
    """
    click.echo(skill_text(), nl=False)
