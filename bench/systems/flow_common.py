"""What both sides of the flow-control benchmark (bench/flow.py) share."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowSizes:
    """How many runs: hand-offs measured, runs contending for one key."""

    handoff: int = 200
    contend: int = 10_000

    @classmethod
    def pick(cls, quick: bool, contend: int = 0) -> FlowSizes:
        """The sizes (``contend``: runs contending, when not 0)."""
        sizes = cls(handoff=20, contend=200) if quick else cls()
        return cls(sizes.handoff, contend) if contend else sizes


def percentile(xs: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``xs``."""
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    rank = max(math.ceil(p / 100 * len(ordered)) - 1, 0)
    return ordered[rank]


def handoff_gaps(enter: dict[int, float], exit_: dict[int, float]) -> list[float]:
    """From one holder's end to the next holder's start, in the order they held it."""
    order = sorted(enter, key=enter.__getitem__)
    return [enter[b] - exit_[a] for a, b in itertools.pairwise(order)]


def done_waiter(n: int) -> tuple[asyncio.Event, Callable[[], None]]:
    """An event set once the returned callback has been called ``n`` times."""
    event = asyncio.Event()
    count = [0]

    def done() -> None:
        count[0] += 1
        if count[0] >= n:
            event.set()

    return event, done
