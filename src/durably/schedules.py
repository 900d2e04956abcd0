"""Cron schedules of workflows: ``@wf.workflow(schedule="*/5 * * * *", timezone="UTC")``.

A schedule is a five-field cron expression read in an IANA time zone. Its ticks are
computed by `cronsim <https://pypi.org/project/cronsim/>`_ (a small, maintained
evaluator with no dependencies, which follows cron's daylight-saving rules: a time the
clocks skip runs once, when the clocks reach the next valid time; a time that happens
twice runs once). Each tick becomes one run of the workflow, started with the tick as an
aware ``datetime`` in that zone, with the idempotency key :func:`tick_key` of the tick,
so two workers can never start it twice. The driver that starts them runs in every
worker (:mod:`durably.worker.schedules`); their shared state is a world row
(:mod:`durably.worlds.schedules`).

After downtime, ``catch_up`` says which missed ticks run: ``"latest"`` (the default) the
latest only, ``"all"`` every one (at most :data:`MAX_CATCH_UP` at a time), ``"skip"``
none (a tick runs only if it is seen within :data:`SKIP_GRACE` seconds of its time).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .worlds.base import World

__all__ = [
    "CATCH_UPS",
    "MAX_CATCH_UP",
    "OVERDUE_AFTER",
    "SKIP_GRACE",
    "CatchUp",
    "Schedule",
    "describe_schedules",
    "parse_schedule",
    "tick_key",
]

CatchUp = Literal["latest", "all", "skip"]
CATCH_UPS: tuple[str, ...] = ("latest", "all", "skip")

#: With ``catch_up="all"``, at most this many missed ticks are started per driver pass
#: (the rest follow in the next passes).
MAX_CATCH_UP = 100

#: With ``catch_up="skip"``, a tick seen later than this many seconds after its time was
#: missed (the driver passes at least every few seconds while a tick is due).
SKIP_GRACE = 15.0

#: A next tick this many seconds in the past, not started, is shown as overdue.
OVERDUE_AFTER = 5.0

_CRON_HOW = (
    'write five fields "MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK", for example '
    '"*/5 * * * *" (every five minutes) or "0 9 * * 1-5" (9:00 on weekdays)'
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A workflow's schedule.

    Attributes:
        cron: the five-field cron expression.
        timezone: the IANA time zone it is read in (``"UTC"``, ``"Europe/Paris"``).
        catch_up: which ticks missed during downtime run: ``"latest"``, ``"all"`` or
            ``"skip"``.
    """

    cron: str
    timezone: str = "UTC"
    catch_up: str = "latest"

    @property
    def zone(self) -> ZoneInfo:
        """The time zone."""
        return ZoneInfo(self.timezone)

    def next_after(self, at: float) -> float:
        """The first tick strictly after ``at`` (seconds since the epoch)."""
        start = datetime.fromtimestamp(at, self.zone)
        return next(iter(CronSim(self.cron, start))).timestamp()

    def ticks(self, after: float, until: float, limit: int) -> list[float]:
        """The ticks in ``(after, until]``, oldest first, at most ``limit`` of them."""
        out: list[float] = []
        it = iter(CronSim(self.cron, datetime.fromtimestamp(after, self.zone)))
        while len(out) < limit:
            t = next(it).timestamp()
            if t > until:
                break
            out.append(t)
        return out

    def latest(self, after: float, until: float) -> float | None:
        """The latest tick in ``(after, until]``, if any."""
        # cronsim walks backwards from a time, strictly before it: start a microsecond
        # past ``until`` so that a tick at exactly ``until`` counts.
        start = datetime.fromtimestamp(until, self.zone) + timedelta(microseconds=1)
        t = next(iter(CronSim(self.cron, start, reverse=True))).timestamp()
        return t if after < t <= until else None

    def as_datetime(self, tick: float) -> datetime:
        """The tick as an aware datetime in the schedule's zone (what a run is given)."""
        return datetime.fromtimestamp(tick, self.zone)

    def __str__(self) -> str:
        return f"{self.cron!r} ({self.timezone}, catch_up={self.catch_up})"


def tick_key(tick: float) -> str:
    """The idempotency key of a tick's run: the same for every worker and process."""
    return "schedule:" + datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_schedule(
    cron: object,
    timezone: object = "UTC",
    catch_up: object = "latest",
    *,
    workflow: str,
    fn: Callable[..., Any] | None = None,
) -> Schedule:
    """Check a workflow's schedule options and return its :class:`Schedule`.

    Args:
        cron: the five-field cron expression.
        timezone: an IANA time zone name.
        catch_up: ``"latest"``, ``"all"`` or ``"skip"``.
        workflow: the workflow's name, for the messages.
        fn: the workflow function: it must take the tick as its one argument.

    Raises:
        ConfigurationError: any of them is malformed; the message says what to write.
    """
    where = f"workflow {workflow!r}"
    if not isinstance(cron, str):
        raise ConfigurationError(f"schedule of {where} must be a string, got {cron!r}: {_CRON_HOW}")
    expr = " ".join(cron.split())
    fields = expr.split(" ") if expr else []
    if len(fields) != 5:
        raise ConfigurationError(
            f"schedule {cron!r} of {where} has {len(fields)} fields, not 5: {_CRON_HOW}"
        )
    if not isinstance(timezone, str) or not timezone:
        raise ConfigurationError(
            f"timezone of {where} must be an IANA time zone name such as 'UTC' or "
            f"'Europe/Paris', got {timezone!r}"
        )
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"timezone {timezone!r} of {where} is not a known time zone: use an IANA name "
            "such as 'UTC', 'Europe/Paris' or 'America/New_York' (on a system without a "
            "time zone database, `pip install tzdata`)"
        ) from None
    try:
        CronSim(expr, datetime.now(zone))
    except CronSimError as e:
        raise ConfigurationError(
            f"schedule {cron!r} of {where} is not a valid cron expression ({e}): {_CRON_HOW}"
        ) from None
    if catch_up not in CATCH_UPS:
        raise ConfigurationError(
            f"catch_up {catch_up!r} of {where} is not one of 'latest' (after downtime, "
            "run the latest missed tick), 'all' (run every missed tick) or 'skip' (run none)"
        )
    if fn is not None:
        try:
            inspect.signature(fn).bind(datetime.now(zone))
        except TypeError:
            raise ConfigurationError(
                f"{where} has a schedule, so each tick starts it with one argument, the "
                f"tick as a datetime; give it one parameter: `async def {workflow}(tick: "
                "datetime) -> ...`"
            ) from None
        except ValueError:
            pass  # no signature to check (a builtin): trust it
    return Schedule(expr, timezone, str(catch_up))


async def describe_schedules(
    world: World, namespace: str | None = None, *, now: float | None = None
) -> list[dict[str, Any]]:
    """Each schedule of ``world`` (of ``namespace``, or all) with its next tick and last
    run, as JSON-ready data: what ``durably inspect schedules`` and the dashboard show.

    ``next_tick`` is the first tick after the last one decided (or after the schedule was
    registered); ``overdue`` is true when it has passed and no worker has started it (no
    worker of the registry is running, or all are stopped). Times are seconds since the
    epoch; ``next_tick_local`` and ``last_tick_local`` are ISO texts in the schedule's zone.
    """
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    for row in await world.list_schedules(namespace):
        sched = Schedule(row.cron, row.timezone, row.catch_up)
        after = row.anchor if row.last_tick is None else max(row.anchor, row.last_tick)
        nxt = sched.next_after(after)
        status = None
        if row.last_run_id is not None:
            rec = await world.get_run(row.last_run_id)
            status = rec.status if rec is not None else "pruned"
        out.append(
            {
                **row.to_json(),
                "next_tick": nxt,
                "next_tick_local": sched.as_datetime(nxt).isoformat(),
                "last_tick_local": (
                    sched.as_datetime(row.last_tick).isoformat()
                    if row.last_tick is not None
                    else None
                ),
                "last_run_status": status,
                "overdue": nxt <= now - OVERDUE_AFTER,
            }
        )
    return out
