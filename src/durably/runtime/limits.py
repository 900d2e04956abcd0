"""Size limits on what a run may store."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on stored payloads; a call over one raises ``PayloadTooLargeError``.

    Attributes:
        max_payload_bytes: one serialized payload (arguments, a result, an error).
        max_run_bytes: all stored payloads of one run together.
    """

    max_payload_bytes: int = 50 * 1024 * 1024
    max_run_bytes: int = 2 * 1024 * 1024 * 1024
