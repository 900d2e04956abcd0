"""Properties of the payload format: every supported value round-trips exactly, and any
bytes at all either decode or raise ``SerializationError``, importing and calling nothing."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
from hypothesis import example, given
from hypothesis import strategies as st

from durably import serde
from durably.errors import SerializationError
from tests.serde.values import Color, Holder, Level, Perm, Point, User

# -- values -------------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text().filter(lambda k: k != serde.TAG), inner, max_size=4)
    ),
    max_leaves=20,
)

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
tzinfos = st.none() | fixed_offsets | st.timezones()
datetimes = st.datetimes(timezones=tzinfos, allow_imaginary=True)
times = st.times(timezones=st.none() | fixed_offsets | st.timezones())
decimals = st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [Decimal("-0"), Decimal("1.000"), Decimal("sNaN"), Decimal("-NaN"), Decimal("1E+999")]
)

# Hashable leaves: usable as dict keys and set members.
hashable_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # nan and the infinities included
    | st.text()
    | st.binary(max_size=40)
    | datetimes
    | st.dates()
    | times
    | st.timedeltas()
    | decimals.filter(lambda d: not d.is_snan())  # a signalling NaN cannot be hashed
    | st.uuids()
    | st.sampled_from(Color)
    | st.sampled_from(Level)
    | st.sampled_from([Perm.R, Perm.W, Perm.R | Perm.W])
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
leaves = hashable_leaves | decimals | st.binary(min_size=serde.HEX_FROM, max_size=serde.HEX_FROM)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(), inner, max_size=4)  # "$t" keys included
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
        | st.builds(bytearray, st.binary(max_size=20))
        | st.builds(Point, st.integers(), st.integers())
        | st.builds(Holder, st.lists(inner, max_size=3))
    )


users = st.builds(
    User,
    user_id=st.text(),
    joined=datetimes,
    point=st.none() | st.builds(Point, st.integers(), st.integers()),
    color=st.sampled_from(Color),
)
stored_values = st.recursive(leaves | users, _containers, max_leaves=25)


def canon(v: Any) -> Any:
    """A comparable form of ``v`` that tells apart what ``==`` does not (types, nan,
    -0.0, Decimal exponents, time zones and folds)."""
    t = type(v)
    if t is float:
        return ("float", "nan" if v != v else repr(v))
    if t in (datetime, time, date, timedelta, Decimal, uuid.UUID):
        return (t.__name__, repr(v))
    if isinstance(v, enum.Enum):
        return ("enum", t.__qualname__, v.name, canon(v.value))
    if t in (list, tuple):
        return (t.__name__, tuple(canon(x) for x in v))
    if t is dict:
        return ("dict", tuple((canon(k), canon(x)) for k, x in v.items()))
    if t in (set, frozenset):
        return (t.__name__, tuple(sorted((canon(x) for x in v), key=repr)))
    if dataclasses.is_dataclass(v):
        return (t.__qualname__, canon({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}))
    if isinstance(v, pydantic.BaseModel):
        return (t.__qualname__, canon({n: getattr(v, n) for n in t.model_fields}))
    return (t.__name__, v)


def roundtrip(value: Any) -> Any:
    return serde.decode(serde.encode(value, where="test"), where="test")


@given(stored_values)
@example({float("nan"), float("nan")})  # two NaNs are two set members (one was lost)
@example({float("nan"): 1, float("nan"): 2})
@example(time(0, 0, tzinfo=ZoneInfo("UTC")))  # read back with timezone.utc, the key lost
@example(datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Paris")))  # in a DST gap
def test_every_supported_value_round_trips_exactly(value: Any) -> None:
    assert canon(roundtrip(value)) == canon(value)


@given(stored_values)
def test_the_stored_form_is_strict_compact_json(value: Any) -> None:
    data = serde.encode(value, where="test")

    def no_constants(name: str) -> Any:
        raise AssertionError(f"a {name} literal in {data!r}")

    json.loads(data, parse_constant=no_constants)


@given(json_values)
def test_plain_json_reads_as_itself_however_it_is_spaced(value: Any) -> None:
    for text in (
        json.dumps(value),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")),
        json.dumps(value, indent=1),
    ):
        assert canon(serde.decode(text.encode(), where="test")) == canon(value)


@given(stored_values)
@example(Decimal("Infinity"))  # refused by pydantic against the annotation Decimal
@example(Decimal("NaN"))
def test_a_value_validates_against_its_own_type(value: Any) -> None:
    # An annotation that fits is never a reason to refuse the stored value.
    decoded = serde.decode(serde.encode(value, where="test"), type(value), where="test")
    assert type(decoded) is type(value)


# -- arbitrary input ------------------------------------------------------------------------


class Trap:
    """A class that is not a dataclass, enum or model: decoding must never call it."""

    calls = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Trap.calls += 1


_TAGS = [
    "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "float", "datetime", "date",
    "time", "timedelta", "decimal", "uuid", "enum", "dataclass", "pydantic", "pickle", "",
]  # fmt: skip
_REFS = [
    "tests.serde.test_properties:Trap",
    "tests.serde.values:Point",
    "tests.serde.values:Color",
    "tests.serde.values:User",
    "tests.serde.values:Ints",
    "builtins:eval",
    "os:system",
    "subprocess:Popen",
    "not.imported.module:Thing",
    "tests.serde.values",
    ":",
]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["nan", "inf", "AAAA", "zz", "2020-01-01", "12:00", "2020-02-30T25:00", "0" * 32, "-1"]
    )
)


def _tagged(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Objects shaped like tagged values, right or wrong in every part."""
    return st.fixed_dictionaries(
        {serde.TAG: st.sampled_from(_TAGS) | st.integers() | st.none()},
        optional={
            "v": inner,
            "x": st.text(max_size=8) | st.sampled_from(["00ff", "0g"]),
            "c": st.sampled_from(_REFS) | inner,
            "z": st.sampled_from(["UTC", "Europe/Paris", "../../etc/passwd", "No/Such"]),
            "f": st.integers(0, 1),
        },
    )


tagged_json = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | _tagged(inner)
    ),
    max_leaves=12,
)


def _json_text(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


garbage = (
    st.binary()
    | tagged_json.map(_json_text)
    | st.builds(lambda a, b: a + b, tagged_json.map(_json_text), st.binary(max_size=4))
    | st.builds(lambda a, b: a[:b], tagged_json.map(_json_text), st.integers(0, 60))
    | stored_values.map(lambda v: serde.encode(v, where="test")).flatmap(
        lambda data: st.builds(
            lambda i, b: data[:i] + b + data[i + 1 :],
            st.integers(0, max(len(data) - 1, 0)),
            st.binary(min_size=0, max_size=2),
        )
    )
    | st.sampled_from(
        [b'"a"b"', b'"a","b"', b"NaN", b" 1", b"1 ", b"[1,]", b'{"$t":"bytes","v":"AA"}']
    )
)

annotations = st.sampled_from(
    [None, int, str, bytes, list[int], dict[str, int], Point, Color, User]
)


@given(garbage, annotations)
@example(b'"""', None)  # was read as the str '"' rather than refused as corrupt
def test_any_bytes_decode_or_raise_serialization_error(data: bytes, annotation: Any) -> None:
    modules = set(sys.modules)
    Trap.calls = 0
    try:
        serde.decode(data, annotation, where="the test payload")
    except SerializationError as e:
        assert "the test payload" in str(e)
    else:
        # Whatever decodes is JSON (the format never reads what JSON would refuse).
        json.loads(data, strict=False)
    assert Trap.calls == 0
    assert set(sys.modules) == modules  # nothing imported for a payload


@given(tagged_json)
def test_a_class_is_called_only_if_it_is_a_dataclass_enum_or_model(doc: Any) -> None:
    Trap.calls = 0
    try:
        serde.decode(_json_text(doc), where="test")
    except SerializationError:
        pass
    assert Trap.calls == 0
