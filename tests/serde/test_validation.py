"""durably.serde.validation: values checked and converted against annotations."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from datetime import UTC, datetime
from typing import Any, ForwardRef

import pydantic
import pytest

from durably import serde
from durably.errors import SerializationError
from tests.serde.values import Color, Opaque, Point, User


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
