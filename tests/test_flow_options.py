"""Flow-control options are checked when a step or workflow is decorated: a malformed
rate, cron expression, time zone or catch-up, or a negative count, is a clear error
naming what was wrong and what to write instead. Also the cron arithmetic (daylight
saving) and the rate-limit parser (durably.schedules, durably.rate_limits)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from durably import ConfigurationError, Workflows
from durably.rate_limits import RateLimit, parse_rate_limit
from durably.schedules import Schedule, tick_key


@pytest.fixture
def wf() -> Workflows:
    return Workflows(world="memory://", encryption_key=False)


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("openai:60/fortnight", "unknown unit 'fortnight'"),
        ("60/fortnight", "is not understood"),
        ("openai:-1/min", "allows -1 starts"),
        ("openai:0/s", "allows 0 starts"),
        ("openai:60/0min", "window of 0min"),
        ("openai", "is not understood"),
        (60, "must be a string"),
    ],
)
def test_a_malformed_rate_limit_fails_at_decoration(wf: Workflows, spec: object, said: str) -> None:
    with pytest.raises(ConfigurationError) as e:

        @wf.step(rate_limit=spec)  # type: ignore[arg-type]
        async def call_model() -> None: ...

    assert said in str(e.value)
    assert '"openai:60/min"' in str(e.value) or "at least 1" in str(e.value)  # what to write
    assert "call_model" not in wf.steps


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:60/min", RateLimit("openai", 60, 60.0)),
        ("email:5/s", RateLimit("email", 5, 1.0)),
        ("reports:100/h", RateLimit("reports", 100, 3600.0)),
        ("search:10/15s", RateLimit("search", 10, 15.0)),
        ("x.y-z:3/2hours", RateLimit("x.y-z", 3, 7200.0)),
    ],
)
def test_rate_limits_read(spec: str, expected: RateLimit) -> None:
    assert parse_rate_limit(spec) == expected


def test_a_rate_limited_step_is_registered_with_its_limit(wf: Workflows) -> None:
    @wf.step(rate_limit="openai:60/min")
    async def call_model() -> None: ...

    assert wf.rate_limits == {"call_model": RateLimit("openai", 60, 60.0)}


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"schedule": "*/5 * * *"}, "has 4 fields, not 5"),
        ({"schedule": "0 0 * * * *"}, "has 6 fields, not 5"),
        ({"schedule": "61 * * * *"}, "not a valid cron expression"),
        ({"schedule": "@daily"}, "has 1 fields, not 5"),
        ({"schedule": "* * * * *", "timezone": "Mars/Olympus"}, "not a known time zone"),
        ({"schedule": "* * * * *", "timezone": ""}, "IANA time zone name"),
        ({"schedule": "* * * * *", "catch_up": "sometimes"}, "is not one of 'latest'"),
        ({"timezone": "UTC"}, "add schedule="),
        ({"catch_up": "all"}, "add schedule="),
    ],
)
def test_a_malformed_schedule_fails_at_decoration(
    wf: Workflows, options: dict[str, str], said: str
) -> None:
    with pytest.raises(ConfigurationError) as e:

        @wf.workflow(**options)
        async def report(tick: datetime) -> None: ...

    assert said in str(e.value)
    assert "report" not in wf.workflows and "report" not in wf.schedules


def test_a_scheduled_workflow_must_take_the_tick(wf: Workflows) -> None:
    with pytest.raises(ConfigurationError, match="give it one parameter"):

        @wf.workflow(schedule="* * * * *")
        async def report(tick: datetime, region: str) -> None: ...


def test_a_scheduled_workflow_is_registered_with_its_schedule(wf: Workflows) -> None:
    @wf.workflow(schedule=" 0  9 * * 1-5 ", timezone="Europe/Paris", catch_up="all")
    async def report(tick: datetime) -> None: ...

    assert wf.schedules == {"report": Schedule("0 9 * * 1-5", "Europe/Paris", "all")}


# -- the cron arithmetic ---------------------------------------------------------------


def ts(*args: int, tz: str = "America/New_York") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


def test_a_time_the_clocks_skip_runs_once_when_they_reach_the_next_valid_time() -> None:
    s = Schedule("30 2 * * *", "America/New_York")  # 2:30 does not exist on 8 March 2026
    ticks = [s.as_datetime(t) for t in s.ticks(ts(2026, 3, 7), ts(2026, 3, 10), 10)]
    assert [(t.day, t.hour, t.minute) for t in ticks] == [(7, 2, 30), (8, 3, 0), (9, 2, 30)]


def test_a_time_that_happens_twice_runs_once() -> None:
    s = Schedule("30 1 * * *", "America/New_York")  # 1:30 happens twice on 1 November 2026
    ticks = s.ticks(ts(2026, 10, 31), ts(2026, 11, 3), 10)
    assert len(ticks) == 3
    assert [s.as_datetime(t).day for t in ticks] == [31, 1, 2]


def test_the_latest_tick_counts_a_tick_at_exactly_now() -> None:
    s = Schedule("*/5 * * * *")
    t = datetime(2026, 3, 2, 12, 5, tzinfo=UTC).timestamp()
    assert s.latest(t - 3600, t) == t
    assert s.latest(t - 3600, t - 0.001) == t - 300
    assert s.latest(t, t + 299) is None
    assert s.next_after(t) == t + 300
    assert tick_key(t) == "schedule:2026-03-02T12:05:00Z"
