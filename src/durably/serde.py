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

import base64
import binascii
import dataclasses
import enum
import inspect
import json
import sys
import types
import typing
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from math import isfinite
from typing import Any

from .errors import SerializationError

__all__ = ["TAG", "adapter_for", "decode", "encode", "validate"]

TAG = "$t"
"""The reserved key that marks a JSON object as a tagged value."""

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


# --------------------------------------------------------------------------- encoding


def encode(value: Any, *, where: str) -> bytes:
    """Serialize ``value`` to UTF-8 JSON bytes (see the module docstring for the format).

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


def _type_name(t: type) -> str:
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _pydantic_base() -> type | None:
    mod = sys.modules.get("pydantic.main")
    base = getattr(mod, "BaseModel", None) if mod is not None else None
    return base if isinstance(base, type) else None


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
        tname = _type_name(type(f.value))
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
        base = _pydantic_base()
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


# --------------------------------------------------------------------------- decoding


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

    Tagged classes are rebuilt only if already imported (see the module docstring); then,
    if ``annotation`` is a real annotation, the value is validated/converted against it.

    Raises:
        SerializationError: corrupt bytes, a malformed or unknown tag, a class that cannot
            be rebuilt from its stored fields, or a value that does not fit ``annotation``.
    """
    value: Any
    try:
        if data[:19] == _HEX_HEAD and data[-2:] == b'"}' and b'"' not in data[19:-2]:
            value = binascii.unhexlify(data[19:-2])  # encode()'s fast path, read back
        elif data[:19] == _BYTES_HEAD and data[-2:] == b'"}' and b'"' not in data[19:-2]:
            value = _unbase64(data[19:-2])  # encode()'s fast path for bytes, read back
        elif data[:1] == b'"' and data[-1:] == b'"' and len(data) > 1 and b"\\" not in data:
            # A str with nothing escaped: the JSON text is the string itself.
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
    base = _pydantic_base()
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
    if isinstance(v, datetime):
        # Keep the zone only if it agrees with the stored offset.
        return zoned if v.tzinfo is not None and zoned.utcoffset() == v.utcoffset() else v
    # A time with a ZoneInfo has no offset (isoformat wrote none), so it reads back naive.
    return zoned if v.tzinfo is None else v


_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}

_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "dict": lambda d: {k: x for k, x in d["v"]},
    "tuple": lambda d: tuple(d["v"]),
    "set": lambda d: set(d["v"]),
    "frozenset": lambda d: frozenset(d["v"]),
    "bytes": lambda d: _bytes_of(d),
    "bytearray": lambda d: bytearray(_bytes_of(d)),
    "float": lambda d: _FLOATS[d["v"]],
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


# --------------------------------------------------------------------------- validation

_NO_VALIDATION: tuple[Any, ...] = (inspect.Parameter.empty, Any, object)
_ADAPTERS: dict[Any, Any] = {}
_ADAPTERS_BY_ID: dict[int, tuple[Any, Any]] = {}


def adapter_for(annotation: Any) -> Any:
    """A cached ``pydantic.TypeAdapter`` for ``annotation``, or ``None`` for no validation.

    ``None`` is returned for missing/``Any``/``object`` annotations, string or forward
    references (they cannot be resolved here; resolve them with ``typing.get_type_hints``
    first), and anything pydantic cannot build a validator for.
    """
    if annotation is None or any(annotation is n for n in _NO_VALIDATION):
        return None
    try:
        return _ADAPTERS[annotation]
    except KeyError:
        adapter = _build_adapter(annotation)
        _ADAPTERS[annotation] = adapter
        return adapter
    except TypeError:  # unhashable annotation (e.g. Annotated with unhashable metadata)
        hit = _ADAPTERS_BY_ID.get(id(annotation))
        if hit is not None and hit[0] is annotation:
            return hit[1]
        adapter = _build_adapter(annotation)
        _ADAPTERS_BY_ID[id(annotation)] = (annotation, adapter)
        return adapter


def _build_adapter(annotation: Any) -> Any:
    if isinstance(annotation, (str, typing.ForwardRef)):
        return None
    try:
        from pydantic import TypeAdapter

        adapter = TypeAdapter(annotation)
    except Exception:
        return None
    if getattr(adapter, "pydantic_complete", True) is False:
        return None
    return adapter


#: From this size on, bytes are stored as hex rather than base64: a third larger, but
#: four times faster to read back (CPython decodes base64 a byte at a time).
HEX_FROM = 16 * 1024


def _bytes_doc(tag: str, value: bytes | bytearray) -> dict[str, Any]:
    if len(value) >= HEX_FROM:
        return {TAG: tag, "x": value.hex()}
    return {TAG: tag, "v": base64.b64encode(value).decode("ascii")}


_NONE_TYPE = type(None)
_EXACT = frozenset({str, int, float, bool, bytes})


def validate(value: Any, annotation: Any, *, where: str) -> Any:
    """Validate/convert ``value`` against ``annotation`` (pydantic, lax mode).

    A no-op for missing/``Any`` annotations and for annotations pydantic cannot handle.

    Raises:
        SerializationError: the value does not fit the annotation; names ``where``.
    """
    if annotation is None or annotation is inspect.Parameter.empty or annotation is Any:
        return value
    # The common cases need no pydantic round trip (this runs on every step call).
    if annotation is _NONE_TYPE:
        if value is None:
            return None
    elif annotation in _EXACT and type(value) is annotation:
        return value
    adapter = adapter_for(annotation)
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except Exception as e:
        errors = getattr(e, "errors", None)
        if callable(errors):
            try:
                detail = _describe_errors(errors(include_url=False))
            except Exception:
                detail = str(e)
        elif type(e).__module__.startswith("pydantic"):
            return value  # a schema problem, not a value problem: no validation
        else:
            detail = f"{type(e).__name__}: {e}"
        raise SerializationError(
            f"{where} does not match its annotation {_annotation_name(annotation)}: {detail}"
        ) from None


def _describe_errors(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in err["loc"])
        parts.append(f"{'value' + loc}: {err['msg']} (got {_short(err.get('input'))})")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _annotation_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return _type_name(annotation)
    return repr(annotation)
