"""World URLs: the one place a URL's scheme is read, mapped to its world class, and
asked what key the world uses when none is given.

Built in: ``memory://`` and ``sqlite://``. Other packages add worlds through the
``durably.worlds`` entry point group: the entry's name is the URL scheme and its object a
class taking the URL (``postgresql``/``postgres`` come that way, or from the optional
built-in Postgres world).

A world class may say where its default encryption key lives with a ``key_policy(url)``
class method returning a :class:`KeyPolicy`; one that does not has no default key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from ..errors import WorldError
from .base import World

__all__ = ["KeyPolicy", "check_text", "key_policy", "open_world", "scheme_of", "world_class"]

_POSTGRES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Where a world's encryption key comes from when none is given.

    Attributes:
        source: ``"file"`` (a key file, created on first use), ``"process"`` (a key
            made for this process and forgotten with it) or ``"none"`` (no default:
            starting without a key fails, naming ``durably keygen``).
        path: the key file, for ``"file"``.
        stored_key_id: for ``"file"``, asked before the key file is made: the id of the
            key that payloads already stored need (``None``: none is stored). A key file
            is never made beside data it could not read.
    """

    source: Literal["file", "process", "none"]
    path: Path | None = None
    stored_key_id: Callable[[], str | None] | None = None


NO_DEFAULT_KEY = KeyPolicy("none")


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased (``""`` if it has none)."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


#: The forms of the built-in worlds' URLs, for messages.
FORMS = (
    "sqlite:///relative/path.db (relative to the current folder), "
    "sqlite:////abs/path.db (absolute) or memory://"
)


def check_text(url: str, what: str = "world URL") -> None:
    """Refuse a URL (or a part of one, once decoded) holding a control character such as
    a NUL byte, which no file name or server address can hold.

    Raises:
        WorldError: names the character and where it is.
    """
    for i, ch in enumerate(url):
        if ord(ch) < 32 or ch == "\x7f":
            raise WorldError(
                f"the {what} {url!r} contains the control character {ch!r} at position "
                f"{i}; a world URL is plain text: check --world / $DURABLY_WORLD for stray "
                f"bytes. Write it as {FORMS}"
            )


def world_class(url: str) -> Any:
    """The class of the world ``url`` names (not yet made).

    Raises:
        WorldError: the URL holds a control character, has no ``SCHEME://``, or its
            scheme is not known; the message shows the forms that work.
    """
    check_text(url)
    scheme = scheme_of(url)
    if not scheme:
        head = url.split(":", 1)[0].lower() if ":" in url else ""
        slashes = f" ('{head}:' must be followed by '//')" if head.isalnum() and head else ""
        raise WorldError(
            f"the world URL {url!r} is not of the form SCHEME://...{slashes}; write it as "
            f"{FORMS}, or postgresql://USER@HOST/DB"
        )
    if scheme == "memory":
        from .memory import MemoryWorld

        return MemoryWorld
    if scheme == "sqlite":
        from .sqlite import SqliteWorld

        return SqliteWorld
    plugins = {ep.name: ep for ep in entry_points(group="durably.worlds")}
    if scheme in _POSTGRES and scheme not in plugins:
        # Either spelling opens the Postgres world registered under the other.
        ep = plugins.get("postgresql") or plugins.get("postgres")
        if ep is not None:
            return ep.load()
    if scheme in plugins:
        return plugins[scheme].load()
    known = sorted({"memory", "sqlite", *plugins})
    raise WorldError(
        f"unknown world URL {url!r}: the scheme {scheme!r} is not one of "
        f"{', '.join(s + '://' for s in known)}. Use for example 'sqlite:///.durably/durably.db' "
        "or 'memory://', or install the package that provides that world."
    )


def key_policy(url: str) -> KeyPolicy:
    """Where the world of ``url`` keeps its default encryption key.

    An unknown scheme (or a world that cannot be loaded) has none.

    Raises:
        WorldError: the URL is malformed (the world's ``key_policy`` says so).
    """
    try:
        cls = world_class(url)
    except (WorldError, ImportError):
        # No world to ask: none has a default key. Opening it reports what is wrong.
        return NO_DEFAULT_KEY
    policy = getattr(cls, "key_policy", None)
    if policy is None:
        return NO_DEFAULT_KEY
    found: KeyPolicy = policy(url)
    return found


def open_world(url: str) -> World:
    """Make (not yet open) the world for ``url``.

    Raises:
        WorldError: the scheme is not known (the message lists the ones that are), or
            the URL is malformed.
    """
    world: World = world_class(url)(url)
    return world
