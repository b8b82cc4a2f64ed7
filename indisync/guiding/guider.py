"""The guider: calibrate, then keep the guide star on its lock position with timed mount pulses.

It drives a camera and a mount it is given, through two methods only (no INDI here)::

    camera.expose(seconds, binning) -> HDU with .data (2-D array) and .header (SCALE etc.)
    camera.abort()                     # optional: ends a guide frame early when stopping
    mount.pulse_guide(direction, ms)   # "N"/"S"/"E"/"W"; returns when the pulse has ended
    mount.coordinates -> (ra_hours, dec_deg)   # optional: rescales RA for declination
    mount.tracking, mount.parked -> bool | None   # optional: checked before calibrating

so the same loop runs on INDI devices (indisync.devices) and on the fakes of the unit tests. With
``guider.pulse_via: camera`` the pulses go to a ``pulser`` given separately (the guide camera's ST4
port, ``indisync.devices.guide_port.GuidePort``), the mount still says where it points.

Guiding runs in its own thread between ``start()`` and ``stop()``. ``dither()`` and
``wait_settled()`` are called from other threads (the master's sequence) and block until the star
has settled or the settle timed out. Listeners added with ``add_listener`` receive a GuideEvent for
everything that happens (kinds in EVENT_KINDS); they run in the guide thread and must return quickly.

Nothing here raises out of ``stop()`` and the guide thread cannot end unseen: a loop that does not
stop in time, or that ends on any exception, leaves state ERROR, ``last_error`` and an "error" event.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import CalibrationError, GuideError, IndisyncError
from .calibration import Calibration, axis_done, calibration_blockers, derive_calibration
from .control import GuideController, Pulse
from .dither import DitherResult, SettleTracker, random_offset
from .settings import GuiderSettings, SettleSettings
from .star import choose_guide_stars, find_stars, measure_star
from .stats import GuideStats, pixel_scale_from_header

log = logging.getLogger(__name__)

EVENT_KINDS = (
    "star_selected", "calibration_step", "calibrated", "started", "frame", "star_lost", "star_found",
    "reacquired", "dither", "settled", "settle_failed", "exposure_failed", "stopped", "error", "flipped",
)
# Stars of one measurement whose displacement differs from the median by more than this many px are
# dropped as mismatches (a neighbour, a cosmic ray) rather than averaged in.
STAR_DISAGREEMENT_PX = 2.0
# Real-time allowance, beyond settle.timeout, before a dither stops waiting for a silent loop.
SILENT_LOOP_GRACE = 120.0
# Real-time allowance, beyond one frame and two longest pulses, for the loop to stop by itself before
# stop() aborts the guide frame; and after that, for it to end before stop() gives up on it.
STOP_GRACE = 5.0
STOP_AFTER_ABORT = 60.0


class GuiderState(str, enum.Enum):
    IDLE = "idle"
    CALIBRATING = "calibrating"
    GUIDING = "guiding"
    SETTLING = "settling"  # guiding, with a dither or a start waiting to settle
    LOST = "lost"  # guiding, but the star has not been seen for lost_after_frames frames
    ERROR = "error"  # the loop stopped on an error (last_error says which)


@dataclass(frozen=True)
class GuideEvent:
    kind: str
    time: float
    data: dict = field(default_factory=dict)


class StarLock:
    """Reference positions of the guide stars and where their lock is: references + dither offset."""

    def __init__(self, refs: list[tuple[float, float]], settings: GuiderSettings):
        self.refs = refs
        self.settings = settings
        self.offset = (0.0, 0.0)  # dither shift of the lock, px
        self.shift = (0.0, 0.0)  # last measured mean displacement of the stars from refs, px

    def measure(self, image: np.ndarray) -> tuple[float, float, int] | None:
        """(dx, dy, stars used): the stars' mean displacement from their references; None if none found."""
        s = self.settings
        found = []
        for rx, ry in self.refs:
            star = measure_star(image, rx + self.shift[0], ry + self.shift[1], s.search_radius,
                                min_snr=s.min_snr, saturation=s.saturation)
            if star is not None:
                found.append((star.x - rx, star.y - ry))
        if not found:
            return None
        d = np.asarray(found)
        med = np.median(d, axis=0)
        keep = np.hypot(*(d - med).T) <= STAR_DISAGREEMENT_PX
        mean = d[keep].mean(axis=0) if keep.any() else med
        self.shift = (float(mean[0]), float(mean[1]))
        return self.shift[0], self.shift[1], int(keep.sum())

    def error(self) -> tuple[float, float]:
        """The stars' offset from the lock position (camera px) at the last measurement."""
        return self.shift[0] - self.offset[0], self.shift[1] - self.offset[1]


class Guider:
    def __init__(self, camera: Any, mount: Any, settings: GuiderSettings | None = None, *,
                 calibration: Calibration | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 pulser: Any = None):
        self.camera, self.mount = camera, mount
        self.settings = settings or GuiderSettings()
        if pulser is None and self.settings.pulse_via == "camera":
            raise GuideError("guider.pulse_via is camera, but no guide port was given for the camera's ST4 "
                             "pulses (indisync.devices.guide_port.GuidePort); set guider.pulse_via: mount")
        self.pulser = pulser if pulser is not None else mount  # what receives the guide pulses
        self._calibration = calibration
        self._guide_cal: Calibration | None = None  # the calibration rescaled to the guiding declination
        self._rng = rng or random.Random()
        self._clock, self._sleep = clock, sleep
        self._controller = GuideController(self.settings)
        self._stats = GuideStats(self.settings.pixel_scale)
        self._listeners: list[Callable[[GuideEvent], None]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._state = GuiderState.IDLE
        self._lock: StarLock | None = None
        self._want_reacquire = False
        self._lost_frames = 0
        self._tracker: SettleTracker | None = None
        self._pending_offset: tuple[float, float] | None = None
        self._last_error: BaseException | None = None
        self.star_lost_count = 0

    # ---- what others read -------------------------------------------------------------------------

    @property
    def state(self) -> GuiderState:
        return self._state

    @property
    def calibration(self) -> Calibration | None:
        return self._calibration

    @property
    def running(self) -> bool:
        """Guiding: the loop runs and has not been asked to stop."""
        return self._alive and not self._stop.is_set()

    @property
    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def last_error(self) -> BaseException | None:
        return self._last_error

    @property
    def pixel_scale(self) -> float | None:
        return self._stats.pixel_scale

    @property
    def stats(self) -> GuideStats:
        with self._cond:
            return self._stats.copy()

    def rms(self) -> dict:
        return self.stats.summary()

    def reset_stats(self) -> None:
        with self._cond:
            self._stats.reset()

    def add_listener(self, fn: Callable[[GuideEvent], None]) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[GuideEvent], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    # ---- calibration ------------------------------------------------------------------------------

    def calibrate(self) -> Calibration:
        """Pulse West, East, North, South in steps; measure; derive the axes. Blocks; not while guiding."""
        if self._alive:
            raise GuideError("stop guiding before calibrating (Guider.stop())")
        s = self.settings
        declination = self._declination()
        problems = calibration_blockers(declination, self._mount_flag("tracking"), self._mount_flag("parked"),
                                        max_dec=s.calibration_max_dec)
        if problems:
            raise CalibrationError("cannot calibrate: " + "; ".join(problems))
        if declination is not None and abs(declination) > 60:
            log.warning("calibrating at Dec %.1f: RA moves only %.2f of its rate there; |Dec| < 60 near the "
                        "meridian calibrates better", declination, abs(math.cos(math.radians(declination))))
        self._set_state(GuiderState.CALIBRATING)
        try:
            image = self._expose()
            lock = self._acquire(image)
            if lock is None:
                raise CalibrationError(self._no_star_message())
            west = self._walk(lock, "W")
            east = self._walk_back(lock, "E", len(west) - 1, west[-1])
            north = self._walk(lock, "N")
            self._pulse_steps("S", len(north) - 1)
            try:
                cal = derive_calibration(
                    west, north, s.calibration_step_ms, min_move=s.calibration_min_move,
                    max_orthogonality_error=s.max_orthogonality_error, declination=declination,
                    pixel_scale=self.pixel_scale, binning=s.binning, east=east,
                )
            except CalibrationError as exc:
                if "not responding" not in str(exc):
                    raise
                where = "the mount" if s.pulse_via == "mount" else "the guide camera's ST4 port"
                dec = "unknown" if declination is None else f"{declination:.1f}"
                tracking = {True: "on", False: "off", None: "unknown"}[self._mount_flag("tracking")]
                raise CalibrationError(f"{exc}. The pulses went to {where} (guider.pulse_via: {s.pulse_via}); "
                                       f"the mount reports Dec {dec}, tracking {tracking}") from None
        except BaseException:
            self._set_state(GuiderState.IDLE)
            raise
        self._calibration = cal
        self._set_state(GuiderState.IDLE)
        self._emit("calibrated", **cal.as_dict())
        return cal

    def _walk(self, lock: StarLock, direction: str) -> list[tuple[float, float]]:
        s = self.settings
        start = lock.measure(self._expose())
        if start is None:
            raise CalibrationError(f"calibration: lost the guide star before the {direction} pulses. "
                                   + self._no_star_hint())
        positions = [start[:2]]
        while not axis_done(positions, s.calibration_distance, s.calibration_max_steps):
            self._pulse_steps(direction, 1)
            m = lock.measure(self._expose())
            if m is None:
                raise CalibrationError(
                    f"calibration: lost the guide star after {len(positions)} {direction} pulses of "
                    f"{s.calibration_step_ms} ms (it moved out of the {s.search_radius:g} px search box, or "
                    "clouds). Lower guider.calibration_step_ms or raise guider.search_radius"
                )
            positions.append(m[:2])
            self._emit("calibration_step", direction=direction, step=len(positions) - 1, dx=m[0], dy=m[1])
        return positions

    def _walk_back(self, lock: StarLock, direction: str, steps: int,
                   start: tuple[float, float]) -> list[tuple[float, float]]:
        """Pulse back the outward steps, measuring after each (a lost star here just ends the series:
        the return leg only refines the rate)."""
        positions = [start]
        for i in range(steps):
            self._pulse_steps(direction, 1)
            m = lock.measure(self._expose()) if len(positions) == i + 1 else None
            if m is not None:
                positions.append(m[:2])
                self._emit("calibration_step", direction=direction, step=i + 1, dx=m[0], dy=m[1])
        return positions

    def _pulse_steps(self, direction: str, steps: int) -> None:
        for _ in range(steps):
            self.pulser.pulse_guide(direction, self.settings.calibration_step_ms)
            self._sleep(self.settings.pulse_settle)

    def after_meridian_flip(self, recalibrate: bool = False) -> None:
        """The mount has flipped: mirror the calibration for the new pier side (settings.flip_dec), or
        forget it so that the next start() calibrates afresh. Only while stopped."""
        if self.running:
            raise GuideError("stop guiding before the meridian flip (Guider.stop())")
        if recalibrate or self._calibration is None:
            self._calibration = None
        else:
            self._calibration = self._calibration.mirrored(dec=self.settings.flip_dec)
        self._lock = None  # the field has turned: choose the star afresh
        self._emit("flipped", recalibrate=recalibrate,
                   calibration=self._calibration.as_dict() if self._calibration is not None else None)

    # ---- start / stop / reacquire -----------------------------------------------------------------

    def start(self, reacquire: bool = True) -> None:
        """Start guiding in a background thread, calibrating first (blocking) if not calibrated yet.

        With ``reacquire`` (the default) a guide star is chosen afresh and locked where it is now, as
        after an autofocus run or a slew; without, the previous lock position is kept.
        """
        if self.running:
            return
        if self._alive:  # asked to stop, but never did: a second loop would fight it for the devices
            raise GuideError(f"the previous guide loop is still stuck ({self._last_error}); the guide camera or "
                             "the mount is not answering: check them (or restart the node)")
        if self._calibration is None:
            self.calibrate()
        self._guide_cal = self._calibration.at_declination(self._declination())
        self._stop.clear()
        self._last_error = None
        self._controller.reset()
        with self._cond:
            self._want_reacquire = reacquire or self._lock is None
            self._lost_frames = 0
            self._state = GuiderState.GUIDING
        self._emit("started", reacquire=reacquire)
        self._thread = threading.Thread(target=self._run, name="guider", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop guiding after the current frame and pulses end; waits for the guide thread, bounded.

        Never raises. True when the loop has ended. A loop still running after one frame, two of the
        longest pulses and STOP_GRACE seconds has its guide frame aborted; still running STOP_AFTER_ABORT
        seconds later (or after ``timeout`` seconds in all), it is given up on: logged, state ERROR,
        ``last_error`` set and an "error" event emitted, and ``start()`` refuses until it has ended.
        """
        self._stop.set()
        thread = self._thread
        if thread is threading.current_thread():  # a listener stopping the loop it runs in: it ends after this frame
            return False
        if thread is not None and thread.is_alive():
            s = self.settings
            first = s.exposure + 2 * s.max_pulse_ms / 1000.0 + STOP_GRACE
            limit = first + STOP_AFTER_ABORT if timeout is None else timeout
            thread.join(min(first, limit))
            if thread.is_alive():
                self._abort_frame()
                thread.join(max(limit - first, 0.0))
            if thread.is_alive():
                error = GuideError(f"the guide loop did not stop within {limit:g}s: the guide camera or the mount "
                                   "is not answering; guiding is off, check them (or restart the node)")
                log.error("%s", error)
                self._last_error = error
                self._set_state(GuiderState.ERROR)
                self._emit("error", message=str(error), type=type(error).__name__)
                return False
        self._thread = None
        if self._state is not GuiderState.ERROR:
            self._set_state(GuiderState.IDLE)
        return True

    def _abort_frame(self) -> None:
        abort = getattr(self.camera, "abort", None)
        if abort is None:
            return
        try:
            abort()
        except Exception:  # noqa: BLE001 - best effort: the loop is being given up on anyway
            log.exception("could not abort the guide frame")

    def reacquire(self) -> None:
        """Choose a new guide star on the next frame and lock where it is (keeps guiding)."""
        with self._cond:
            self._want_reacquire = True

    # ---- dither / settle --------------------------------------------------------------------------

    def dither(self, pixels: float, ra_only: bool = False, settle: SettleSettings | None = None) -> DitherResult:
        """Shift the lock by a random offset of up to ``pixels`` per axis and wait for the star to settle."""
        if self._guide_cal is None:
            raise GuideError("cannot dither: the guider is not guiding (Guider.start() first)")
        dx, dy = random_offset(pixels, ra_only, self._guide_cal, self._rng)
        self._emit("dither", dx=dx, dy=dy, pixels=pixels, ra_only=ra_only)
        return self._settle(settle or SettleSettings(), (dx, dy))

    def wait_settled(self, settle: SettleSettings | None = None) -> DitherResult:
        """Wait until the star is within settle.pixels of the lock for settle.time seconds."""
        return self._settle(settle or SettleSettings(), None)

    def _settle(self, settle: SettleSettings, offset: tuple[float, float] | None) -> DitherResult:
        with self._cond:
            if not self.running:
                raise GuideError(f"cannot settle: the guider is {self._state.value}, not guiding")
            tracker = SettleTracker(settle, self._clock())
            self._tracker = tracker
            self._pending_offset = offset
            self._state = GuiderState.SETTLING if self._state is not GuiderState.LOST else self._state
            deadline = time.monotonic() + settle.timeout + self.settings.exposure + SILENT_LOOP_GRACE
            while tracker.result is None and self.running and time.monotonic() < deadline:
                self._cond.wait(0.5)
            if self._tracker is tracker:
                self._tracker = None
            if self._state is GuiderState.SETTLING:
                self._state = GuiderState.GUIDING
        dx, dy = offset or (0.0, 0.0)
        if tracker.result is None:
            reason = "guider stopped" if self._last_error is None else f"guider error: {self._last_error}"
            if self.running:
                reason = "no guide frames"
            return DitherResult(False, self._clock() - tracker.start, dx, dy, reason)
        return DitherResult(tracker.result, tracker.seconds, dx, dy, None if tracker.result else "timeout")

    # ---- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._expose()
                with self._cond:
                    want = self._want_reacquire or self._lock is None
                    self._want_reacquire = False
                if want:
                    self._lock_on(image, "star_selected")
                    continue
                self._guide_frame(image)
        except BaseException as exc:  # noqa: BLE001 - whatever ends the loop is recorded, never silent
            log.exception("guiding stopped on an error")
            self._last_error = exc
            self._set_state(GuiderState.ERROR)
            self._emit("error", message=str(exc) or type(exc).__name__, type=type(exc).__name__)
        finally:
            with self._cond:
                self._cond.notify_all()
            try:
                self._emit("stopped", **self.stats.summary())
            except Exception:  # noqa: BLE001 - the thread is ending; the error above is already out
                log.exception("could not report the end of guiding")

    def _lock_on(self, image: np.ndarray, event: str) -> bool:
        lock = self._acquire(image)
        if lock is None:
            self._lose_frame(image, acquiring=True)
            return False
        with self._cond:
            self._lock = lock
            self._lost_frames = 0
            if self._state is GuiderState.LOST:
                self._state = GuiderState.SETTLING if self._tracker else GuiderState.GUIDING
        self._controller.reset()
        if event != "star_selected":
            self._emit(event, x=lock.refs[0][0], y=lock.refs[0][1], stars=len(lock.refs))
        return True

    def _guide_frame(self, image: np.ndarray) -> None:
        lock = self._lock
        with self._cond:
            if self._pending_offset is not None:
                lock.offset, self._pending_offset = self._pending_offset, None
                self._controller.reset(keep_drift=True)  # the sky drifts on the same after a dither
        m = lock.measure(image)
        now = self._clock()
        if m is None:
            self._lose_frame(image, acquiring=False)
            return
        if self._lost_frames >= self.settings.lost_after_frames:
            self._emit("star_found", frames_lost=self._lost_frames)
        ex, ey = lock.error()
        ra_err, dec_err = self._guide_cal.to_mount(ex, ey)
        distance = math.hypot(ex, ey)
        decided = None
        with self._cond:
            self._lost_frames = 0
            tracker = self._tracker
            if tracker is not None and tracker.result is None:
                decided = tracker.update(now, distance)
                if decided is not None:
                    self._cond.notify_all()
            else:  # frames while settling are not guiding quality: keep them out of the RMS
                self._stats.add(ra_err, dec_err)
            self._state = GuiderState.SETTLING if tracker is not None and tracker.result is None else GuiderState.GUIDING
        if decided is not None:
            self._emit("settled" if decided else "settle_failed", seconds=tracker.seconds,
                       reason=None if decided else "timeout")
        pulses = self._controller.pulses(ra_err, dec_err, self._guide_cal)
        self._emit("frame", dx=ex, dy=ey, ra_px=ra_err, dec_px=dec_err, distance=distance, stars=m[2],
                   pulses=[(p.direction, p.ms) for p in pulses])
        self._send(pulses)

    def _lose_frame(self, image: np.ndarray, acquiring: bool) -> None:
        s = self.settings
        with self._cond:
            self._lost_frames += 1
            lost = self._lost_frames
            tracker = self._tracker
            failed = tracker is not None and tracker.result is None and tracker.update(self._clock(), None) is not None
            if failed:
                self._cond.notify_all()
            if lost == s.lost_after_frames:
                self._state = GuiderState.LOST
                self.star_lost_count += 1
        if failed:
            self._emit("settle_failed", seconds=tracker.seconds, reason="star lost")
        if lost == s.lost_after_frames:
            log.warning("guide star lost for %d frames", lost)
            self._emit("star_lost", frames=lost, acquiring=acquiring)
        if not acquiring and s.reacquire_after_frames and lost >= s.reacquire_after_frames:
            self._lock_on(image, "reacquired")

    def _send(self, pulses: list[Pulse]) -> None:
        for p in pulses:
            self.pulser.pulse_guide(p.direction, p.ms)
        if pulses:
            self._sleep(self.settings.pulse_settle)

    # ---- helpers ----------------------------------------------------------------------------------

    def _expose(self) -> np.ndarray:
        s = self.settings
        for attempt in range(s.exposure_retries + 1):
            try:
                hdu = self.camera.expose(s.exposure, s.binning)
                break
            except IndisyncError as exc:
                if attempt == s.exposure_retries or self._stop.is_set():
                    raise
                log.warning("guide frame failed (%s); retrying", exc)
                self._emit("exposure_failed", message=str(exc), attempt=attempt + 1)
        if hdu.data is None or np.ndim(hdu.data) != 2:
            raise GuideError(f"the guide camera sent no 2-D image (got {None if hdu.data is None else np.shape(hdu.data)})")
        if self._stats.pixel_scale is None:
            self._stats.pixel_scale = pixel_scale_from_header(hdu.header)
        return np.asarray(hdu.data)

    def _acquire(self, image: np.ndarray) -> StarLock | None:
        s = self.settings
        stars = find_stars(image, min_snr=s.min_snr, radius=s.search_radius, saturation=s.saturation)
        chosen = choose_guide_stars(stars, image.shape, count=s.max_stars, min_snr=s.min_snr,
                                    edge_margin=max(s.edge_margin, s.search_radius), isolation=s.isolation)
        if not chosen:
            self._last_candidates = len(stars)
            return None
        lock = StarLock([(c.x, c.y) for c in chosen], s)
        best = chosen[0]
        self._emit("star_selected", x=best.x, y=best.y, snr=best.snr, flux=best.flux, stars=len(chosen))
        return lock

    def _no_star_hint(self) -> str:
        return ("Check that the mount points at a star field, the guide camera's exposure "
                f"(guider.exposure = {self.settings.exposure:g}s) and focus, and guider.min_snr")

    def _no_star_message(self) -> str:
        n = getattr(self, "_last_candidates", 0)
        return (f"no usable guide star in the frame ({n} star(s) found, none unsaturated, isolated, away from "
                f"the edges and with SNR >= {self.settings.min_snr:g}). " + self._no_star_hint())

    def _declination(self) -> float | None:
        try:
            coords = getattr(self.mount, "coordinates", None)
            return float(coords[1]) if coords is not None else None
        except Exception:  # a mount without coordinates guides fine; RA just is not rescaled
            return None

    def _mount_flag(self, name: str) -> bool | None:
        """mount.tracking / mount.parked when the mount says; None when it cannot or does not."""
        try:
            value = getattr(self.mount, name, None)
        except Exception:  # noqa: BLE001 - an unreadable flag is an unknown one; calibration will tell
            return None
        return value if isinstance(value, bool) else None

    def _set_state(self, state: GuiderState) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def _emit(self, kind: str, **data) -> None:
        event = GuideEvent(kind, self._clock(), data)
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:  # a listener's bug must not stop guiding
                log.exception("guide event listener failed on %s", kind)
