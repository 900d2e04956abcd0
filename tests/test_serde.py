"""Tests for durably.serde: the stored payload format."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import sys
import types
import uuid
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, ForwardRef

import pydantic
import pytest

from durably import serde
from durably.errors import SerializationError

# --------------------------------------------------------------------------- fixtures
# Module-level classes resolve through sys.modules on decode.


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 1
    W = 2


class Shape(enum.Enum):
    POINT = (0, 0)


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Tagged:
    name: str
    tags: frozenset[str]
    at: datetime
    parts: tuple[int, ...] = ()
    computed: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "computed", len(self.parts))


@dataclasses.dataclass
class Holder:
    items: list[Any]


@dataclasses.dataclass
class Node:
    value: int
    next: Node | None = None


class User(pydantic.BaseModel):
    user_id: str
    joined: datetime
    point: Point | None = None
    color: Color = Color.RED


class Aliased(pydantic.BaseModel):
    user_name: str = pydantic.Field(alias="userName")


class Loose(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    a: int


class Ints(pydantic.RootModel[list[int]]):
    pass


class Opaque:
    """Not storable."""


class MyStr(str):
    def __str__(self) -> str:
        return "overridden"


def rt(value: Any, annotation: Any = None) -> Any:
    return serde.decode(serde.encode(value, where="test"), annotation, where="test")


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
    assert doc == {serde.TAG: "dataclass", "c": f"{__name__}:Point", "v": {"x": 1, "y": 2}}
    doc = json.loads(serde.encode(Color.RED, where="test"))
    assert doc == {serde.TAG: "enum", "c": f"{__name__}:Color", "v": "red"}


def test_pydantic_alias_extra_and_root_models() -> None:
    a = Aliased(userName="ann")
    back = rt(a)
    assert type(back) is Aliased
    assert back.user_name == "ann"
    loose = Loose(a=1, extra_field=[1, (2, 3)])  # type: ignore[call-arg]
    back_loose = rt(loose)
    assert back_loose.model_extra == {"extra_field": [1, (2, 3)]}
    assert rt(Ints([4, 5])) == Ints([4, 5])


# --------------------------------------------------------------------------- annotations


def test_annotation_rebuilds_classes_that_cannot_be_resolved() -> None:
    # Classes defined in a function have "<locals>" in their qualname: never resolvable.
    @dataclasses.dataclass
    class LocalPoint:
        x: int
        y: int

    class LocalModel(pydantic.BaseModel):
        name: str
        point: LocalPoint

    class LocalEnum(enum.Enum):
        A = "a"

    data = serde.encode(LocalModel(name="n", point=LocalPoint(1, 2)), where="test")
    plain = serde.decode(data)
    assert plain == {"name": "n", "point": {"x": 1, "y": 2}}
    rebuilt = serde.decode(data, LocalModel)
    assert rebuilt == LocalModel(name="n", point=LocalPoint(1, 2))

    dc = serde.encode(LocalPoint(5, 6), where="test")
    assert serde.decode(dc) == {"x": 5, "y": 6}
    assert serde.decode(dc, LocalPoint) == LocalPoint(5, 6)

    en = serde.encode(LocalEnum.A, where="test")
    assert serde.decode(en) == "a"
    assert serde.decode(en, LocalEnum) is LocalEnum.A


def test_annotation_converts_plain_data() -> None:
    data = serde.encode([1, "x"], where="test")
    back = serde.decode(data, tuple[int, str])
    assert back == (1, "x")
    assert type(back) is tuple
    assert serde.decode(serde.encode({"x": 1, "y": 2}, where="t"), Point) == Point(1, 2)
    assert serde.decode(serde.encode("red", where="t"), Color) is Color.RED
    user = serde.decode(
        serde.encode({"user_id": "u", "joined": "2020-01-01T00:00:00Z"}, where="t"), User
    )
    assert user.joined == datetime(2020, 1, 1, tzinfo=UTC)
    assert serde.decode(serde.encode(["1", "2"], where="t"), list[int]) == [1, 2]


def test_annotation_mismatch_raises_naming_where() -> None:
    data = serde.encode({"x": "not a number", "y": 2}, where="test")
    with pytest.raises(SerializationError) as info:
        serde.decode(data, Point, where="the return value of step 'locate'")
    msg = str(info.value)
    assert "the return value of step 'locate'" in msg
    assert "x" in msg
    assert "integer" in msg


@pytest.mark.parametrize("annotation", [None, inspect.Parameter.empty, Any])
def test_no_annotation_means_no_validation(annotation: Any) -> None:
    value = {"x": object()}
    assert serde.validate(value, annotation, where="w") is value
    data = serde.encode(["a"], where="t")
    assert serde.decode(data, annotation) == ["a"]


def test_validate_converts_and_reports() -> None:
    assert serde.validate("3", int, where="w") == 3
    p = Point(1, 2)
    assert serde.validate(p, Point, where="w") is p
    with pytest.raises(SerializationError) as info:
        serde.validate("abc", int, where="argument 'n' of step 'count'")
    msg = str(info.value)
    assert "argument 'n' of step 'count'" in msg
    assert "'abc'" in msg
    assert "int" in msg


def test_exotic_annotations_degrade_to_no_validation() -> None:
    assert serde.adapter_for("int") is None  # a string: cannot be resolved here
    assert serde.adapter_for(ForwardRef("Nope")) is None
    assert serde.adapter_for(list["Nope"]) is None  # type: ignore[name-defined]  # noqa: F821
    assert serde.adapter_for(Opaque) is None  # pydantic has no schema for it
    value = Opaque()
    assert serde.validate(value, Opaque, where="w") is value
    assert serde.validate([1], list["Nope"], where="w") == [1]  # type: ignore[name-defined]  # noqa: F821


def test_adapters_are_cached() -> None:
    a = serde.adapter_for(dict[str, int])
    assert a is not None
    assert serde.adapter_for(dict[str, int]) is a
    assert serde.adapter_for(Any) is None


# --------------------------------------------------------------------------- no code from payloads


def _tagged(kind: str, ref: str, v: Any) -> bytes:
    return json.dumps({serde.TAG: kind, "c": ref, "v": v}).encode()


def test_decoding_never_imports_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    if "this" in sys.modules:
        pytest.skip("the 'this' module was already imported by something else")
    # Importing "this" prints the Zen of Python: a visible side effect if it were run.
    for kind in ("dataclass", "pydantic"):
        assert serde.decode(_tagged(kind, "this:Anything", {"a": 1})) == {"a": 1}
    assert serde.decode(_tagged("enum", "this:Anything", 3)) == 3
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""

    fake = "durably_no_such_module_for_tests"
    assert serde.decode(_tagged("dataclass", f"{fake}:X", {"b": [1]})) == {"b": [1]}
    assert fake not in sys.modules


def test_decoding_never_triggers_module_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    mod = types.ModuleType("durably_lazy_module_for_tests")

    def module_getattr(name: str) -> Any:
        calls.append(name)
        raise AttributeError(name)

    mod.__getattr__ = module_getattr  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    assert getattr(mod, "probe", None) is None and calls == ["probe"]  # the hook is live
    calls.clear()
    assert serde.decode(_tagged("dataclass", f"{mod.__name__}:Lazy", {"a": 1})) == {"a": 1}
    assert calls == []


@pytest.mark.parametrize(
    ("kind", "ref", "value"),
    [
        ("dataclass", "os:system", {"command": "echo hacked"}),
        ("pydantic", "builtins:dict", {"a": 1}),
        ("enum", "builtins:int", "12"),
        ("dataclass", f"{__name__}:Color", {"a": 1}),  # an enum is not a dataclass
        ("pydantic", f"{__name__}:Point", {"x": 1, "y": 2}),  # a dataclass is not a model
        ("enum", f"{__name__}:User", 1),
        ("dataclass", "not-a-ref", {"a": 1}),
        ("dataclass", 12, {"a": 1}),
    ],
)
def test_names_that_do_not_resolve_to_the_tagged_kind_stay_plain_data(
    kind: str, ref: Any, value: Any
) -> None:
    assert serde.decode(_tagged(kind, ref, value)) == value


def test_class_changed_since_stored_raises() -> None:
    data = _tagged("dataclass", f"{__name__}:Point", {"x": 1})  # y is required now
    with pytest.raises(SerializationError) as info:
        serde.decode(data, where="the result of step 's'")
    msg = str(info.value)
    assert "the result of step 's'" in msg
    assert f"{__name__}:Point" in msg
    data = _tagged("enum", f"{__name__}:Color", "green")
    with pytest.raises(SerializationError, match="Color"):
        serde.decode(data)


# --------------------------------------------------------------------------- errors


def test_unsupported_type_message_names_type_path_where_and_fix() -> None:
    value = {"a": [0, {"conn": Holder(items=[1, 2, Opaque()])}]}
    with pytest.raises(SerializationError) as info:
        serde.encode(value, where="argument 'user' of step 'fetch_profile'")
    msg = str(info.value)
    assert f"{__name__}.Opaque" in msg
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


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe\x00",
        b'{"a": 1',
        b'"unterminated',
        b"[1, 2] trailing",
        b"not json",
        b"NaN-ish",
        b'{"$t": "bytes", "v": "@@@not base64"}',
        b'{"$t": "datetime", "v": "yesterday"}',
        b'{"$t": "timedelta", "v": 5}',
        b'{"$t": "decimal", "v": "one"}',
        b'{"$t": "uuid", "v": "xyz"}',
        b'{"$t": "dict", "v": [[[1], 2]]}',
        b'{"$t": "float", "v": "huge"}',
        b'{"$t": "dataclass", "c": "x:Y", "v": [1]}',
        b'{"$t": "set"}',
        b'{"$t": null}',
    ],
)
def test_corrupt_payloads_raise_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError) as info:
        serde.decode(data, where="the result of step 'z'")
    assert "the result of step 'z'" in str(info.value)


def test_unknown_tag_says_so() -> None:
    with pytest.raises(SerializationError, match="unknown tag 'hologram'"):
        serde.decode(b'{"$t":"hologram","v":1}')


def test_huge_int_is_a_serialization_error_not_a_crash() -> None:
    limit = sys.get_int_max_str_digits()
    if limit == 0:
        pytest.skip("int->str conversion is unlimited in this interpreter")
    huge = 10 ** (limit + 10)
    with pytest.raises(SerializationError, match="w"):
        serde.encode(huge, where="w")
    with pytest.raises(SerializationError):
        serde.encode([huge], where="w")
