"""The autofocus routine: sweep, extend or search when focus is not bracketed, check, always clean up.

It drives whatever camera and focuser it is handed (see interfaces.py) and sees focus only through
the images: star count and HFR from ``measure``. The promise to the user is about where the focuser is
left: at a position whose check frame confirmed the fit, or back where it started, with the reason.

A run, in order:

1. sweep ``points`` positions ``step`` apart centred on the start (shifted inside the focuser's range),
   each approached moving in the configured direction, overshooting by ``backlash`` when needed;
2. fit (fit.py); if a trusted minimum sits at an edge, measure ``extension_points`` more beyond that
   edge and refit, at most ``max_extensions`` times;
3. if focus is still not bracketed (only one flank of the V was seen, or frames too blurred to
   measure lie on one side), walk downhill with growing strides until the HFR rises again, then sweep
   a V-curve over that bracket with a step to match (search.py) and go back to 2;
4. move to the fitted minimum and take one check frame; accept only if its HFR is within
   ``check_tolerance`` of the prediction;
5. on any failure (too few stars, no trusted fit, ``max_frames``, focuser limit, timeout, stop request,
   device or measurement error) move back to the start position and report ``failed`` with the reason.

Frames of a planned sweep are pipelined: as soon as frame n has arrived the focuser moves to the next
position and frame n+1 is exposed while frame n is measured in a worker thread. A frame's position is
the one the focuser reported before it was exposed; the focuser never moves while a frame is being
exposed or read out (the INDI CCD simulator renders the frame at readout, from the focuser's position
then). The coarse search's and the check's frames are measured before the next move: where to go next
depends on them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from .fit import FitOutcome, FocusPoint, fit_vcurve
from .interfaces import FocusCamera, FocusFocuser, FocusProgress, Measure, Progress
from .search import Walk, downhill_side, grid_sweep, shallow_minimum
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


def plan_sweep(start: int, settings: FocusSettings, lo: int, hi: int, step: int | None = None) -> list[int]:
    """``points`` positions ``step`` (default ``settings.step``) apart centred on ``start``, shifted
    (then clipped) into [lo, hi], in the order they are visited (the approach direction)."""
    return grid_sweep(start, settings.step if step is None else step, settings.points, lo, hi, settings.direction)


def plan_extension(points: list[FocusPoint], side: str, settings: FocusSettings, lo: int, hi: int,
                   step: int | None = None) -> list[int]:
    """Up to ``extension_points`` new positions ``step`` apart beyond the ``side`` ("low"/"high") end,
    inside [lo, hi]."""
    step = settings.step if step is None else step
    taken = {p.position for p in points}
    if side == "low":
        edge = min(taken)
        new = [edge - k * step for k in range(1, settings.extension_points + 1)]
    else:
        edge = max(taken)
        new = [edge + k * step for k in range(1, settings.extension_points + 1)]
    new = sorted({p for p in new if lo <= p <= hi} - taken)
    return new if settings.direction > 0 else new[::-1]


def edge_side(points: list[FocusPoint], outcome: FitOutcome, settings: FocusSettings) -> str | None:
    """Which end ("low"/"high") focus lies beyond, or None (see search.downhill_side)."""
    return downhill_side(points, outcome, settings)


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


class _Pending:
    """One frame being measured in a worker thread. The thread stores the result or whatever it raised
    (KeyboardInterrupt included) for the run to collect; an error nobody collects is logged."""

    def __init__(self, measure: Measure, image: Any, frame: int, position: int, phase: str, record: bool):
        self.frame, self.position, self.phase, self.record = frame, position, phase, record
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self._abandoned = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, args=(measure, image),
                                        name=f"focus-measure-{frame}", daemon=True)
        self._thread.start()

    def _work(self, measure: Measure, image: Any) -> None:
        try:
            self.value = measure(image)
        except BaseException as exc:  # handed to the run (or logged): a worker never dies silently
            self.error = exc
        finally:
            with self._lock:
                self.done.set()
                abandoned = self._abandoned
            if abandoned and self.error is not None:
                log.warning("measuring focus frame %d failed after the run had ended: %r", self.frame, self.error)

    def abandon(self) -> None:
        """The run ended without collecting this frame: log its error, now or when it ends."""
        with self._lock:
            self._abandoned = True
            finished = self.done.is_set()
        if finished and self.error is not None:
            log.warning("measuring focus frame %d failed: %r", self.frame, self.error)


class _Run:
    def __init__(self, camera, focuser, measure, settings, progress, should_stop, clock):
        self.camera, self.focuser, self.measure, self.s = camera, focuser, measure, settings
        self.progress, self.should_stop, self.clock = progress, should_stop, clock
        self.points: list[FocusPoint] = []
        self.frames = 0
        self.extensions = 0
        self.searches = 0  # coarse searches run
        self.widenings = 0  # sweeps repeated with a wider step over a V too shallow for the last one
        self.here: int | None = None  # last position the focuser reported
        self.approached = False  # True once the last move ended moving in the approach direction
        self.moved = False  # any move commanded yet (a run failing before one has nothing to undo)
        self.outcome: FitOutcome | None = None
        self.check: FocusPoint | None = None
        self.pending: _Pending | None = None  # the frame being measured while the next one is taken

    def execute(self) -> FocusResult:
        started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.t0 = self.clock()
        self.start = int(self.focuser.position)
        self.here = self.start
        self.lo, self.hi = int(self.focuser.min_position), int(self.focuser.max_position)
        try:
            position, predicted = self._focus()
        except _RunFailed as exc:
            self._abandon()
            return self._fail(str(exc), started)
        except Exception as exc:
            self._abandon()
            log.exception("autofocus aborted by an error")
            return self._fail(f"device or measurement error: {type(exc).__name__}: {exc}", started)
        except BaseException:
            self._abandon()
            self._restore()  # Ctrl-C: leave the focuser where we found it, then let it propagate
            raise
        best = self.outcome.best
        self._emit("done", position, self.check.hfr, self.check.stars,
                   f"focus {position} ({best.model}, ±{best.sigma_position:.0f})")
        return self._result("ok", None, position, started, predicted)

    # ----------------------------------------------------------------------------------- steps

    def _focus(self) -> tuple[int, float]:
        s = self.s
        step = s.step
        planned = plan_sweep(self.start, s, self.lo, self.hi)
        window = (min(planned), max(planned))
        self._take(planned, "sweep")
        extensions = 0  # of the current V-curve
        widenings = 0  # of the current V-curve
        while True:
            inside = self._window(window)
            self.outcome = fit_vcurve(inside, s.fit)
            side = edge_side(inside, self.outcome, s)
            if side is None:
                if self.outcome.best is not None or widenings >= s.max_extensions:
                    break
                if sum(1 for p in inside if p.usable) < s.fit.min_points:
                    break  # too few stars: nothing to widen
                # no trusted fit and no side to go to: a V too shallow (or too noisy) for this step.
                # Sweep again with a wider step, centred on the curve's minimum if one shows, else where
                # this sweep was; at most max_extensions times (a focuser that changes nothing fails).
                centre = shallow_minimum(inside, self.outcome, s)
                if centre is None:
                    middle = (window[0] + window[1]) / 2
                    centre = min((p.position for p in inside), key=lambda x: abs(x - middle))
                widenings += 1
                step = max(step + 1, round(step * s.search_growth))
                planned = plan_sweep(centre, s, self.lo, self.hi, step)
                taken = {p.position for p in self.points}
                new = [p for p in planned if p not in taken]
                if not new:
                    break
                self._budget(len(new), "widening a V-curve too shallow for its step")
                self.widenings += 1
                self._take(new, "sweep")
                window = (min(window[0], *planned), max(window[1], *planned))
                continue
            if self.outcome.best is not None and extensions < s.max_extensions:
                new = plan_extension(inside, side, s, self.lo, self.hi, step)
                if not new:
                    break  # focus near the end of the focuser's travel: nothing more to see, the check decides
                self._budget(len(new), f"extending the sweep towards the {side} end")
                extensions += 1
                self.extensions += 1
                self._take(new, "extend")
                window = (min(window[0], *new), max(window[1], *new))
                continue
            # focus is not bracketed: walk downhill with growing strides, then a V-curve over the bracket
            before = self.frames
            centre, step = self._search(inside, side, step)
            planned = plan_sweep(centre, s, self.lo, self.hi, step)
            window = (min(planned), max(planned))
            taken = {p.position for p in self.points}
            new = [p for p in planned if p not in taken]
            self._budget(len(new), "sweeping the V-curve found by the coarse search")
            self._take(new, "sweep")
            extensions = widenings = 0
            if self.frames == before:  # the data bracket focus already, and the V-curve over them has no new point
                raise _RunFailed(f"no trusted fit: {self.outcome.reason or 'the minimum is at the ' + side + ' end'}")
        best = self.outcome.best
        if best is None:
            inside = self._window(window)
            usable = sum(1 for p in inside if p.usable)
            if usable < s.fit.min_points:
                raise _RunFailed(
                    f"too few stars: {len(inside) - usable} of {len(inside)} frames had fewer than "
                    f"{s.min_stars} stars (clouds, dome closed, exposure too short, or too far from focus?)"
                )
            raise _RunFailed(f"no trusted fit: {self.outcome.reason}")
        target = min(max(round(best.position), self.lo), self.hi)
        self._budget(0, "the check frame")
        self.check = self._take([target], "check", record=False)[0]
        predicted = float(best.predict([target])[0])
        if not self.check.usable:
            raise _RunFailed(f"check frame at {target} had {self.check.stars} stars (< focus.min_stars={s.min_stars})")
        if abs(self.check.hfr - predicted) > s.check_tolerance * predicted:
            raise _RunFailed(
                f"check frame HFR {self.check.hfr:.2f} px at {target} is not within "
                f"{s.check_tolerance:.0%} of the predicted {predicted:.2f} px"
            )
        return target, predicted

    def _window(self, window: tuple[int, int]) -> list[FocusPoint]:
        """The points the current V-curve is fitted to: those within its span (a coarse search's far
        frames, taken at another scale, are kept in the record but not fitted)."""
        return [p for p in self.points if window[0] <= p.position <= window[1]]

    def _search(self, inside: list[FocusPoint], side: str, step: int) -> tuple[int, int]:
        """Walk from the ``side`` edge until the minimum is bracketed; return the V-curve's (centre, step)."""
        s = self.s
        self.searches += 1
        walk = Walk.start(inside, side, step, s)
        while not walk.bracketed:
            target = walk.next_position(self.lo, self.hi)
            if target is None:
                raise _RunFailed(
                    f"the minimum is at the {side} end of the focuser's travel ({self.lo}..{self.hi})"
                )
            # room for this frame, a V-curve sweep and the check
            if self.frames + 1 + s.points + 1 > s.max_frames:
                raise _RunFailed(
                    f"focus not found within focus.max_frames={s.max_frames} frames: HFR still falling towards "
                    f"the {side} end at {walk.path[-1].position} after {walk.walked} search frames; "
                    "raise focus.max_frames or focus.step, or start closer to focus"
                )
            walk.add(self._take([target], "search")[0])
            if walk.stalled and not walk.bracketed:
                raise _RunFailed(
                    f"HFR stopped changing during the coarse search towards the {side} end "
                    f"({walk.walked} frames, last at {walk.path[-1].position}): does the focuser move the focus?"
                )
        return walk.plan_vcurve(s, self.lo, self.hi)

    def _budget(self, new: int, what: str) -> None:
        """Fail when ``new`` more frames and the check frame would exceed ``max_frames``."""
        if self.frames + new + 1 > self.s.max_frames:
            raise _RunFailed(
                f"focus not found within focus.max_frames={self.s.max_frames} frames ({what} needs "
                f"{new} more and the check 1, {self.frames} taken): raise focus.max_frames or start closer to focus"
            )

    def _take(self, positions: list[int], phase: str, record: bool = True) -> list[FocusPoint]:
        """Frames at ``positions`` in order. Frame n is measured (worker thread) while the focuser moves
        to position n+1 and frame n+1 is exposed; the focuser moves only once frame n is in."""
        out: list[FocusPoint] = []
        for i, pos in enumerate(positions):
            self._check_time()
            reached = self._move(pos)
            self._check_time()
            image = self.camera.expose(self.s.exposure, self.s.binning)
            self.frames += 1
            if self.pending is not None:
                out.append(self._collect())
                self._require_stars(out, remaining=len(positions) - i)
            self.pending = _Pending(self.measure, image, self.frames, reached, phase, record)
        if self.pending is not None:
            out.append(self._collect())
            self._require_stars(out, remaining=0)
        return out

    def _collect(self) -> FocusPoint:
        """Wait (bounded by ``timeout``, cancelled by a stop request) for the pending measurement."""
        pending = self.pending
        while not pending.done.wait(0.25):
            self._check_time()
        self.pending = None
        if pending.error is not None:
            raise pending.error
        m = pending.value
        stars = int(m.star_count)
        hfr = float(m.median_hfr) if m.median_hfr is not None else math.nan
        spread = float(m.hfr_spread) if m.hfr_spread is not None else math.nan
        usable = stars >= self.s.min_stars and math.isfinite(hfr) and hfr > 0
        point = FocusPoint(pending.position, hfr if usable else None, spread if usable else None, stars)
        if pending.record:
            self.points.append(point)
        self._emit(pending.phase, pending.position, point.hfr, stars, frame=pending.frame)
        return point

    def _abandon(self) -> None:
        if self.pending is not None:
            self.pending.abandon()
            self.pending = None

    def _require_stars(self, batch: list[FocusPoint], remaining: int) -> None:
        """Clouds: fail as soon as a sweep whose every frame so far was starless can no longer get
        enough usable points. A sweep with some measurable frames runs on: blurred frames on one side
        tell the coarse search which way focus lies."""
        if any(p.usable for p in batch) or len(batch) + remaining < self.s.fit.min_points:
            return
        if remaining < self.s.fit.min_points:
            raise _RunFailed(
                f"too few stars: {len(batch)} of {len(batch)} frames had fewer than "
                f"{self.s.min_stars} stars (clouds, dome closed, or exposure too short?)"
            )

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

    def _emit(self, phase: str, position: int, hfr: float | None, stars: int, message: str | None = None,
              frame: int | None = None) -> None:
        if self.progress is None:
            return
        try:
            self.progress(FocusProgress(phase, self.frames if frame is None else frame, int(position), hfr, stars,
                                        message))
        except Exception:  # a broken relay must not break focusing
            log.exception("focus progress callback failed")
