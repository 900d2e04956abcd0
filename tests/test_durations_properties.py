"""Properties of durations: what is written is what is read, and anything else is a
``ConfigurationError`` that says what a duration looks like."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from durably.durations import _UNITS, deadline, parse_duration
from durably.errors import ConfigurationError

amounts = st.integers(0, 10**6) | st.decimals(
    min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False
)
units = st.sampled_from(sorted(_UNITS))
spaces = st.sampled_from(["", " ", "  ", "\t"])


def _number_text(n: int | Decimal) -> str:
    text = f"{n:f}" if isinstance(n, Decimal) else str(n)
    return text.rstrip("0").rstrip(".") if "." in text else text  # "1.50" -> "1.5"


@given(st.lists(st.tuples(amounts, units, spaces), min_size=1, max_size=4), st.booleans())
def test_a_written_duration_reads_back_as_its_seconds(
    parts: list[tuple[int | Decimal, str, str]], upper: bool
) -> None:
    text = "".join(f"{_number_text(n)}{gap}{unit}{gap}" for n, unit, gap in parts)
    if upper:
        text = text.upper()
    expected = sum(float(n) * _UNITS[unit] for n, unit, _ in parts)
    assert math.isclose(parse_duration(text), expected, rel_tol=1e-9, abs_tol=1e-9)


@given(st.integers(0, 10**12) | st.floats(0, 1e12))
def test_a_number_is_seconds_whether_given_or_written(n: float) -> None:
    assert parse_duration(n) == float(n)
    assert parse_duration(repr(n) if isinstance(n, int) else f"{n:.20f}") == pytest.approx(n)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10**8)))
def test_a_timedelta_is_its_seconds_and_back(td: timedelta) -> None:
    seconds = parse_duration(td)
    assert seconds == td.total_seconds()
    back = timedelta(seconds=seconds)  # exact up to a float's precision
    assert math.isclose(back.total_seconds(), seconds, rel_tol=1e-15, abs_tol=1e-6)


@given(st.timedeltas(max_value=-timedelta(microseconds=1)))
def test_a_negative_timedelta_is_refused(td: timedelta) -> None:
    with pytest.raises(ConfigurationError, match="negative"):
        parse_duration(td)


def _accepted_or_clear(value: Any) -> float | None:
    try:
        seconds = parse_duration(value)
    except ConfigurationError as e:
        assert "invalid duration" in str(e) and "such as" in str(e)
        return None
    assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0
    return seconds


@given(st.text())
@example("9" * 400)
@example("9" * 300 + "w")
@example("-0")
@example("1e3s")
@example("\u0661\u0662s")  # other scripts' digits
@example("inf")
@example("1h-30m")
def test_any_text_is_a_duration_or_a_clear_error(text: str) -> None:
    _accepted_or_clear(text)


@given(
    st.integers()
    | st.floats()
    | st.booleans()
    | st.none()
    | st.decimals()
    | st.binary()
    | st.lists(st.integers())
    | st.timedeltas()
)
@example(10**400)  # was a bare OverflowError: int too large to convert to float
@example(-(10**400))
@example(timedelta.max)
def test_any_value_is_a_duration_or_a_clear_error(value: Any) -> None:
    _accepted_or_clear(value)


@given(st.datetimes(timezones=st.just(UTC) | st.timezones()), st.floats(0, 2e9))
def test_an_aware_datetime_is_its_own_deadline(when: datetime, now: float) -> None:
    assert deadline(when, now) == when.timestamp()


@given(st.datetimes(), st.floats(0, 2e9))
def test_a_naive_datetime_is_refused_as_a_deadline(when: datetime, now: float) -> None:
    with pytest.raises(ConfigurationError, match="naive datetime"):
        deadline(when, now)


@given(st.timedeltas(min_value=timedelta(0)), st.floats(0, 2e9))
def test_a_duration_deadline_is_now_plus_the_duration(td: timedelta, now: float) -> None:
    assert deadline(td, now) == now + td.total_seconds()
