"""How the dashboard shows a stored payload: the one place payload bytes become text.

Payloads are shown as stored. A payload that is encrypted (see :mod:`durably.crypto`)
stays opaque unless :func:`render_payload` is given an opener: the dashboard's audited
decrypt action makes one per payload from a :class:`Decryption`, which opens the payload
for its place (run, event or stream chunk) and remembers what it opened, for the
``data_decrypted`` record the action appends before the plaintext is sent. A payload that
is not encrypted (or once opened) is decoded with :func:`durably.serde.decode`, which
never imports a module or runs code a payload names.
"""

from __future__ import annotations

import dataclasses
import pprint
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import serde
from ..crypto import Sealer, is_sealed
from ..events import Event
from ..runtime.failures import decode_error_doc

__all__ = ["Decryption", "Opener", "PayloadView", "render_payload"]

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
        decrypted: the payload was encrypted and is shown in plaintext.
    """

    state: Literal["none", "value", "error", "encrypted", "undecodable"]
    size: int = 0
    text: str = ""
    note: str = ""
    error: dict[str, str] = field(default_factory=dict)
    decrypted: bool = False


#: Decrypts one stored payload for its place (raises ``DecryptionError`` if it does not).
Opener = Callable[[bytes], bytes]


def render_payload(
    payload: bytes | None, *, kind: PayloadKind, where: str, opener: Opener | None = None
) -> PayloadView:
    """Turn a stored payload into what the dashboard shows.

    Args:
        payload: the bytes as the world stores them (``None``: the event has none).
        kind: ``"args"`` (a call's arguments), ``"value"`` (a result, a hook payload, a
            stream chunk) or ``"error"`` (an error document: class, message, traceback).
        where: what the payload is, for messages.
        opener: decrypts this payload (from :meth:`Decryption.event` or
            :meth:`Decryption.chunk`); without one an encrypted payload stays opaque.

    Raises:
        DecryptionError: ``opener`` could not decrypt the payload (wrong or missing key,
            changed bytes); nothing is shown then.
    """
    if payload is None:
        return PayloadView("none")
    size = len(payload)
    decrypted = False
    if is_sealed(payload):
        if opener is None:
            return PayloadView("encrypted", size, note=f"{size:,} bytes, encrypted")
        payload, decrypted = opener(payload), True
    view = _decode(payload, size, kind, where)
    return dataclasses.replace(view, decrypted=True) if decrypted else view


def _decode(payload: bytes, size: int, kind: PayloadKind, where: str) -> PayloadView:
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


class Decryption:
    """The openers of one decrypted response, and what they opened (for its audit record).

    Made by the decrypt action with the dashboard's key; the page builders pass
    ``decryption.event(ev)`` or ``decryption.chunk(...)`` to :func:`render_payload` for
    every payload they show. Only payloads that were encrypted are counted.
    """

    def __init__(self, sealer: Sealer, runs: Collection[str] | None = None) -> None:
        self.sealer = sealer
        #: The runs whose payloads may be opened (``None``: any, for the decrypt
        #: action itself; a session's decryption opens only the runs granted to it).
        self.allowed = None if runs is None else frozenset(runs)
        #: run id -> sequence numbers of the events whose payloads were opened.
        self.events: dict[str, set[int]] = {}
        #: run id -> stream namespace -> indexes of the chunks opened.
        self.chunks: dict[str, dict[str, set[int]]] = {}

    def opens(self, run_id: str) -> bool:
        """Whether payloads of ``run_id`` may be opened."""
        return self.allowed is None or run_id in self.allowed

    def event(self, ev: Event) -> Opener | None:
        """The opener of ``ev``'s payload (``None``: its run is not granted)."""
        if not self.opens(ev.run_id):
            return None

        def open_event(payload: bytes) -> bytes:
            plain = self.sealer.open_event(ev.run_id, ev.seq, ev.type.value, ev.call, payload)
            self.events.setdefault(ev.run_id, set()).add(ev.seq)
            return plain

        return open_event

    def chunk(self, run_id: str, namespace: str, index: int) -> Opener | None:
        """The opener of chunk ``index`` of stream ``namespace`` of ``run_id`` (``None``:
        its run is not granted)."""
        if not self.opens(run_id):
            return None

        def open_chunk(payload: bytes) -> bytes:
            plain = self.sealer.open_chunk(run_id, namespace, index, payload)
            self.chunks.setdefault(run_id, {}).setdefault(namespace, set()).add(index)
            return plain

        return open_chunk

    def runs(self) -> list[str]:
        """The runs some of whose payloads were opened."""
        return sorted(set(self.events) | set(self.chunks))

    def seqs(self, run_id: str) -> list[int]:
        """The events of ``run_id`` whose payloads were opened."""
        return sorted(self.events.get(run_id, ()))

    def what(self, run_id: str) -> str:
        """What was opened of ``run_id``, for the audit record: ``"events"``, and the
        chunks by stream (``"events, chunks 0-49 of stream 'tokens'"``)."""
        parts = ["events"] if self.events.get(run_id) else []
        for namespace, indexes in sorted(self.chunks.get(run_id, {}).items()):
            parts.append(f"chunks {_ranges(indexes)} of stream {namespace or '(default)'!r}")
        return ", ".join(parts)


def _ranges(numbers: set[int]) -> str:
    """``{0, 1, 2, 5}`` as ``"0-2, 5"``."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


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
