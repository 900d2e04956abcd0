"""Run attributes: plaintext key/value metadata on a run, searchable from the CLI.

``await set_attributes(phase="charging")`` and ``await remove_attributes("phase")`` work
in a workflow body (recorded as a durable call, so replays agree) and in a step
(recorded as a fact at once).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from .control import Control
from .errors import ConfigurationError
from .runtime.context import SERVICES, STEP, check_attempt_live, current_instance

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_KEY_CHARS",
    "MAX_VALUE_BYTES",
    "check_attributes",
    "remove_attributes",
    "set_attributes",
]

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 256
MAX_ATTRIBUTES = 64


def check_attributes(attrs: dict[str, Any]) -> dict[str, str]:
    """``attrs`` as stored attributes (text values), checked against the limits.

    Raises:
        ConfigurationError: a key or value is empty, too long or of another type, or
            there are more than :data:`MAX_ATTRIBUTES`.
    """
    if len(attrs) > MAX_ATTRIBUTES:
        raise ConfigurationError(f"a run has at most {MAX_ATTRIBUTES} attributes")
    out: dict[str, str] = {}
    for key, value in attrs.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise ConfigurationError(
                f"attribute key {key[:40]!r} must have 1 to {MAX_KEY_CHARS} characters"
            )
        if not isinstance(value, str | int | float | bool):
            raise ConfigurationError(
                f"attribute {key!r} must be a string (or a number or bool), got "
                f"{type(value).__name__}"
            )
        text = str(value)
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise ConfigurationError(
                f"attribute {key!r} is {len(text.encode())} bytes; values are at most "
                f"{MAX_VALUE_BYTES} bytes (store larger data in a step result)"
            )
        out[key] = text
    return out


def _check_count(current: dict[str, str], changes: dict[str, str], removals: list[str]) -> None:
    after = (set(current) | set(changes)) - set(removals)
    if len(after) > MAX_ATTRIBUTES:
        raise ConfigurationError(
            f"a run has at most {MAX_ATTRIBUTES} attributes; this change would make "
            f"{len(after)} (remove some with remove_attributes())"
        )


async def _done() -> None:
    return None


def set_attributes(**attrs: Any) -> Awaitable[None]:
    """Set attributes on the current run (from a workflow body or a step)."""
    return _change(check_attributes(attrs), [])


def remove_attributes(*keys: str) -> Awaitable[None]:
    """Remove attributes from the current run (from a workflow body or a step)."""
    return _change({}, [str(k) for k in keys])


def _change(changes: dict[str, str], removals: list[str]) -> Awaitable[None]:
    inst = current_instance()
    if inst is not None:
        _check_count(inst.attributes, changes, removals)
        inst.set_attributes(changes, removals)
        return _done()
    meta, services = STEP.get(), SERVICES.get()
    if meta is None or services is None:
        raise RuntimeError("set_attributes()/remove_attributes() work in a workflow or a step")
    check_attempt_live("an attribute change")
    return _from_step(services.world, meta.run_id, changes, removals)


async def _from_step(world: Any, run_id: str, changes: dict[str, str], removals: list[str]) -> None:
    rec = await world.get_run(run_id)
    if rec is not None:
        _check_count(rec.attributes, changes, removals)
    await Control(world).set_attributes(run_id, changes, removals)
