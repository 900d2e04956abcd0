"""Durations (``"10s"``, ``"1h30m"``, seconds, ``timedelta``) and deadlines.

Units: ``ms``, ``s``, ``m`` (minutes), ``h``, ``d``, ``w``, and their long forms
(``msec``, ``sec``/``second(s)``, ``min``/``minute(s)``, ``hr``/``hour(s)``, ``day(s)``,
``wk``/``week(s)``), case-insensitive. Parts may be combined (``"1h30m"``, ``"1d 2h"``) and
may be fractional (``"1.5h"``); a bare number (``"90"``) means seconds.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from .errors import ConfigurationError

__all__ = ["deadline", "parse_duration"]

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "msec": 0.001,
    "msecs": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "wk": 604800.0,
    "wks": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(rf"\s*({_NUMBER})\s*")
_PART = re.compile(rf"\s*({_NUMBER})\s*([a-z]+)\s*")

_EXAMPLES = (
    "'10s', '500ms', '2h', '1h30m', '1.5h', '30d', '1w', 90 (seconds) or a datetime.timedelta"
)


def _bad(value: object, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"invalid duration {value!r}: {why}; use a non-negative duration such as {_EXAMPLES}"
    )


def parse_duration(value: str | int | float | timedelta) -> float:
    """The duration ``value`` in seconds.

    Raises:
        ConfigurationError: negative, not finite, unparseable, or not a duration type.
    """
    if isinstance(value, bool):
        raise _bad(value, "a bool is not a duration")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int past the largest float
            raise _bad(value, "it is not finite") from None
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise _bad(value, f"a {type(value).__name__} is not a duration")
    if math.isnan(seconds) or math.isinf(seconds):
        raise _bad(value, "it is not finite")
    if seconds < 0:
        raise _bad(value, "it is negative")
    return seconds


def _parse_text(text: str) -> float:
    lowered = text.lower()
    bare = _BARE.fullmatch(lowered)
    if bare is not None:
        return float(bare.group(1))
    if lowered.strip().startswith("-"):
        raise _bad(text, "it is negative")
    total = 0.0
    pos = 0
    end = len(lowered)
    while pos < end:
        m = _PART.match(lowered, pos)
        if m is None:
            break
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise _bad(text, f"unknown unit {m.group(2)!r} (units: ms, s, m, h, d, w)")
        total += float(m.group(1)) * unit
        pos = m.end()
    if pos == 0 or pos != end:
        raise _bad(text, "it is not a duration")
    return total


def deadline(value: str | int | float | timedelta | datetime, now: float) -> float:
    """Absolute epoch seconds: ``now + parse_duration(value)``, or an aware datetime's time.

    Raises:
        ConfigurationError: a bad duration, or a naive ``datetime``.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(
                f"naive datetime {value.isoformat()!r} is ambiguous as a deadline: pass an "
                "aware datetime, e.g. datetime.now(timezone.utc) + timedelta(hours=1), or a "
                "duration such as '1h'"
            )
        return value.timestamp()
    return now + parse_duration(value)
