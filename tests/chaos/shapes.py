"""The runs the driver starts: which workflow, with what, and what it must return.

The expected results repeat chaosmod's arithmetic (a step ``work(x)`` returns ``2x+1``,
``square(x)`` returns ``x*x``, a child ``kid(n)`` the sum of the first ``n`` squares).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SHAPES = ("sequence", "fanout", "napper", "approval", "streamer", "family", "medley")


def kid_result(n: int) -> int:
    return sum(i * i for i in range(n))


@dataclass
class Planned:
    """One run the driver starts, and what it must come to."""

    serial: int
    shape: str
    args: tuple[Any, ...]
    expected: int
    #: The hook token the driver resumes (``None``: the run waits for no hook).
    token: str | None = None
    nudge: int = 0
    #: Chunks the run's stream must hold at the end (0: the run writes no stream).
    chunks: int = 0
    run_id: str = ""
    resumed: bool = False
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def plan(rng: random.Random, serial: int, tag: str) -> Planned:
    """A run of a random shape with random sizes (all drawn from ``rng``)."""
    shape = SHAPES[serial % len(SHAPES)] if serial < len(SHAPES) else rng.choice(SHAPES)
    ms = rng.choice((20, 50, 100, 200, 400))
    n = rng.randint(2, 6)
    token = f"chaos:{tag}:{serial}"
    nudge = rng.randint(1, 50)
    if shape == "sequence":
        return Planned(serial, shape, (n, ms), n * n)
    if shape == "fanout":
        expected = sum((i + 1) * (2 * i + 1) for i in range(n))
        return Planned(serial, shape, (n, ms), expected)
    if shape == "napper":
        return Planned(serial, shape, (ms,), 3 + 9)
    if shape == "approval":
        return Planned(serial, shape, (token, ms), 3 + 2 * nudge + 1, token=token, nudge=nudge)
    if shape == "streamer":
        chunks = rng.randint(3, 12)
        return Planned(serial, shape, (chunks, ms // 4 + 5), chunks, chunks=chunks)
    if shape == "family":
        expected = 2 * n + 1 + kid_result(n) + kid_result(n + 1)
        return Planned(serial, shape, (n, ms), expected)
    chunks = rng.randint(3, 8)
    expected = 3 + 4 + nudge + chunks + kid_result(2)
    return Planned(
        serial,
        "medley",
        (token, chunks, ms // 4 + 5),
        expected,
        token=token,
        nudge=nudge,
        chunks=chunks,
    )
