"""How the dashboard shows a stored payload: the one place payload bytes become text.

Payloads are shown as stored. A payload that is encrypted (see :mod:`durably.crypto`)
stays opaque here: reading plaintext is an audited decrypt action, which belongs in
:func:`render_payload` and nowhere else. A payload that is not encrypted is decoded with
:func:`durably.serde.decode`, which never imports a module or runs code a payload names.
"""

from __future__ import annotations

import pprint
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import serde
from ..crypto import is_sealed
from ..runtime.failures import decode_error_doc

__all__ = ["PayloadView", "render_payload"]

#: Longest text shown for one payload; the rest is cut (the size is still shown).
MAX_TEXT = 64 * 1024

PayloadKind = Literal["value", "args", "error"]


@dataclass(frozen=True, slots=True)
class PayloadView:
    """A payload ready for a template.

    Attributes:
        state: ``"none"`` (no payload), ``"value"`` (decoded: ``text``), ``"error"`` (an
            error document: ``error``), ``"encrypted"`` or ``"undecodable"`` (``note``).
        size: the stored size in bytes.
    """

    state: Literal["none", "value", "error", "encrypted", "undecodable"]
    size: int = 0
    text: str = ""
    note: str = ""
    error: dict[str, str] = field(default_factory=dict)


def render_payload(payload: bytes | None, *, kind: PayloadKind, where: str) -> PayloadView:
    """Turn a stored payload into what the dashboard shows.

    Args:
        payload: the bytes as the world stores them (``None``: the event has none).
        kind: ``"args"`` (a call's arguments), ``"value"`` (a result, a hook payload, a
            stream chunk) or ``"error"`` (an error document: class, message, traceback).
        where: what the payload is, for messages.
    """
    if payload is None:
        return PayloadView("none")
    size = len(payload)
    if is_sealed(payload):
        return PayloadView(
            "encrypted",
            size,
            note=f"{size:,} bytes, encrypted; decrypting in the dashboard is not available yet "
            "(use a process that holds the key)",
        )
    if kind == "error":
        try:
            doc = decode_error_doc(payload)
        except (ValueError, UnicodeDecodeError):
            return PayloadView("undecodable", size, note=f"{size:,} bytes (not an error document)")
        error = {
            "type": ".".join(
                p for p in (str(doc.get("module", "")), str(doc.get("qualname", ""))) if p
            ),
            "name": str(doc.get("qualname", "Exception")),
            "message": _cut(str(doc.get("message", ""))),
            "traceback": _cut(str(doc.get("traceback", ""))),
        }
        return PayloadView("error", size, error=error)
    try:
        value = serde.decode(payload, where=where)
    except Exception as e:  # a payload written by a newer durably, or damaged
        return PayloadView("undecodable", size, note=f"{size:,} bytes (cannot decode: {e})")
    if kind == "args":
        return PayloadView("value", size, text=_cut(_format_args(value)))
    return PayloadView("value", size, text=_cut(_format(value)))


def _format(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def _format_args(value: Any) -> str:
    """Arguments as a call: ``("u1", 3, retries=2)``."""
    if not (isinstance(value, dict) and set(value) <= {"a", "k"}):
        return _format(value)
    parts = [_format(v) for v in value.get("a") or ()]
    parts += [f"{k}={_format(v)}" for k, v in (value.get("k") or {}).items()]
    one_line = "(" + ", ".join(parts) + ")"
    if len(one_line) <= 100 and "\n" not in one_line:
        return one_line
    return "(\n" + "".join("    " + p.replace("\n", "\n    ") + ",\n" for p in parts) + ")"


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT:,} more characters not shown)"
