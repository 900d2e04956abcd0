"""The timeline's time scale: where a moment falls on the chart's axis, and which part
of the axis is shown.

A long idle stretch (a sleep of hours between steps of seconds) would squeeze the steps
into slivers, so :func:`make_scale` compresses it: each idle gap of at least
:data:`GAP_MIN_SECONDS` and :data:`GAP_MIN_SHARE` of the span is drawn :data:`GAP_WIDTH`
wide and marked (:class:`Gap`), and the busy stretches share the rest in proportion to
their length. :class:`Zoom` is a window of the axis (zoom in, out, pan) and whether the
compression is on (``scale=real`` turns it off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

__all__ = ["Gap", "Scale", "Zoom", "human_duration", "make_scale"]

#: An idle stretch is compressed when it lasts at least this long ...
GAP_MIN_SECONDS = 30.0
#: ... and at least this share of the chart's span.
GAP_MIN_SHARE = 0.2
#: How wide a compressed gap is drawn, in percent of the axis (all gaps: at most 40%).
GAP_WIDTH = 6.0
#: The narrowest window a zoom shows, in percent of the axis.
MIN_WINDOW = 0.5


@dataclass(frozen=True, slots=True)
class Zoom:
    """What part of the chart to show: the window ``lo``..``hi`` of the axis (percent of
    the whole chart) and whether idle gaps are compressed (``compress``)."""

    lo: float = 0.0
    hi: float = 100.0
    compress: bool = True

    @classmethod
    def parse(cls, window: str | None, scale: str | None = None) -> Zoom:
        """From the query string: ``zoom=LO-HI`` (percent) and ``scale=real``."""
        lo, hi = 0.0, 100.0
        if window:
            a, _, b = window.partition("-")
            try:
                lo, hi = float(a), float(b)
            except ValueError:
                lo, hi = 0.0, 100.0
        lo, hi = max(min(lo, 100.0), 0.0), max(min(hi, 100.0), 0.0)
        if hi - lo < MIN_WINDOW:
            lo, hi = 0.0, 100.0
        return cls(lo, hi, compress=scale != "real")

    @property
    def whole(self) -> bool:
        """Whether the whole chart is shown."""
        return self.lo <= 0.0 and self.hi >= 100.0

    def to(self, lo: float, hi: float) -> Zoom:
        """The window ``lo``..``hi``, kept within the axis and its size kept."""
        width = min(max(hi - lo, MIN_WINDOW), 100.0)
        lo = min(max(lo, 0.0), 100.0 - width)
        return Zoom(round(lo, 3), round(lo + width, 3), self.compress)

    def zoomed_in(self) -> Zoom:
        """Half the window, around its middle."""
        mid, width = (self.lo + self.hi) / 2, (self.hi - self.lo) / 2
        return self.to(mid - width / 2, mid + width / 2)

    def zoomed_out(self) -> Zoom:
        """Twice the window, around its middle."""
        mid, width = (self.lo + self.hi) / 2, (self.hi - self.lo) * 2
        return self.to(mid - width / 2, mid + width / 2)

    def panned(self, direction: int) -> Zoom:
        """Half a window earlier (``-1``) or later (``1``)."""
        step = (self.hi - self.lo) / 2 * direction
        return self.to(self.lo + step, self.hi + step)

    def params(self, **change: Any) -> dict[str, str]:
        """This zoom as query parameters (``change``: ``lo``, ``hi``, ``compress``)."""
        z = replace(self, **change)
        out = {}
        if not z.whole:
            out["zoom"] = f"{z.lo:g}-{z.hi:g}"
        if not z.compress:
            out["scale"] = "real"
        return out


@dataclass(frozen=True, slots=True)
class Gap:
    """An idle stretch drawn compressed: ``x``, ``w`` on the axis, ``seconds`` long."""

    start: float
    end: float
    x: float
    w: float

    @property
    def label(self) -> str:
        """``"1.0h idle"``."""
        return f"{human_duration(self.end - self.start)} idle"


@dataclass(frozen=True, slots=True)
class Scale:
    """A piecewise-linear map from time to the axis (percent): ``points`` are
    ``(time, x)`` pairs, increasing in both."""

    points: tuple[tuple[float, float], ...]
    gaps: tuple[Gap, ...] = ()

    def x(self, t: float) -> float:
        """Where time ``t`` is on the axis (clamped to 0..100)."""
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, x0), (t1, x1) in pairwise(pts):
            if t <= t1:
                return x0 if t1 <= t0 else x0 + (t - t0) / (t1 - t0) * (x1 - x0)
        return pts[-1][1]

    def t(self, x: float) -> float:
        """The time at axis position ``x``."""
        pts = self.points
        for (t0, x0), (t1, x1) in pairwise(pts):
            if x <= x1:
                return t0 if x1 <= x0 else t0 + (x - x0) / (x1 - x0) * (t1 - t0)
        return pts[-1][0]


def make_scale(
    start: float, end: float, busy: Sequence[tuple[float, float]], *, compress: bool
) -> Scale:
    """The scale of a chart from ``start`` to ``end``; with ``compress``, the idle gaps
    between the ``busy`` stretches (see the module's docstring) are drawn narrow."""
    total = max(end - start, 1e-3)
    linear = Scale(((start, 0.0), (start + total, 100.0)))
    if not compress:
        return linear
    spans = sorted((max(a, start), min(b, end)) for a, b in busy if b >= start and a <= end)
    idle: list[tuple[float, float]] = []
    at = start
    for a, b in spans:
        if a - at >= max(GAP_MIN_SECONDS, GAP_MIN_SHARE * total):
            idle.append((at, a))
        at = max(at, b)
    if end - at >= max(GAP_MIN_SECONDS, GAP_MIN_SHARE * total):
        idle.append((at, end))
    if not idle:
        return linear
    gap_w = min(GAP_WIDTH, 40.0 / len(idle))
    busy_time = total - sum(b - a for a, b in idle)
    per_second = (100.0 - gap_w * len(idle)) / busy_time if busy_time > 0 else 0.0
    if busy_time <= 0:
        gap_w = 100.0 / len(idle)
    points = [(start, 0.0)]
    gaps = []
    x = 0.0
    for a, b in idle:
        x += (a - points[-1][0]) * per_second
        points.append((a, x))
        gaps.append(Gap(a, b, x, gap_w))
        x += gap_w
        points.append((b, x))
    points.append((start + total, 100.0))
    return Scale(tuple(points), tuple(gaps))


def human_duration(seconds: float | None) -> str:
    """``0.8ms``, ``1.25s``, ``3.5m``, ``2.0h``, ``3.1d``."""
    if seconds is None:
        return "-"
    d = max(seconds, 0.0)
    if d < 1:
        return f"{d * 1000:.1f}ms"
    if d < 120:
        return f"{d:.2f}s"
    if d < 7200:
        return f"{d / 60:.1f}m"
    if d < 172800:
        return f"{d / 3600:.1f}h"
    return f"{d / 86400:.1f}d"
