"""Values to stored bytes: :func:`encode` and the walker that builds the tagged JSON tree.

The format is described in :mod:`durably.serde`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import json
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from math import isfinite
from typing import Any

from ..errors import SerializationError
from .tags import HEX_FROM, TAG, pydantic_base, type_name

__all__ = ["encode"]

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)
_ASCII_ENCODER = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, check_circular=False
)


def _no_default(o: Any) -> Any:
    raise TypeError(f"{type(o).__name__} is not JSON")


def _make_fast_encode() -> Callable[[Any], str]:
    """The C encoder built once (``JSONEncoder.encode`` rebuilds it on every call)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    esc = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or esc is None:
        return _ENCODER.encode
    try:
        c = make(None, _no_default, esc, None, ":", ",", False, False, False)
        if "".join(c({"a": [1, 2.5, None, True]}, 0)) != '{"a":[1,2.5,null,true]}':
            return _ENCODER.encode
    except Exception:
        return _ENCODER.encode

    def fast(tree: Any) -> str:
        return "".join(c(tree, 0))

    return fast


_encode_text = _make_fast_encode()

_SUPPORTED = (
    "None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset, "
    "datetime, date, time, timedelta, Decimal, UUID, Enum members, dataclass instances "
    "and pydantic models"
)


def encode(value: Any, *, where: str) -> bytes:
    """Serialize ``value`` to UTF-8 JSON bytes (the format: :mod:`durably.serde`).

    Args:
        value: the value to store.
        where: what the value is, for error messages (``"argument 'user' of step 'f'"``).

    Raises:
        SerializationError: ``value`` holds something that cannot be stored, or a cycle; the
            message names the type, the path inside ``value`` and ``where``.
    """
    t = type(value)
    if t is str:
        return _dump(value)
    if t is bytes or t is bytearray:
        # Base64/hex need no JSON escaping: skip the encoder's scan of a large text.
        tag = b"bytes" if t is bytes else b"bytearray"
        if len(value) >= HEX_FROM:
            return b'{"$t":"%s","x":"%s"}' % (tag, binascii.hexlify(value))
        return b'{"$t":"%s","v":"%s"}' % (tag, binascii.b2a_base64(value, newline=False))
    if value is None:
        return b"null"
    if t is bool:
        return b"true" if value else b"false"
    if t is int:
        try:
            return str(value).encode()
        except ValueError as e:  # more digits than int->str conversion allows
            raise SerializationError(f"cannot serialize {where}: {e}") from None
    try:
        plain = _is_plain(value)
    except RecursionError:  # a cycle, or very deep nesting: let the walker say which
        plain = False
    tree = value if plain else _Walker(where).tree(value)
    try:
        return _dump(tree)
    except ValueError as e:  # e.g. an int too long to convert to text
        raise SerializationError(f"cannot serialize {where}: {e}") from None


def _dump(tree: Any) -> bytes:
    text = _ENCODER.encode(tree) if type(tree) is str else _encode_text(tree)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: store them as \\u escapes
        return _ASCII_ENCODER.encode(tree).encode("ascii")


def _is_plain(v: Any) -> bool:
    """True when ``v`` is pure JSON that needs no tags (the common, fast case)."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return True
    if t is float:
        return isfinite(v)
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or k == TAG:
                return False
            tx = type(x)
            if tx is str or tx is int or tx is bool or x is None:
                continue
            if tx is float:
                if isfinite(x):
                    continue
                return False
            if not _is_plain(x):
                return False
        return True
    if t is list:
        for x in v:
            tx = type(x)
            if tx is str or tx is int or tx is bool or x is None:
                continue
            if not _is_plain(x):
                return False
        return True
    return False


class _Fail(Exception):
    """Internal: the walker met a value it cannot store; ``path`` grows while unwinding."""

    def __init__(self, value: Any, kind: str) -> None:
        super().__init__(kind)
        self.value = value
        self.kind = kind
        self.path: list[str] = []


def _class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _zone_key(tz: Any) -> str | None:
    zi = sys.modules.get("zoneinfo")
    if zi is not None and isinstance(tz, zi.ZoneInfo):
        key = tz.key
        return key if isinstance(key, str) else None
    return None


def _float_tree(v: float) -> Any:
    if isfinite(v):
        return float(v)
    return {TAG: "float", "v": "nan" if v != v else ("inf" if v > 0 else "-inf")}


def _datetime_tree(v: datetime) -> Any:
    out: dict[str, Any] = {TAG: "datetime", "v": v.isoformat()}
    if v.fold:
        out["f"] = 1
    key = _zone_key(v.tzinfo)
    if key is not None:
        out["z"] = key
    return out


def _time_tree(v: time) -> Any:
    out: dict[str, Any] = {TAG: "time", "v": v.isoformat()}
    if v.fold:
        out["f"] = 1
    key = _zone_key(v.tzinfo)
    if key is not None:
        out["z"] = key
    return out


_LEAVES: dict[type, Callable[[Any], Any]] = {
    str: lambda v: v,
    int: lambda v: v,
    bool: lambda v: v,
    type(None): lambda v: v,
    float: _float_tree,
    bytes: lambda v: _bytes_doc("bytes", v),
    bytearray: lambda v: _bytes_doc("bytearray", v),
    datetime: _datetime_tree,
    date: lambda v: {TAG: "date", "v": v.isoformat()},
    time: _time_tree,
    timedelta: lambda v: {TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda v: {TAG: "decimal", "v": str(v)},
    uuid.UUID: lambda v: {TAG: "uuid", "v": v.hex},
}

# Subclasses (other than enums) are stored as their base type; order matters.
_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (str, str.__str__),  # the base slots: a subclass cannot override what is stored
    (int, int.__index__),
    (float, lambda v: _float_tree(float.__float__(v))),
    (bytes, _LEAVES[bytes]),
    (bytearray, _LEAVES[bytearray]),
    (datetime, _datetime_tree),
    (date, _LEAVES[date]),
    (time, _time_tree),
    (timedelta, _LEAVES[timedelta]),
    (Decimal, _LEAVES[Decimal]),
    (uuid.UUID, _LEAVES[uuid.UUID]),
)


class _Walker:
    """Builds the tagged JSON tree of a value, detecting cycles and unsupported types."""

    __slots__ = ("active", "where")

    def __init__(self, where: str) -> None:
        self.where = where
        self.active: set[int] = set()

    def tree(self, value: Any) -> Any:
        try:
            return self._tree(value)
        except _Fail as f:
            raise SerializationError(self._message(f)) from None
        except RecursionError:
            raise SerializationError(
                f"cannot serialize {self.where}: the value is nested too deeply to store; "
                "flatten it (payloads must be trees of moderate depth)"
            ) from None

    def _message(self, f: _Fail) -> str:
        path = "value" + "".join(reversed(f.path))
        tname = type_name(type(f.value))
        if f.kind == "cycle":
            return (
                f"cannot serialize {self.where}: {path} refers back to a {tname} that "
                "contains it (a reference cycle); payloads must be trees, so break the "
                "cycle, e.g. store ids instead of back-references"
            )
        return (
            f"cannot serialize {self.where}: {path} is a {tname}, which durably cannot "
            f"store (it never pickles). Supported types: {_SUPPORTED}. Convert the value "
            "to one of these (e.g. a dataclass, a dict of its fields, or a str/id that can "
            "be looked up again) before passing it."
        )

    def _tree(self, v: Any) -> Any:
        t = type(v)
        leaf = _LEAVES.get(t)
        if leaf is not None:
            return leaf(v)
        if t is dict:
            return self._container(v, self._dict)
        if t is list:
            return self._container(v, self._list)
        if t is tuple:
            return self._container(v, lambda x: {TAG: "tuple", "v": self._list(x)})
        if t is set:
            return self._container(v, lambda x: {TAG: "set", "v": self._set(x)})
        if t is frozenset:
            return self._container(v, lambda x: {TAG: "frozenset", "v": self._set(x)})
        if isinstance(v, enum.Enum):
            return self._enum(v)
        base = pydantic_base()
        if base is not None and isinstance(v, base):
            return self._container(v, self._model)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return self._container(v, self._dataclass)
        if isinstance(v, dict):
            return self._container(v, self._dict)
        if isinstance(v, list):
            return self._container(v, self._list)
        if isinstance(v, tuple):
            return self._container(v, lambda x: {TAG: "tuple", "v": self._list(x)})
        if isinstance(v, frozenset):
            return self._container(v, lambda x: {TAG: "frozenset", "v": self._set(x)})
        if isinstance(v, set):
            return self._container(v, lambda x: {TAG: "set", "v": self._set(x)})
        for cls, conv in _BASES:
            if isinstance(v, cls):
                return conv(v)
        raise _Fail(v, "unsupported")

    def _container(self, v: Any, build: Callable[[Any], Any]) -> Any:
        key = id(v)
        if key in self.active:
            raise _Fail(v, "cycle")
        self.active.add(key)
        try:
            return build(v)
        finally:
            self.active.discard(key)

    def _list(self, v: Any) -> list[Any]:
        out: list[Any] = []
        i = 0
        try:
            for i, x in enumerate(v):  # noqa: B007 - i is read when unwinding
                out.append(self._tree(x))
        except _Fail as f:
            f.path.append(f"[{i}]")
            raise
        return out

    def _set(self, v: Any) -> list[Any]:
        out: list[Any] = []
        try:
            for x in v:
                out.append(self._tree(x))
        except _Fail as f:
            f.path.append("{<item>}")
            raise
        return out

    def _dict(self, v: Any) -> Any:
        plain = True
        for k in v:
            if type(k) is not str or k == TAG:
                plain = False
                break
        if plain:
            out: dict[str, Any] = {}
            k = ""
            try:
                for k, x in v.items():
                    out[k] = self._tree(x)
            except _Fail as f:
                f.path.append(f"[{k!r}]")
                raise
            return out
        pairs: list[list[Any]] = []
        i, kv, in_key = 0, None, True
        try:
            for i, (kv, x) in enumerate(v.items()):  # noqa: B007
                in_key = True
                ek = self._tree(kv)
                in_key = False
                pairs.append([ek, self._tree(x)])
        except _Fail as f:
            f.path.append(f"[<key #{i}>]" if in_key else f"[{kv!r}]")
            raise
        return {TAG: "dict", "v": pairs}

    def _enum(self, v: enum.Enum) -> Any:
        try:
            value = self._tree(v.value)
        except _Fail as f:
            f.path.append(".value")
            raise
        return {TAG: "enum", "c": _class_ref(type(v)), "v": value}

    def _fields(self, fields: dict[str, Any]) -> Any:
        try:
            return self._dict(fields)
        except _Fail as f:
            # ``_dict`` appended ``['name']``: show it as an attribute.
            last = f.path[-1]
            if last.startswith("['") and last.endswith("']"):
                f.path[-1] = "." + last[2:-2]
            raise

    def _dataclass(self, v: Any) -> Any:
        fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        return {TAG: "dataclass", "c": _class_ref(type(v)), "v": self._fields(fields)}

    def _model(self, v: Any) -> Any:
        cls = type(v)
        fields = {name: getattr(v, name) for name in cls.model_fields}
        extra = getattr(v, "__pydantic_extra__", None)
        if extra:
            fields.update(extra)
        return {TAG: "pydantic", "c": _class_ref(cls), "v": self._fields(fields)}


def _bytes_doc(tag: str, value: bytes | bytearray) -> dict[str, Any]:
    if len(value) >= HEX_FROM:
        return {TAG: tag, "x": value.hex()}
    return {TAG: tag, "v": base64.b64encode(value).decode("ascii")}
