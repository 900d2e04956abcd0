"""Payload values as JSON for HTTP clients (and the CLI).

Results and stream chunks are sent as the plain JSON of the value when the value is plain
JSON data (``dict`` with ``str`` keys, ``list``/``tuple``, ``str``, ``int``, finite
``float``, ``bool``, ``None``), so a browser reads them as they are. Anything else (a
dataclass, a ``datetime``, ``bytes``, a ``set``...) is sent in serde's tagged form
(``{"$t": ...}``, described in :mod:`durably.serde`), which loses nothing.
"""

from __future__ import annotations

import json
from typing import Any

from .. import serde

__all__ = ["is_plain_json", "to_json_data", "to_json_text"]

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` is JSON data exactly (subclasses such as enums are not)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is float:
        return bool(value == value and value not in (float("inf"), float("-inf")))
    if kind is list or kind is tuple:
        return all(is_plain_json(v) for v in value)
    if kind is dict:
        return serde.TAG not in value and all(
            type(k) is str and is_plain_json(v) for k, v in value.items()
        )
    return False


def to_json_text(value: Any, *, where: str = "a value") -> str:
    """``value`` as compact JSON text: plain when it is JSON data, else serde's tagged form.

    Raises:
        SerializationError: the value cannot be stored as a payload at all.
    """
    if is_plain_json(value):
        return _DUMPS(value)
    return serde.encode(value, where=where).decode()


def to_json_data(value: Any, *, where: str = "a value") -> Any:
    """``value`` as JSON-ready data (see :func:`to_json_text`)."""
    if is_plain_json(value):
        return value
    return json.loads(serde.encode(value, where=where))
