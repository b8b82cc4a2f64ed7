"""Where to look next when a sweep has not bracketed focus: the coarse search, pure.

A sweep started far from focus sees one flank of the V-curve only (or stars too blurred to measure
on one side). Instead of creeping on in ``step``-sized extensions, the run walks downhill with growing
steps — ``step·growth``, ``step·growth²``, ... from the sweep's edge — one frame per step, until the
HFR rises again by more than ``search_rise`` over the best so far, or a frame has too few stars (too
defocused to measure counts as far: the walk has jumped past focus). The best point and its two
neighbours on the walk then bracket the minimum, and a new V-curve sweep is laid over that bracket
with a step to match it (never below ``step``). FocusMax needs a separate First Light Wizard for
this; here it is the same run.

Nothing here moves hardware: the routine (routine.py) asks these functions where to go and feeds them
the points it measured. Unit tests drive them with synthetic V-curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from .fit import FitOutcome, FocusPoint
from .settings import FocusSettings


def far_hfr(point: FocusPoint) -> float:
    """The point's HFR, or +inf when its stars were too few to measure (too far from focus, or clouds)."""
    return float(point.hfr) if point.usable else math.inf


def grid_sweep(centre: int, step: int, points: int, lo: int, hi: int, direction: int) -> list[int]:
    """``points`` positions ``step`` apart centred on ``centre``, shifted (then clipped) into [lo, hi],
    in the order they are visited (``direction`` +1: upwards)."""
    half = (points - 1) / 2
    positions = [centre + round((i - half) * step) for i in range(points)]
    if positions[0] < lo:
        positions = [p + lo - positions[0] for p in positions]
    if positions[-1] > hi:
        positions = [p - (positions[-1] - hi) for p in positions]
    positions = sorted({min(max(p, lo), hi) for p in positions})
    return positions if direction > 0 else positions[::-1]


def downhill_side(points: Sequence[FocusPoint], outcome: FitOutcome, settings: FocusSettings) -> str | None:
    """Which end ("low"/"high") of ``points`` focus lies beyond, or None when it is bracketed (or
    there is no telling).

    With a trusted fit: the end where fewer than ``min_points_each_side`` usable points lie beyond
    the minimum. Without one: frames with too few stars count as far, so when they all lie on one
    side of the measurable frames and the lowest HFR is at the other end, focus is that way. Else
    the end holding the lowest HFR, but only if the data show a real trend (a line or a curve beats a
    constant); a flat, noisy curve is a failure, not a reason to wander.
    """
    usable = sorted((p for p in points if p.usable), key=lambda p: p.position)
    if not usable:
        return None
    if outcome.best is not None:
        c = outcome.best.position
        below = sum(1 for p in usable if p.position < c)
        above = sum(1 for p in usable if p.position > c)
        if below < settings.min_points_each_side:
            return "low"
        if above < settings.min_points_each_side:
            return "high"
        return None
    lowest = min(usable, key=lambda p: p.hfr)
    far = [p for p in points if not p.usable]
    if far and all(p.position < usable[0].position for p in far):
        return "high" if lowest is usable[-1] else None
    if far and all(p.position > usable[-1].position for p in far):
        return "low" if lowest is usable[0] else None
    alpha = settings.fit.significance
    # a curve that beats a straight line says where its minimum is, even when it is not trusted
    # (usually because that minimum lies outside the points: exactly the case here)
    curves = [f for f in outcome.fits if f.p_vs_line < alpha and f.p_vs_constant < alpha
              and math.isfinite(f.position) and math.isfinite(f.hfr) and f.hfr > 0]
    if curves:
        c = min(curves, key=lambda f: f.p_vs_line).position
        if c < usable[0].position:
            return "low"
        if c > usable[-1].position:
            return "high"
    elif outcome.p_line_vs_constant < alpha and len(usable) >= 2:
        # one flank only, seen as a straight line: downhill is against its slope (noise may put the
        # lowest point next to the end rather than at it)
        return "low" if _slope(usable) > 0 else "high"
    trend = outcome.p_line_vs_constant < alpha or any(f.p_vs_constant < alpha for f in outcome.fits)
    if not trend:
        return None
    if lowest is usable[0]:
        return "low"
    if lowest is usable[-1]:
        return "high"
    return None


def shallow_minimum(points: Sequence[FocusPoint], outcome: FitOutcome, settings: FocusSettings) -> int | None:
    """Where to centre a wider sweep when the V-curve is real but too shallow for the step: no fit is
    trusted, yet a curve beats a constant and a line and has its minimum inside the points (it was
    rejected as too imprecise). Returns the measured position nearest that minimum (so a sweep at a
    multiple of the step reuses frames), or None: a flat curve is a failure, not a reason to widen."""
    if outcome.best is not None:
        return None
    usable = sorted((p for p in points if p.usable), key=lambda p: p.position)
    if len(usable) < 3:
        return None
    alpha = settings.fit.significance
    curves = [f for f in outcome.fits if f.p_vs_line < alpha and f.p_vs_constant < alpha
              and math.isfinite(f.position) and math.isfinite(f.hfr) and f.hfr > 0
              and usable[0].position <= f.position <= usable[-1].position]
    if not curves:
        return None
    c = min(curves, key=lambda f: f.p_vs_line).position
    return min(usable, key=lambda p: abs(p.position - c)).position


def _slope(points: Sequence[FocusPoint]) -> float:
    """Least-squares slope of HFR over position."""
    n = len(points)
    mx = sum(p.position for p in points) / n
    my = sum(p.hfr for p in points) / n
    sxx = sum((p.position - mx) ** 2 for p in points)
    return sum((p.position - mx) * (p.hfr - my) for p in points) / sxx if sxx else 0.0


@dataclass
class Walk:
    """The coarse search from one edge of what has been measured, in the direction HFR falls.

    ``path`` holds the points along the walk's line in walking order: the measured points first (the
    sweep's, ordered towards ``side``), then each walk frame as it is added.
    """

    side: str  # "low" | "high"
    step: int  # the spacing the walk grows from (the sweep's)
    growth: float
    rise: float  # fraction over the best HFR that counts as risen again
    path: list[FocusPoint] = field(default_factory=list)
    walked: int = 0  # walk frames added
    level: int = 0  # walk frames in a row that neither fell below the best nor rose past it

    @classmethod
    def start(cls, points: Sequence[FocusPoint], side: str, step: int, settings: FocusSettings) -> "Walk":
        ordered = sorted(points, key=lambda p: p.position, reverse=(side == "low"))
        return cls(side, int(step), settings.search_growth, settings.search_rise, list(ordered))

    @property
    def sign(self) -> int:
        return -1 if self.side == "low" else 1

    def best_index(self) -> int | None:
        values = [far_hfr(p) for p in self.path]
        finite = [i for i, v in enumerate(values) if math.isfinite(v)]
        return min(finite, key=lambda i: values[i]) if finite else None

    def next_position(self, lo: int, hi: int) -> int | None:
        """The next walk position (the last one plus ``step·growth^k``), clipped into [lo, hi]; None when
        the walk stands at the focuser's limit already."""
        last = self.path[-1].position
        stride = max(1, round(self.step * self.growth ** (self.walked + 1)))
        target = min(max(last + self.sign * stride, lo), hi)
        return None if target == last else int(target)

    def add(self, point: FocusPoint) -> None:
        i = self.best_index()
        best = far_hfr(self.path[i]) if i is not None else math.inf
        value = far_hfr(point)
        # a drop of less than a third of ``rise`` is noise, not a fall
        self.level = self.level + 1 if best * (1 - self.rise / 3) <= value <= best * (1 + self.rise) else 0
        self.path.append(point)
        self.walked += 1

    @property
    def stalled(self) -> bool:
        """Three frames in a row neither clearly lower than the best nor risen past it, over strides
        that grew 8-fold: HFR does not follow focus here."""
        return self.level >= 3

    @property
    def bracketed(self) -> bool:
        """True once a point after the best one has risen by more than ``rise`` (or is too blurred to
        measure): the minimum lies between the best point's neighbours."""
        i = self.best_index()
        if i is None or i == len(self.path) - 1:
            return False
        best = far_hfr(self.path[i])
        return any(far_hfr(p) > best * (1 + self.rise) for p in self.path[i + 1:])

    def plan_vcurve(self, settings: FocusSettings, lo: int, hi: int) -> tuple[int, int]:
        """(centre, step) of the V-curve sweep over the bracket, once ``bracketed``.

        The bracket runs from the best point's predecessor on the path to the first point after it
        that rose. The sweep spans it with ``points`` positions (never closer than ``settings.step``),
        centred on the vertex of a parabola through the bracket's usable points, snapped to the grid
        through the best point so that frames already taken there are reused.
        """
        i = self.best_index()
        if i is None:
            raise ValueError("no usable point on the walk")
        best = self.path[i]
        a = self.path[max(i - 1, 0)]
        best_value = far_hfr(best)
        j = next(k for k in range(i + 1, len(self.path)) if far_hfr(self.path[k]) > best_value * (1 + self.rise))
        r = self.path[j]
        inside = [p for p in self.path[max(i - 1, 0):j + 1] if p.usable]
        vertex = parabola_vertex([p.position for p in inside], [p.hfr for p in inside])
        span = abs(r.position - a.position)
        step = max(int(settings.step), int(round(span / max(settings.points - 1, 1))))
        lo_b, hi_b = sorted((a.position, r.position))
        centre = best.position
        if vertex is not None and lo_b <= vertex <= hi_b:
            centre = best.position + round((vertex - best.position) / step) * step
        return int(min(max(centre, lo), hi)), step


def parabola_vertex(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The minimum of the least-squares parabola through (x, y), or None when there are fewer than 3
    distinct positions or the parabola does not open upwards."""
    if len(set(x)) < 3:
        return None
    x0 = sum(x) / len(x)
    scale = max(abs(v - x0) for v in x) or 1.0
    u = [(v - x0) / scale for v in x]
    # normal equations for y = c0 + c1·u + c2·u²
    s = [sum(ui ** k for ui in u) for k in range(5)]
    t = [sum(yi * ui ** k for ui, yi in zip(u, y)) for k in range(3)]
    m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]]
    c = _solve3(m, t)
    if c is None or c[2] <= 0:
        return None
    return x0 + scale * (-c[1] / (2 * c[2]))


def _solve3(m: list[list[float]], t: list[float]) -> list[float] | None:
    def det(a):
        return (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))

    d = det(m)
    if abs(d) < 1e-12:
        return None
    out = []
    for k in range(3):
        mk = [row[:] for row in m]
        for r in range(3):
            mk[r][k] = t[r]
        out.append(det(mk) / d)
    return out
