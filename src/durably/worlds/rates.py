"""Rate limiters as world state: the sliding-window rule every world applies.

A limiter (:class:`durably.rate_limits.RateLimit`) keeps the times its recent step
bodies began. :meth:`~durably.worlds.base.World.take_rate` asks, in one transaction
with the step task it gates, whether one more may begin now (:func:`decide`); if not,
the task's due time moves to when the window lets it (:attr:`RateDecision.retry_at`),
its lease is handed back, and the attempt does not count: a step over a limit waits
like a timer, durably, and never fails for it.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["RATE_LIMITED", "RateDecision", "RateState", "decide", "pack_starts", "unpack_starts"]

#: The status of a step whose start a rate limit moved (shown by ``inspect run``).
RATE_LIMITED = "rate_limited"


@dataclass(slots=True)
class RateDecision:
    """What :meth:`~durably.worlds.base.World.take_rate` decided for one step start.

    Attributes:
        granted: the step may begin now (its start is counted).
        retry_at: when not granted, the time its task was moved to.
        lost: the task is no longer leased to the asking worker (its lease expired and
            another took it, or its run ended): the step must not begin here.
        at: when granted, the time the start was counted at: the asking worker's ``now``,
            or the limiter's latest start when that is later (see :func:`decide`).
    """

    granted: bool
    retry_at: float | None = None
    lost: bool = False
    at: float | None = None


@dataclass(slots=True)
class RateState:
    """A limiter as the worlds store it: the starts of its current window, oldest first."""

    name: str
    starts: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The limiter as JSON-ready data."""
        return {"name": self.name, "recent_starts": len(self.starts), "starts": self.starts}


def decide(
    starts: Sequence[float], limit: int, per: float, now: float
) -> tuple[list[float], float | None]:
    """The sliding-window rule: whether one more start fits at ``now``.

    The limiter's clock never runs backwards: a ``now`` earlier than its latest start (a
    worker that read its clock before another's start was committed, or whose clock lags)
    counts as that latest start. Otherwise such a writer would judge a window the later
    writer had already pruned, and grant more than ``limit`` starts in ``per`` seconds.

    Args:
        starts: when the limiter's recent steps began (any order; older ones are dropped).
        limit: how many may begin in any window of ``per`` seconds.
        per: the window, in seconds.
        now: the time of the start asked for.

    Returns:
        The starts to keep (with the start added when it fits, oldest first: its time is
        the last of them), and ``None`` when it fits, else the earliest time it would
        (when enough starts leave the window).
    """
    ordered = sorted(starts)  # stored in order: linear
    if ordered and ordered[-1] > now:
        now = ordered[-1]
    kept = ordered[bisect_right(ordered, now - per) :]
    if len(kept) < limit:
        kept.append(now)  # the latest: the clock never runs backwards
        return kept, None
    # Past a lowered limit several starts must leave first: the (k - limit + 1)-th oldest.
    return kept, kept[len(kept) - limit] + per


def pack_starts(starts: Sequence[float]) -> bytes:
    """Start times as stored by worlds without an array type: little-endian doubles
    (a limiter of 1,000 starts a window is 8 KB; JSON text would cost 25 times the time)."""
    return struct.pack(f"<{len(starts)}d", *starts)


def unpack_starts(blob: bytes | None) -> list[float]:
    """The start times :func:`pack_starts` stored."""
    if not blob:
        return []
    return list(struct.unpack(f"<{len(blob) // 8}d", blob))
