"""Stored bytes to values: :func:`decode`, which rebuilds only classes already imported.

The format is described in :mod:`durably.serde`.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import json
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ..errors import SerializationError
from .tags import TAG, pydantic_base
from .validation import validate

__all__ = ["decode"]

_BYTES_HEAD = b'{"$t":"bytes","v":"'
_HEX_HEAD = b'{"$t":"bytes","x":"'


def _bytes_of(doc: dict[str, Any]) -> bytes:
    """The bytes of a tagged bytes value: base64 in "v", or hex in "x" (large values)."""
    if "x" in doc:
        return binascii.unhexlify(doc["x"])
    return _unbase64(doc["v"])


def _unbase64(text: str | bytes) -> bytes:
    """Strict base64 (rejects stray characters) in C: ``b64decode(validate=True)``
    checks with a regular expression, ten times slower on a large payload."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error as e:
        raise ValueError(f"bad base64: {e}") from None


def decode(data: bytes, annotation: Any = None, *, where: str = "payload") -> Any:
    """Read a payload written by :func:`encode`.

    Tagged classes are rebuilt only if already imported (see :mod:`durably.serde`); then,
    if ``annotation`` is a real annotation, the value is validated/converted against it.

    Raises:
        SerializationError: corrupt bytes, a malformed or unknown tag, a class that cannot
            be rebuilt from its stored fields, or a value that does not fit ``annotation``.
    """
    value: Any
    try:
        if data == b"null":
            value = None  # what a step with nothing to return returns: no scan, no slices
        elif data[:19] == _HEX_HEAD and data[-2:] == b'"}' and b'"' not in data[19:-2]:
            value = binascii.unhexlify(data[19:-2])  # encode()'s fast path, read back
        elif data[:19] == _BYTES_HEAD and data[-2:] == b'"}' and b'"' not in data[19:-2]:
            value = _unbase64(data[19:-2])  # encode()'s fast path for bytes, read back
        elif (
            data[:1] == b'"'
            and data[-1:] == b'"'
            and len(data) > 1
            and b"\\" not in data
            and data.find(b'"', 1, -1) == -1
        ):
            # A str with nothing escaped: the JSON text is the string itself (an unescaped
            # quote inside would make it two strings, corrupt: the scanner says so).
            value = bytes(data[1:-1]).decode("utf-8")
        else:
            text = bytes(data).decode("utf-8")
            value, end = _scan_once(text, 0)
            if end != len(text) and text[end:].strip():
                raise ValueError(f"extra data at offset {end}")
    except StopIteration:
        raise SerializationError(
            f"cannot read {where}: the stored payload is corrupt (not durably JSON)"
        ) from None
    except SerializationError as e:
        raise SerializationError(f"cannot read {where}: {e}") from None
    except RecursionError:
        raise SerializationError(
            f"cannot read {where}: the stored payload is nested too deeply"
        ) from None
    except (ValueError, TypeError) as e:
        raise SerializationError(
            f"cannot read {where}: the stored payload is corrupt (not durably JSON): {e}"
        ) from None
    if annotation is None:
        return value
    return validate(value, annotation, where=where)


def _resolve(ref: Any) -> Any:
    """The object named ``module:qualname``, from ``sys.modules`` only; else ``None``."""
    if not isinstance(ref, str):
        return None
    modname, _, qualname = ref.partition(":")
    mod = sys.modules.get(modname)
    if mod is None or not qualname:
        return None
    obj: Any = mod
    for part in qualname.split("."):
        try:
            ns = vars(obj)
        except TypeError:
            return None
        obj = ns.get(part)
        if obj is None:
            return None
    return obj if isinstance(obj, type) else None


def _rebuild_failed(kind: str, ref: str, e: BaseException) -> SerializationError:
    return SerializationError(
        f"the stored {kind} {ref!r} cannot be rebuilt with the class as it is now "
        f"({type(e).__name__}: {e}); the class may have changed since the value was stored"
    )


def _dec_enum(d: dict[str, Any]) -> Any:
    cls, value = _resolve(d["c"]), d["v"]
    if cls is None or not issubclass(cls, enum.Enum):
        return value
    try:
        return cls(value)
    except Exception as e:
        raise _rebuild_failed("enum member", d["c"], e) from None


def _dec_dataclass(d: dict[str, Any]) -> Any:
    cls: Any = _resolve(d["c"])
    factory: Callable[..., Any] = cls
    fields = d["v"]
    if not isinstance(fields, dict):
        raise TypeError("dataclass fields must be an object")
    if cls is None or not dataclasses.is_dataclass(cls):
        return fields
    try:
        spec = {f.name: f for f in dataclasses.fields(cls)}
        init = {k: x for k, x in fields.items() if k in spec and spec[k].init}
        obj = factory(**init)
        for k, x in fields.items():
            if k in spec and not spec[k].init:
                object.__setattr__(obj, k, x)
    except Exception as e:
        raise _rebuild_failed("dataclass", d["c"], e) from None
    return obj


def _dec_pydantic(d: dict[str, Any]) -> Any:
    cls, fields = _resolve(d["c"]), d["v"]
    if not isinstance(fields, dict):
        raise TypeError("model fields must be an object")
    base = pydantic_base()
    if cls is None or base is None or not issubclass(cls, base):
        return fields
    data = dict(fields)
    for name, info in cls.model_fields.items():  # stored by name; validate by alias
        alias = info.validation_alias
        if not isinstance(alias, str):
            alias = info.alias
        if isinstance(alias, str) and alias != name and name in data:
            data[alias] = data.pop(name)
    try:
        if getattr(cls, "__pydantic_root_model__", False):
            return cls.model_validate(data.get("root"))
        return cls.model_validate(data)
    except Exception as e:
        raise _rebuild_failed("pydantic model", d["c"], e) from None


def _with_zone(v: Any, d: dict[str, Any]) -> Any:
    if d.get("f"):
        v = v.replace(fold=1)
    key = d.get("z")
    zi = sys.modules.get("zoneinfo")  # only if already imported: never import for a payload
    if not isinstance(key, str) or zi is None:
        return v
    try:
        zoned = v.replace(tzinfo=zi.ZoneInfo(key))
    except Exception:
        return v
    # Keep the zone only if it agrees with the stored offset. A time has an offset only
    # in a zone without transitions ("UTC", "Etc/GMT+5"); in any other zone isoformat
    # wrote none, and both sides are None.
    return zoned if zoned.utcoffset() == v.utcoffset() else v


_FLOATS = frozenset({"nan", "inf", "-inf"})


def _dec_float(d: dict[str, Any]) -> float:
    # A new float each time: NaNs differ from each other, so two stored NaNs must be
    # two objects again (one shared NaN would merge them in a set or as dict keys).
    if not isinstance(d["v"], str) or d["v"] not in _FLOATS:
        raise ValueError(f"not one of nan, inf, -inf: {d['v']!r}")
    return float(d["v"])


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "dict": lambda d: {k: x for k, x in d["v"]},
    "tuple": lambda d: tuple(d["v"]),
    "set": lambda d: set(d["v"]),
    "frozenset": lambda d: frozenset(d["v"]),
    "bytes": lambda d: _bytes_of(d),
    "bytearray": lambda d: bytearray(_bytes_of(d)),
    "float": _dec_float,
    "datetime": lambda d: _with_zone(datetime.fromisoformat(d["v"]), d),
    "date": lambda d: date.fromisoformat(d["v"]),
    "time": lambda d: _with_zone(time.fromisoformat(d["v"]), d),
    "timedelta": lambda d: timedelta(days=d["v"][0], seconds=d["v"][1], microseconds=d["v"][2]),
    "decimal": lambda d: Decimal(d["v"]),
    "uuid": lambda d: uuid.UUID(hex=d["v"]),
    "enum": _dec_enum,
    "dataclass": _dec_dataclass,
    "pydantic": _dec_pydantic,
}


def _object_hook(d: dict[str, Any]) -> Any:
    if TAG not in d:
        return d
    tag = d[TAG]
    dec = _DECODERS.get(tag) if isinstance(tag, str) else None
    if dec is None:
        raise SerializationError(
            f"unknown tag {tag!r} (written by a newer durably, or not a durably payload)"
        )
    try:
        return dec(d)
    except SerializationError:
        raise
    except Exception as e:
        raise SerializationError(
            f"malformed {tag!r} value in the stored payload ({type(e).__name__}: {e})"
        ) from None


_DECODER = json.JSONDecoder(object_hook=_object_hook)
_scan_once: Callable[[str, int], tuple[Any, int]] = getattr(_DECODER, "scan_once")  # noqa: B009
