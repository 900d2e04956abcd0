"""Worlds: where runs live. ``open_world(url)`` picks one by the URL's scheme.

Built in: ``memory://`` (tests), ``sqlite:///PATH`` (the embedded default). Other
packages add worlds through the ``durably.worlds`` entry point group: the entry's name is
the URL scheme and its object a class taking the URL.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

from ..errors import WorldError
from .base import World

__all__ = ["DEFAULT_WORLD", "World", "open_world", "resolve_world_url"]

DEFAULT_WORLD = "sqlite:///.durably/durably.db"


def resolve_world_url(url: str | None) -> str:
    """Constructor argument, then ``$DURABLY_WORLD``, then the embedded default."""
    return url or os.environ.get("DURABLY_WORLD") or DEFAULT_WORLD


def open_world(url: str) -> World:
    """Make (not yet open) the world for ``url``.

    Raises:
        WorldError: the scheme is not known; the message lists the ones that are.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        from .memory import MemoryWorld

        return MemoryWorld(url)
    if scheme == "sqlite":
        from .sqlite import SqliteWorld

        return SqliteWorld(url)
    plugins = {ep.name: ep for ep in entry_points(group="durably.worlds")}
    if scheme in ("postgresql", "postgres") and scheme not in plugins:
        plugins_pg = plugins.get("postgresql") or plugins.get("postgres")
        if plugins_pg is not None:
            cls: Any = plugins_pg.load()
            world: World = cls(url)
            return world
    if scheme in plugins:
        cls = plugins[scheme].load()
        world = cls(url)
        return world
    known = sorted({"memory", "sqlite", *plugins})
    raise WorldError(
        f"unknown world URL {url!r}: the scheme {scheme or '(none)'!r} is not one of "
        f"{', '.join(s + '://' for s in known)}. Use for example 'sqlite:///.durably/durably.db' "
        "or 'memory://', or install the package that provides that world."
    )
