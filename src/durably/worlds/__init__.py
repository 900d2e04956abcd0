"""Worlds: where runs live. ``open_world(url)`` picks one by the URL's scheme
(:mod:`.urls` is the one place that reads it).

Built in: ``memory://`` (tests), ``sqlite:///PATH`` (the embedded default). Other
packages add worlds through the ``durably.worlds`` entry point group: the entry's name is
the URL scheme and its object a class taking the URL.
"""

from __future__ import annotations

import os

from .base import World
from .urls import KeyPolicy, key_policy, open_world, scheme_of

__all__ = [
    "DEFAULT_WORLD",
    "KeyPolicy",
    "World",
    "key_policy",
    "open_world",
    "resolve_world_url",
    "scheme_of",
]

DEFAULT_WORLD = "sqlite:///.durably/durably.db"


def resolve_world_url(url: str | None) -> str:
    """Constructor argument, then ``$DURABLY_WORLD``, then the embedded default."""
    return url or os.environ.get("DURABLY_WORLD") or DEFAULT_WORLD
