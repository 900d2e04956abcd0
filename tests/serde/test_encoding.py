"""durably.serde.encoding: what is stored for each kind of value, round trips, and the
errors that name what cannot be stored."""

from __future__ import annotations

import enum
import json
import math
import sys
import uuid
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from durably import serde
from durably.errors import SerializationError
from tests.serde.values import (
    Aliased,
    Color,
    Holder,
    Ints,
    Level,
    Loose,
    MyStr,
    Node,
    Opaque,
    Perm,
    Point,
    Shape,
    Tagged,
    User,
    rt,
)

UTC_PLUS = timezone(timedelta(hours=5, minutes=30))
ODD_TZ = timezone(timedelta(hours=-3, minutes=-7, seconds=-11, microseconds=-500))

ROUND_TRIP: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**100,
    1.5,
    -0.0,
    1e-300,
    "",
    "plain",
    "ünïcödé ✓ 😀",
    'quotes " and \\ and \n newline \x00',
    [],
    [1, "a", None],
    {},
    {"a": 1, "b": [True, None]},
    b"",
    b"\x00\xff binary",
    bytearray(b"mutable"),
    datetime(2024, 5, 6, 7, 8, 9, 123456),
    datetime(2024, 5, 6, 7, 8, 9, 1, tzinfo=UTC),
    datetime(2024, 5, 6, 7, 8, 9, 999999, tzinfo=UTC_PLUS),
    datetime(2024, 5, 6, 7, 8, 9, tzinfo=ODD_TZ),
    date(1999, 12, 31),
    time(23, 59, 59, 999999),
    time(1, 2, 3, tzinfo=UTC_PLUS),
    timedelta(days=-3, seconds=5, microseconds=7),
    timedelta(microseconds=1),
    Decimal("3.14159265358979323846264338327950288"),
    Decimal("-0.000"),
    Decimal("1E+10"),
    Decimal("Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    {1, 2, 3},
    frozenset({"a", "b"}),
    set(),
    (),
    (1,),
    (1, (2, (3,))),
    Color.BLUE,
    Level.HIGH,
    Perm.R | Perm.W,
    Shape.POINT,
    Point(1, 2),
    Node(1, Node(2)),
    User(user_id="u1", joined=datetime(2020, 1, 1, tzinfo=UTC), point=Point(3, 4)),
    Ints([1, 2, 3]),
]


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    assert a == b
    if isinstance(a, (datetime, time)):
        assert a.utcoffset() == b.utcoffset()
        assert (a.tzinfo is None) == (b.tzinfo is None)
        assert a.microsecond == b.microsecond
        assert a.fold == b.fold
    if isinstance(a, Decimal):
        assert str(a) == str(b)  # exact, including exponent and sign of zero
    if isinstance(a, float) and a == 0:
        assert math.copysign(1, a) == math.copysign(1, b)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_round_trip(value: Any) -> None:
    _same(value, rt(value))


def test_round_trip_keeps_element_types_inside_containers() -> None:
    value = {
        "when": [datetime(2020, 1, 1, tzinfo=UTC_PLUS), date(2020, 1, 2)],
        "ids": {uuid.UUID(int=1), uuid.UUID(int=2)},
        "pairs": [(1, b"x"), (2, Decimal("2.50"))],
        "nested": {"deeper": {"set": frozenset({(1, 2), (3, 4)}), "enum": Level.LOW}},
        "dc": Tagged("t", frozenset({"a"}), datetime(2021, 1, 1), (1, 2, 3)),
        "model": User(user_id="u", joined=datetime(2020, 1, 1), color=Color.BLUE),
        "holder": Holder([Point(1, 1), (Color.RED,), {"k": timedelta(1)}]),
    }
    back = rt(value)
    assert back == value
    assert type(back["pairs"][1]) is tuple
    assert type(back["pairs"][1][1]) is Decimal
    assert type(back["nested"]["deeper"]["set"]) is frozenset
    assert back["nested"]["deeper"]["enum"] is Level.LOW
    assert type(back["dc"]) is Tagged
    assert back["dc"].computed == 3
    assert type(back["dc"].parts) is tuple
    assert back["model"].color is Color.BLUE
    assert type(back["holder"].items[0]) is Point
    assert type(back["holder"].items[1]) is tuple


def test_enum_members_come_back_identical() -> None:
    assert rt(Color.RED) is Color.RED
    assert rt(Level.HIGH) is Level.HIGH
    assert rt(Perm.R | Perm.W) == Perm.R | Perm.W


def test_nan_and_infinities_round_trip_as_strict_json() -> None:
    value = [float("nan"), float("inf"), float("-inf"), 1.0]
    data = serde.encode(value, where="test")

    def reject(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name} in {data!r}")

    json.loads(data, parse_constant=reject)  # strict JSON: no NaN/Infinity literals
    back = serde.decode(data)
    assert math.isnan(back[0])
    assert back[1:] == [float("inf"), float("-inf"), 1.0]


def test_non_str_dict_keys_round_trip_with_their_types_and_order() -> None:
    value = {
        1: "int",
        "1": "str",
        2.5: "float",
        None: "none",
        False: "bool",
        (1, "a"): "tuple",
        Color.RED: "enum",
        frozenset({1}): "frozenset",
        date(2020, 1, 1): "date",
    }
    back = rt(value)
    assert back == value
    assert list(back) == list(value)
    assert [type(k) for k in back] == [type(k) for k in value]


def test_dict_containing_the_tag_key_stays_a_dict() -> None:
    value = {serde.TAG: "datetime", "v": "2020-01-01T00:00:00"}
    back = rt(value)
    assert back == value
    assert type(back) is dict
    nested = {"outer": [{serde.TAG: "set", "v": [1]}]}
    assert rt(nested) == nested


def test_dataclass_and_model_fields_named_like_tags_are_safe() -> None:
    loose = Loose.model_validate({"a": 1, serde.TAG: "bytes", "v": "not base64!"})
    back = rt(loose)
    assert type(back) is Loose
    assert back.model_extra == {serde.TAG: "bytes", "v": "not base64!"}


def test_zoneinfo_datetime_keeps_its_zone() -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    value = datetime(2024, 7, 1, 12, 0, 0, 5, tzinfo=paris)
    back = rt(value)
    assert back == value
    assert back.tzinfo == paris
    assert back.utcoffset() == timedelta(hours=2)
    # Arithmetic across DST behaves like the original.
    assert (back + timedelta(days=180)).utcoffset() == (value + timedelta(days=180)).utcoffset()


def test_fold_is_kept() -> None:
    value = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    back = rt(value)
    assert back.fold == 1
    assert back.utcoffset() == value.utcoffset() == timedelta(hours=1)


def test_lone_surrogates_round_trip() -> None:
    value = "a\ud800b"
    assert rt(value) == value
    assert rt({"k": [value]}) == {"k": [value]}


def test_large_string_round_trips_and_is_stored_as_utf8() -> None:
    value = "é" * 50_000 + 'x"y\\z'
    data = serde.encode(value, where="test")
    assert "é".encode() in data
    assert serde.decode(data) == value
    plain = "x" * 100_000
    assert serde.decode(serde.encode(plain, where="test")) == plain


def test_encoding_is_compact_and_deterministic() -> None:
    value = {"user_id": "u1", "n": 3, "l": [1, 2]}
    data = serde.encode(value, where="test")
    assert data == b'{"user_id":"u1","n":3,"l":[1,2]}'
    assert serde.encode(dict(value), where="test") == data
    assert serde.encode((1, 2), where="test") == b'{"$t":"tuple","v":[1,2]}'


def test_shared_references_are_not_cycles() -> None:
    shared = [1, 2]
    value = {"a": shared, "b": shared, "c": (shared, shared)}
    assert rt(value) == value


def test_subclasses_of_builtins_store_as_the_base_type() -> None:
    back = rt({"s": MyStr("real"), "d": {"x": 1}.copy()})
    assert back == {"s": "real", "d": {"x": 1}}
    assert type(back["s"]) is str


def test_class_names_are_module_colon_qualname() -> None:
    doc = json.loads(serde.encode(Point(1, 2), where="test"))
    assert doc == {serde.TAG: "dataclass", "c": f"{Point.__module__}:Point", "v": {"x": 1, "y": 2}}
    doc = json.loads(serde.encode(Color.RED, where="test"))
    assert doc == {serde.TAG: "enum", "c": f"{Color.__module__}:Color", "v": "red"}


def test_pydantic_alias_extra_and_root_models() -> None:
    a = Aliased(userName="ann")
    back = rt(a)
    assert type(back) is Aliased
    assert back.user_name == "ann"
    loose = Loose(a=1, extra_field=[1, (2, 3)])  # type: ignore[call-arg]
    back_loose = rt(loose)
    assert back_loose.model_extra == {"extra_field": [1, (2, 3)]}
    assert rt(Ints([4, 5])) == Ints([4, 5])


# --------------------------------------------------------------------------- errors


def test_unsupported_type_message_names_type_path_where_and_fix() -> None:
    value = {"a": [0, {"conn": Holder(items=[1, 2, Opaque()])}]}
    with pytest.raises(SerializationError) as info:
        serde.encode(value, where="argument 'user' of step 'fetch_profile'")
    msg = str(info.value)
    assert f"{Opaque.__module__}.Opaque" in msg
    assert "value['a'][1]['conn'].items[2]" in msg
    assert "argument 'user' of step 'fetch_profile'" in msg
    assert "Convert" in msg and "dataclass" in msg


@pytest.mark.parametrize(
    ("value", "path", "tname"),
    [
        (object(), "value ", "object"),
        ((1, {2, 3}, lambda: 0), "value[2]", "function"),
        ({"s": {Opaque()}}, "value['s']{<item>}", "Opaque"),
        ({1: Opaque()}, "value[1]", "Opaque"),
        ({Opaque(): 1}, "value[<key #0>]", "Opaque"),
        ([Point(1, Opaque())], "value[0].y", "Opaque"),  # type: ignore[arg-type]
        (Shape.POINT.__class__.__members__, "value", "mappingproxy"),
        (iter([1]), "value", "list_iterator"),
        (complex(1, 2), "value", "complex"),
    ],
)
def test_unsupported_paths(value: Any, path: str, tname: str) -> None:
    with pytest.raises(SerializationError) as info:
        serde.encode(value, where="w")
    msg = str(info.value)
    assert f"{path.strip()} is a " in msg
    assert tname in msg


def test_enum_with_unstorable_value_names_its_path() -> None:
    class Weird(enum.Enum):
        X = Opaque()

    with pytest.raises(SerializationError, match=r"value\['k'\]\.value is a"):
        serde.encode({"k": Weird.X}, where="w")


def test_pydantic_field_path() -> None:
    class M(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        thing: Opaque

    with pytest.raises(SerializationError, match=r"value\.thing is a"):
        serde.encode(M(thing=Opaque()), where="w")


def test_serialization_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        serde.encode(object(), where="w")


@pytest.mark.timeout(10)
def test_cycles_raise_instead_of_hanging() -> None:
    lst: list[Any] = [1]
    lst.append(lst)
    with pytest.raises(SerializationError) as info:
        serde.encode(lst, where="the arguments of step 'x'")
    msg = str(info.value)
    assert "cycle" in msg
    assert "value[1]" in msg
    assert "the arguments of step 'x'" in msg

    d: dict[str, Any] = {}
    d["self"] = {"again": d}
    with pytest.raises(SerializationError, match=r"value\['self'\]\['again'\].*cycle"):
        serde.encode(d, where="w")

    node = Node(1)
    node.next = node
    with pytest.raises(SerializationError, match=r"value\.next .*cycle"):
        serde.encode(node, where="w")


def test_too_deep_nesting_raises_serialization_error() -> None:
    value: Any = []
    for _ in range(sys.getrecursionlimit() * 2):
        value = [value]
    with pytest.raises(SerializationError, match="deep"):
        serde.encode(value, where="w")
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(SerializationError):
        serde.decode(deep)


def test_huge_int_is_a_serialization_error_not_a_crash() -> None:
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("int->str conversion is unlimited in this interpreter")
    huge = 10 ** (limit + 10)
    with pytest.raises(SerializationError, match="w"):
        serde.encode(huge, where="w")
    with pytest.raises(SerializationError):
        serde.encode([huge], where="w")
