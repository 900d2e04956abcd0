"""Tests for durably.durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from durably.durations import deadline, parse_duration
from durably.errors import ConfigurationError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("30d", 30 * 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("90", 90.0),
        ("2.5", 2.5),
        ("0", 0.0),
        ("0s", 0.0),
        (".5s", 0.5),
        ("5m", 300.0),
        (" 10s ", 10.0),
        ("1h 30m", 5400.0),
        ("1 h 30 m 15 s", 5415.0),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
        ("10S", 10.0),
        ("2 hours", 7200.0),
        ("1 day", 86400.0),
        ("3 weeks", 3 * 604800.0),
        ("15min", 900.0),
        ("45 sec", 45.0),
        (10, 10.0),
        (0, 0.0),
        (1.25, 1.25),
        (timedelta(hours=1, milliseconds=1), 3600.001),
        (timedelta(0), 0.0),
    ],
)
def test_parse_duration(value: Any, seconds: float) -> None:
    result = parse_duration(value)
    assert type(result) is float
    assert result == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "abc",
        "s",
        "10x",
        "10 parsecs",
        "1h 30",  # a unit-less number after a unit is ambiguous
        "1e3",
        "1..5s",
        "--5s",
        "5s-",
        "inf",
        "nan",
        "1,5h",
    ],
)
def test_unparseable_strings_raise(value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_duration(value)
    msg = str(info.value)
    assert repr(value) in msg
    assert "'10s'" in msg and "'1h30m'" in msg  # shows valid examples


@pytest.mark.parametrize(
    "value",
    ["-5s", "-5", " -1h", -1, -0.001, timedelta(seconds=-1), float("nan"), float("inf")],
)
def test_negative_or_non_finite_values_raise(value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_duration(value)
    msg = str(info.value)
    assert repr(value) in msg
    assert "'10s'" in msg


@pytest.mark.parametrize("value", [True, False, None, [10], b"10s", object()])
def test_other_types_are_rejected(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="invalid duration"):
        parse_duration(value)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_deadline_adds_a_duration_to_now() -> None:
    assert deadline("10s", now=1000.0) == 1010.0
    assert deadline(5, now=1000.0) == 1005.0
    assert deadline(timedelta(minutes=1), now=0.5) == 60.5
    assert deadline("1h30m", now=0.0) == 5400.0


def test_deadline_of_an_aware_datetime_is_its_timestamp() -> None:
    when = datetime(2030, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert deadline(when, now=123.0) == when.timestamp()
    east = datetime(2030, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert deadline(east, now=0.0) == datetime(2030, 1, 1, 12, tzinfo=UTC).timestamp()
    past = datetime(2000, 1, 1, tzinfo=UTC)
    assert deadline(past, now=2e9) == past.timestamp()  # a past time is allowed


def test_deadline_rejects_a_naive_datetime() -> None:
    with pytest.raises(ConfigurationError) as info:
        deadline(datetime(2030, 1, 1), now=0.0)
    msg = str(info.value)
    assert "aware" in msg
    assert "datetime.now(timezone.utc)" in msg


def test_deadline_rejects_bad_durations() -> None:
    with pytest.raises(ConfigurationError):
        deadline("-1s", now=0.0)
    with pytest.raises(ConfigurationError):
        deadline("whenever", now=0.0)
