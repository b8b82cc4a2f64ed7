"""The autofocus routine: sweep, extend when the minimum is at an edge, check, and always clean up.

It drives whatever camera and focuser it is handed (see interfaces.py) and sees focus only through
the images: star count and HFR from ``measure``. The promise to the user is about where the focuser is
left: at a position whose check frame confirmed the fit, or back where it started, with the reason.

A run, in order:

1. sweep ``points`` positions ``step`` apart centred on the start (shifted inside the focuser's range),
   each approached moving in the configured direction, overshooting by ``backlash`` when needed;
2. fit (fit.py); if the minimum is at an edge, measure ``extension_points`` more beyond that edge and
   refit, at most ``max_extensions`` times;
3. move to the fitted minimum and take one check frame; accept only if its HFR is within
   ``check_tolerance`` of the prediction;
4. on any failure (too few stars, no trusted fit, extension limit, timeout, stop request, device or
   measurement error) move back to the start position and report ``failed`` with the reason.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from .fit import FitOutcome, FocusPoint, fit_vcurve
from .interfaces import FocusCamera, FocusFocuser, FocusProgress, Measure, Progress
from .settings import FocusSettings

log = logging.getLogger(__name__)


@dataclass
class FocusResult:
    status: Literal["ok", "failed"]
    reason: str | None  # None when ok
    position: int  # where the focuser was left: the focus on success, the start position on failure
    start_position: int
    hfr: float | None  # HFR of the check frame (None when the run failed before it)
    predicted_hfr: float | None
    frames: int  # sweep + extension + check frames taken
    model: str | None  # the fitted model chosen, or None
    sigma_position: float | None  # 1-σ uncertainty of the fitted minimum, steps
    points: list[FocusPoint]  # every sweep/extension frame, in the order taken
    check: FocusPoint | None = None
    fit: FitOutcome | None = None
    extensions: int = 0
    restored: bool = True  # False only if a failed run could not even move back to the start
    started: str = ""  # ISO 8601 UTC
    duration: float = 0.0  # seconds
    plot: str | None = None  # V-curve PNG written by record.save_run
    record: str | None = None  # JSON record written by record.save_run
    metadata: dict[str, Any] = field(default_factory=dict)  # filter, temperature, node... as given

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """The one-line JSON of ``indisync focus --json`` (and of the MQTT focus report)."""
        return {
            "status": self.status,
            "reason": self.reason,
            "position": self.position,
            "start_position": self.start_position,
            "hfr": _round(self.hfr),
            "frames": self.frames,
            "model": self.model,
            "points": [[p.position, _round(p.hfr), p.stars] for p in self.points],
            "plot": self.plot,
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


class _RunFailed(Exception):
    """A run cannot produce a trusted result; the message is the reason reported. Never escapes."""


def plan_sweep(start: int, settings: FocusSettings, lo: int, hi: int) -> list[int]:
    """``points`` positions ``step`` apart centred on ``start``, shifted (then clipped) into [lo, hi],
    in the order they are visited (the approach direction)."""
    half = (settings.points - 1) / 2
    positions = [start + round((i - half) * settings.step) for i in range(settings.points)]
    if positions[0] < lo:
        positions = [p + lo - positions[0] for p in positions]
    if positions[-1] > hi:
        positions = [p - (positions[-1] - hi) for p in positions]
    positions = sorted({min(max(p, lo), hi) for p in positions})
    return positions if settings.direction > 0 else positions[::-1]


def plan_extension(points: list[FocusPoint], side: str, settings: FocusSettings, lo: int, hi: int) -> list[int]:
    """Up to ``extension_points`` new positions beyond the ``side`` ("low"/"high") end, inside [lo, hi]."""
    taken = {p.position for p in points}
    if side == "low":
        edge = min(taken)
        new = [edge - k * settings.step for k in range(1, settings.extension_points + 1)]
    else:
        edge = max(taken)
        new = [edge + k * settings.step for k in range(1, settings.extension_points + 1)]
    new = sorted({p for p in new if lo <= p <= hi} - taken)
    return new if settings.direction > 0 else new[::-1]


def edge_side(points: list[FocusPoint], outcome: FitOutcome, settings: FocusSettings) -> str | None:
    """Which end ("low"/"high") the sweep must be extended towards, or None.

    With a trusted fit: the end where fewer than ``min_points_each_side`` usable points lie beyond
    the minimum. Without one: the end holding the lowest HFR, but only if the data show a real trend
    (a line or a curve beats a constant); a flat, noisy curve is a failure, not a reason to wander.
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
    alpha = settings.fit.significance
    trend = outcome.p_line_vs_constant < alpha or any(f.p_vs_constant < alpha for f in outcome.fits)
    if not trend:
        return None
    lowest = min(usable, key=lambda p: p.hfr)
    if lowest is usable[0]:
        return "low"
    if lowest is usable[-1]:
        return "high"
    return None


def run_autofocus(
    camera: FocusCamera,
    focuser: FocusFocuser,
    measure: Measure,
    settings: FocusSettings,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    metadata: dict[str, Any] | None = None,
    save: bool = True,
) -> FocusResult:
    """One autofocus run. Never raises for a focus failure: the result says ``failed`` and why.

    ``should_stop`` is polled between frames (a node's abort request). ``save`` writes the PNG and
    JSON record into ``settings.output_dir`` (when set). KeyboardInterrupt still returns the focuser
    to its start before propagating. Only an error reading the focuser before anything moved
    (its position or limits) propagates as is.
    """
    run = _Run(camera, focuser, measure, settings, progress, should_stop, clock)
    result = run.execute()
    result.metadata = dict(metadata or {})
    if save and settings.output_dir:
        from .record import save_run  # Pillow (the PNG) is imported only when a record is written

        try:
            result.plot, result.record = save_run(result, settings)
        except Exception as exc:  # a failed plot must not turn a good focus into a failure
            log.warning("could not write the focus record to %s: %s", settings.output_dir, exc)
    return result


class _Run:
    def __init__(self, camera, focuser, measure, settings, progress, should_stop, clock):
        self.camera, self.focuser, self.measure, self.s = camera, focuser, measure, settings
        self.progress, self.should_stop, self.clock = progress, should_stop, clock
        self.points: list[FocusPoint] = []
        self.frames = 0
        self.extensions = 0
        self.here: int | None = None  # last position the focuser reported
        self.approached = False  # True once the last move ended moving in the approach direction
        self.moved = False  # any move commanded yet (a run failing before one has nothing to undo)
        self.outcome: FitOutcome | None = None
        self.check: FocusPoint | None = None

    def execute(self) -> FocusResult:
        started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.t0 = self.clock()
        self.start = int(self.focuser.position)
        self.here = self.start
        self.lo, self.hi = int(self.focuser.min_position), int(self.focuser.max_position)
        try:
            position, predicted = self._focus()
        except _RunFailed as exc:
            return self._fail(str(exc), started)
        except Exception as exc:
            log.exception("autofocus aborted by an error")
            return self._fail(f"device or measurement error: {type(exc).__name__}: {exc}", started)
        except BaseException:
            self._restore()  # Ctrl-C: leave the focuser where we found it, then let it propagate
            raise
        best = self.outcome.best
        self._emit("done", position, self.check.hfr, self.check.stars,
                   f"focus {position} ({best.model}, ±{best.sigma_position:.0f})")
        return self._result("ok", None, position, started, predicted)

    # ----------------------------------------------------------------------------------- steps

    def _focus(self) -> tuple[int, float]:
        s = self.s
        planned = plan_sweep(self.start, s, self.lo, self.hi)
        for i, pos in enumerate(planned):
            self._measure_at(pos, "sweep")
            self._require_stars(remaining=len(planned) - i - 1)
        while True:
            self.outcome = fit_vcurve(self.points, s.fit)
            side = edge_side(self.points, self.outcome, s)
            if side is None:
                break
            if self.extensions >= s.max_extensions:
                raise _RunFailed(
                    f"the minimum is still at the {side} end after {self.extensions} extensions "
                    f"(focus.max_extensions): start closer to focus or raise focus.step"
                )
            new = plan_extension(self.points, side, s, self.lo, self.hi)
            if not new and self.outcome.best is not None:
                break  # focus near the end of the focuser's travel: nothing more to see, the check decides
            if not new:
                raise _RunFailed(f"the minimum is at the {side} end of the focuser's travel ({self.lo}..{self.hi})")
            self.extensions += 1
            for i, pos in enumerate(new):
                self._measure_at(pos, "extend")
                self._require_stars(remaining=len(new) - i - 1)
        best = self.outcome.best
        if best is None:
            raise _RunFailed(f"no trusted fit: {self.outcome.reason}")
        target = min(max(round(best.position), self.lo), self.hi)
        self.check = self._measure_at(target, "check", record=False)
        predicted = float(best.predict([target])[0])
        if not self.check.usable:
            raise _RunFailed(f"check frame at {target} had {self.check.stars} stars (< focus.min_stars={s.min_stars})")
        if abs(self.check.hfr - predicted) > s.check_tolerance * predicted:
            raise _RunFailed(
                f"check frame HFR {self.check.hfr:.2f} px at {target} is not within "
                f"{s.check_tolerance:.0%} of the predicted {predicted:.2f} px"
            )
        return target, predicted

    def _require_stars(self, remaining: int) -> None:
        """Fail as soon as the fit can no longer get enough usable points (clouds: fail early)."""
        usable = sum(1 for p in self.points if p.usable)
        if usable + remaining < self.s.fit.min_points:
            starless = len(self.points) - usable
            raise _RunFailed(
                f"too few stars: {starless} of {len(self.points)} frames had fewer than "
                f"{self.s.min_stars} stars (clouds, dome closed, or exposure too short?)"
            )

    def _measure_at(self, position: int, phase: str, record: bool = True) -> FocusPoint:
        self._check_time()
        reached = self._move(position)
        self._check_time()
        image = self.camera.expose(self.s.exposure, self.s.binning)
        self.frames += 1
        m = self.measure(image)
        stars = int(m.star_count)
        hfr = float(m.median_hfr) if m.median_hfr is not None else math.nan
        spread = float(m.hfr_spread) if m.hfr_spread is not None else math.nan
        usable = stars >= self.s.min_stars and math.isfinite(hfr) and hfr > 0
        point = FocusPoint(reached, hfr if usable else None, spread if usable else None, stars)
        if record:
            self.points.append(point)
        self._emit(phase, reached, point.hfr, stars)
        return point

    def _move(self, target: int) -> int:
        """Move so that ``target`` is reached moving in the approach direction."""
        d = self.s.direction
        target = min(max(int(target), self.lo), self.hi)
        if self.approached and self.here == target:
            return target
        self.moved = True
        if not self.approached or d * (target - self.here) < 0:
            overshoot = min(max(target - d * self.s.backlash, self.lo), self.hi)
            if overshoot != target:
                self.here = int(self.focuser.move_to(overshoot))
        self.here = int(self.focuser.move_to(target))
        self.approached = True
        return self.here

    def _check_time(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise _RunFailed("stopped on request")
        elapsed = self.clock() - self.t0
        if elapsed > self.s.timeout:
            raise _RunFailed(f"timed out after {elapsed:.0f} s (focus.timeout={self.s.timeout:.0f} s)")

    # ----------------------------------------------------------------------------------- endings

    def _restore(self) -> tuple[bool, str | None]:
        if not self.moved:
            return True, None
        # after an error mid-move our idea of where the focuser is may be stale: ask it, and take
        # the backlash overshoot regardless
        self.approached = False
        try:
            self.here = int(self.focuser.position)
        except Exception:
            pass
        try:
            reached = self._move(self.start)
        except Exception as exc:
            log.error("could not return the focuser to its start position %d: %s", self.start, exc)
            return False, f"{type(exc).__name__}: {exc}"
        return reached == self.start, None if reached == self.start else f"it stopped at {reached}"

    def _fail(self, reason: str, started: str) -> FocusResult:
        restored, problem = self._restore()
        if not restored:
            reason += f"; could not return to the start position {self.start}: {problem}"
        position = self.here if self.here is not None else self.start
        self._emit("failed", position, None, 0, reason)
        result = self._result("failed", reason, position, started, None)
        result.restored = restored
        return result

    def _result(self, status, reason, position, started, predicted) -> FocusResult:
        best = self.outcome.best if self.outcome is not None else None
        ok = status == "ok"
        return FocusResult(
            status=status,
            reason=reason,
            position=int(position),
            start_position=self.start,
            hfr=self.check.hfr if ok and self.check else None,
            predicted_hfr=predicted,
            frames=self.frames,
            model=best.model if best else None,
            sigma_position=best.sigma_position if best else None,
            points=list(self.points),
            check=self.check,
            fit=self.outcome,
            extensions=self.extensions,
            started=started,
            duration=self.clock() - self.t0,
        )

    def _emit(self, phase: str, position: int, hfr: float | None, stars: int, message: str | None = None) -> None:
        if self.progress is None:
            return
        try:
            self.progress(FocusProgress(phase, self.frames, int(position), hfr, stars, message))
        except Exception:  # a broken relay must not break focusing
            log.exception("focus progress callback failed")
