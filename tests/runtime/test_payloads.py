"""Payload types through steps and runs; serialization and size errors at the call site."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from durably import (
    Limits,
    PayloadTooLargeError,
    SerializationError,
    WorkflowRunFailedError,
    Workflows,
    start,
)


class Color(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int


class User(BaseModel):
    name: str
    age: int


async def test_rich_types_round_trip_through_steps(wf: Workflows) -> None:
    value: dict[str, Any] = {
        "bytes": b"\x00\xff",
        "dt": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "date": date(2026, 1, 2),
        "time": time(3, 4, 5),
        "td": timedelta(days=1, microseconds=3),
        "dec": Decimal("1.10"),
        "uuid": uuid.UUID(int=7),
        "set": {1, 2},
        "tuple": (1, "a"),
        "enum": Color.RED,
        "point": Point(1, 2),
        "user": User(name="ada", age=36),
        "nested": [{"k": (1, 2)}],
    }

    @wf.step
    async def echo(v: dict[str, Any]) -> dict[str, Any]:
        return v

    @wf.workflow
    async def flow(v: dict[str, Any]) -> dict[str, Any]:
        return dict(await echo(v))

    run = await start(flow, value)
    assert await run.return_value(timeout=30) == value


async def test_annotations_rebuild_models(wf: Workflows) -> None:
    @wf.step
    async def make_point(p: Point) -> Point:
        assert isinstance(p, Point)
        return Point(p.x + 1, p.y + 1)

    @wf.workflow
    async def flow(user: User) -> User:
        assert isinstance(user, User)
        p = await make_point(Point(1, 1))
        assert isinstance(p, Point)
        return User(name=user.name, age=p.x)

    run = await start(flow, {"name": "ada", "age": 1})  # validated into a User
    result = await run.return_value(timeout=30)
    assert result == User(name="ada", age=2)


async def test_unserializable_argument_fails_at_the_call_site(wf: Workflows) -> None:
    @wf.step
    async def take(x: Any) -> None:
        return None

    @wf.workflow
    async def flow() -> str:
        try:
            await take(object())
        except SerializationError as e:
            return str(e)
        return "no error"

    run = await start(flow)
    msg = await run.return_value(timeout=30)
    assert "object" in msg and "take" in msg

    @wf.workflow
    async def takes_any(x: Any) -> None:
        return None

    with pytest.raises(SerializationError, match="takes_any"):
        await start(takes_any, lambda: 1)


async def test_bad_arguments_fail_at_start_without_recording(wf: Workflows) -> None:
    @wf.workflow
    async def typed(n: int) -> int:
        return n

    with pytest.raises(TypeError, match="typed"):
        await start(typed, 1, 2)  # type: ignore[call-arg]
    with pytest.raises(SerializationError, match="'n'"):
        await start(typed, "not a number")
    run = await start(typed, "5")  # lax validation converts
    assert await run.return_value(timeout=30) == 5


async def test_payload_limits(make_wf: Any) -> None:
    wf: Workflows = make_wf(limits=Limits(max_payload_bytes=1000, max_run_bytes=5000))

    @wf.step
    async def big(n: int) -> str:
        return "x" * n

    @wf.step
    async def take(s: str) -> int:
        return len(s)

    @wf.workflow
    async def flow() -> list[str]:
        out = []
        try:
            await take("y" * 2000)
        except PayloadTooLargeError as e:
            out.append("arg: " + str(e)[:40])
        try:
            await big(2000)
        except PayloadTooLargeError:
            out.append("result too large")
        total = 0
        try:
            for _ in range(20):
                total += int(await take("z" * 800))
        except PayloadTooLargeError as e:
            out.append("run limit" if "over its" in str(e) else str(e))
        return out

    run = await start(flow)
    out = await run.return_value(timeout=30)
    assert out[0].startswith("arg: the arguments of step 'take'")
    assert out[1:] == ["result too large", "run limit"]
    with pytest.raises(PayloadTooLargeError):
        await start(flow_big := wf.workflow(name="flow_big")(_noop), "q" * 5000)
    _ = flow_big


async def _noop(s: str) -> None:
    return None


async def test_result_that_fails_its_annotation_fails_the_run(wf: Workflows) -> None:
    @wf.workflow
    async def liar() -> int:
        return "not an int"  # type: ignore[return-value]

    run = await start(liar)
    with pytest.raises(WorkflowRunFailedError, match="liar"):
        await run.return_value(timeout=30)
