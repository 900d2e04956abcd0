"""Payload encoding: values <-> UTF-8 JSON bytes, never pickle.

Every argument, result, hook payload and stream chunk is stored through :func:`encode` and
read back through :func:`decode`. Reading a payload never imports a module and never calls
anything a payload names, except the constructor of an enum, dataclass or pydantic model
class that is *already imported* in this process (looked up in ``sys.modules``).

Stored format
-------------
A payload is compact JSON (``,`` and ``:`` separators, UTF-8, strict: no ``NaN`` literals).
JSON ``null``, booleans, numbers, strings and arrays are themselves (arrays are lists).
A JSON object is a plain ``dict`` with ``str`` keys, unless it has the key ``"$t"``, in which
case it is a *tagged value* ``{"$t": TAG, ...}``:

============= =================================================================
TAG           rest of the object
============= =================================================================
``dict``      ``"v": [[key, value], ...]``; used for dicts with a non-``str`` key
              or with a ``"$t"`` key, so every dict round-trips
``tuple``     ``"v": [item, ...]``
``set``       ``"v": [item, ...]``
``frozenset`` ``"v": [item, ...]``
``bytes``     ``"v": "<standard base64>"``, or ``"x": "<hex>"`` from 16 KiB on
``bytearray`` as ``bytes``
``float``     ``"v": "nan" | "inf" | "-inf"`` (finite floats are plain numbers)
``datetime``  ``"v": "<isoformat, offset if aware>"``; optional ``"f": 1`` (fold) and
              ``"z": "<IANA zone key>"`` (a ``zoneinfo.ZoneInfo`` tzinfo; only applied on
              read when it gives the same offset, else the fixed offset is kept)
``date``      ``"v": "YYYY-MM-DD"``
``time``      ``"v": "<isoformat>"``; optional ``"f"`` and ``"z"`` as for datetime
``timedelta`` ``"v": [days, seconds, microseconds]``
``decimal``   ``"v": "<str(Decimal)>"`` (exact, including NaN/Infinity/-0)
``uuid``      ``"v": "<32 hex digits>"``
``enum``      ``"c": "module:qualname", "v": <member value>``
``dataclass`` ``"c": "module:qualname", "v": {field name: value, ...}``
``pydantic``  ``"c": "module:qualname", "v": {field name: value, ..., extras}``
============= =================================================================

Values inside tags are encoded the same way (recursively); ``"v"`` of dataclass/pydantic
is itself an encoded dict (so a ``"$t"`` extra key is safe). The format has no version:
tags are only ever added, never changed, so old payloads stay readable. An unknown tag is an
error (a payload written by a newer durably).

Classes are named ``module:qualname`` and resolved only from modules already in
``sys.modules`` through their ``__dict__`` (no ``__getattr__`` hooks, no imports). A name
that does not resolve to a class of the tagged kind leaves plain data: the enum member's
value, or the fields as a dict. With an annotation, :func:`decode` then validates/converts
the value through ``pydantic.TypeAdapter`` (lax mode), which rebuilds dataclasses, models,
enums and tuples from plain data.

Subclasses of ``str``/``int``/``float``/``dict``/``list``/``tuple``/``set``/``bytes`` and of
the date/time types (other than enums) are stored as their base type.
"""

from __future__ import annotations

from .decoding import decode
from .encoding import encode
from .tags import HEX_FROM, TAG
from .validation import adapter_for, validate

__all__ = ["HEX_FROM", "TAG", "adapter_for", "decode", "encode", "validate"]
