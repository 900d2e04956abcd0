"""Values the serde tests store: classes defined at module level, so that decoding finds
them through ``sys.modules`` (as it finds a user's classes), and the round-trip helper."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any

import pydantic

from durably import serde


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
