"""Rate limits of steps: ``@wf.step(rate_limit="openai:60/min")``.

A rate limit names a *limiter* shared by every run and every worker of a world: the
bodies of all steps naming it begin at most ``limit`` times in any window of ``per``
seconds (a sliding window, so no burst ever goes past it). A step over the limit is not
failed: its task's due time moves to the moment the window lets it begin, like a retry
or a timer, and any worker claims it then.

The limiter's state (when its recent steps began) is world state, changed in the
transaction that grants a step its start (:meth:`durably.worlds.base.World.take_rate`);
the window arithmetic every world shares is :mod:`durably.worlds.rates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["RateLimit", "parse_rate_limit"]

#: Window units a rate limit may use, in seconds.
UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}

_SPEC = re.compile(
    r"^(?P<name>[A-Za-z0-9_.\-]+):(?P<limit>-?\d+)/(?P<per>\d+)?(?P<unit>[A-Za-z]+)$"
)

_HOW = (
    'write "NAME:COUNT/UNIT", for example "openai:60/min" (60 starts per minute), '
    '"email:5/s" or "reports:100/h"; an optional window length goes before the unit '
    '("search:10/15s"); units: s, min, h'
)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A limiter and its allowance: at most ``limit`` step starts per ``per`` seconds.

    Attributes:
        name: the limiter, shared by every step that names it.
        limit: how many step bodies may begin in any window.
        per: the window's length in seconds.
    """

    name: str
    limit: int
    per: float

    def __str__(self) -> str:
        return f"{self.name}:{self.limit}/{self.per:g}s"


def parse_rate_limit(spec: object, *, step: str | None = None) -> RateLimit:
    """Read a rate limit such as ``"openai:60/min"``.

    Args:
        spec: ``"NAME:COUNT/UNIT"`` (units ``s``, ``min``, ``h``; an optional window
            length before the unit: ``"search:10/15s"``), or a :class:`RateLimit`.
        step: the step it is for, named in the error.

    Raises:
        ConfigurationError: the text is not a rate limit, the count is not a positive
            whole number, or the unit is unknown; the message says what to write.
    """
    if isinstance(spec, RateLimit):
        return spec
    where = f" of step {step!r}" if step else ""
    if not isinstance(spec, str):
        raise ConfigurationError(f"rate_limit{where} must be a string, got {spec!r}: {_HOW}")
    m = _SPEC.match(spec.replace(" ", ""))
    if m is None:
        raise ConfigurationError(f"rate_limit {spec!r}{where} is not understood: {_HOW}")
    limit = int(m.group("limit"))
    if limit <= 0:
        raise ConfigurationError(
            f"rate_limit {spec!r}{where} allows {limit} starts: the count must be a whole "
            f"number of at least 1; {_HOW}"
        )
    unit = m.group("unit").lower()
    seconds = UNITS.get(unit)
    if seconds is None and unit.endswith("s"):
        seconds = UNITS.get(unit[:-1])  # plurals: "mins", "hours"
    if seconds is None:
        raise ConfigurationError(
            f"rate_limit {spec!r}{where} has an unknown unit {m.group('unit')!r}: {_HOW}"
        )
    count = int(m.group("per") or 1)
    if count <= 0:
        raise ConfigurationError(
            f"rate_limit {spec!r}{where} has a window of {count}{unit}: it must be at least 1"
        )
    return RateLimit(m.group("name"), limit, seconds * count)
