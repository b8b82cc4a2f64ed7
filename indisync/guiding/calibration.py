"""Guider calibration: from where the star went after each pulse, derive the mount's axes on the camera.

The guider pulses West in equal steps and records the star's position after each, then North
likewise. For each axis a straight line through those positions gives the direction the star moves
on the sensor (an angle) and how fast (pixels per millisecond of pulse). Guiding then splits every
measured error into components along those two directions and converts each into a pulse length.

The two directions need not be square to the sensor or to each other; the split solves the 2x2
system exactly. They must be roughly perpendicular, though: far from it means the star was confused
with another, the mount moved during calibration, or backlash ate the Dec steps.

RA speed on the sensor scales with cos(declination): a calibration taken at one declination is
rescaled to another by ``at_declination`` (PHD2 does the same) instead of being redone.

Drift during calibration: the sky keeps moving while the steps are taken (periodic error, polar
misalignment), which adds the same displacement per step to every leg. The RA axis is therefore
measured on the way out (West) and on the way back (East): half the difference of the two slopes is
the pulse's own motion, the drift cancels. (Measured on the Guide Simulator, whose built-in periodic
error moves the star up to 0.23 px/s: the West leg alone read the RA rate 7 % low.) Dec keeps the
North leg only: Dec backlash swallows the first steps after a reversal and would bias the return.

Before calibrating, ``calibration_blockers`` says why it cannot work with the mount as it is (near a
pole, tracking off, parked) instead of letting it fail as "the mount is not responding".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import CalibrationError

# Below this |cos(dec)| (within ~2.5 degrees of a pole) RA rescaling would blow up: keep the calibration as is.
MIN_COS_DEC = 0.05


@dataclass(frozen=True)
class AxisCalibration:
    angle: float  # radians, image direction (atan2(dy, dx)) the star moves during a West / North pulse
    rate: float  # pixels the star moves per millisecond of pulse
    steps: int  # pulses it took
    distance: float  # pixels between the first and the last measured position


@dataclass(frozen=True)
class Calibration:
    ra: AxisCalibration  # West pulses
    dec: AxisCalibration  # North pulses
    step_ms: int
    declination: float | None = None  # degrees, where it was taken; None if the mount did not say
    pixel_scale: float | None = None  # arcsec per px of the frames it was taken on
    binning: int = 1

    @property
    def orthogonality_error(self) -> float:
        """Degrees by which the RA and Dec directions are off perpendicular (0 = perfectly square)."""
        diff = math.degrees(abs(self.ra.angle - self.dec.angle)) % 180.0
        return abs(diff - 90.0)

    def _basis(self) -> np.ndarray:
        return np.array([[math.cos(self.ra.angle), math.cos(self.dec.angle)],
                         [math.sin(self.ra.angle), math.sin(self.dec.angle)]])

    def to_mount(self, dx: float, dy: float) -> tuple[float, float]:
        """Split an image offset (px) into (along-West, along-North) components, in px."""
        ra, dec = np.linalg.solve(self._basis(), np.array([dx, dy], dtype=float))
        return float(ra), float(dec)

    def to_camera(self, ra_px: float, dec_px: float) -> tuple[float, float]:
        """The image offset (dx, dy) of a move ``ra_px`` along West and ``dec_px`` along North."""
        dx, dy = self._basis() @ np.array([ra_px, dec_px], dtype=float)
        return float(dx), float(dy)

    def at_declination(self, declination: float | None) -> "Calibration":
        """This calibration with its RA rate rescaled for guiding at ``declination`` degrees."""
        if declination is None or self.declination is None:
            return self
        c_cal = math.cos(math.radians(self.declination))
        c_now = math.cos(math.radians(declination))
        if abs(c_cal) < MIN_COS_DEC or abs(c_now) < MIN_COS_DEC:
            return self
        ra = replace(self.ra, rate=self.ra.rate * c_now / c_cal)
        return replace(self, ra=ra, declination=declination)

    def mirrored(self, dec: bool = True) -> "Calibration":
        """This calibration after a meridian flip: the RA direction on the sensor turned 180 deg, and
        the Dec direction too with ``dec`` (see GuiderSettings.flip_dec); rates, steps and scale stay."""
        def turned(axis: AxisCalibration) -> AxisCalibration:
            return replace(axis, angle=math.atan2(-math.sin(axis.angle), -math.cos(axis.angle)))

        return replace(self, ra=turned(self.ra), dec=turned(self.dec) if dec else self.dec)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ra"]["angle_deg"] = math.degrees(self.ra.angle)
        d["dec"]["angle_deg"] = math.degrees(self.dec.angle)
        d["orthogonality_error_deg"] = self.orthogonality_error
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        axes = {k: AxisCalibration(**{f: d[k][f] for f in ("angle", "rate", "steps", "distance")})
                for k in ("ra", "dec")}
        return cls(ra=axes["ra"], dec=axes["dec"], step_ms=int(d["step_ms"]),
                   declination=d.get("declination"), pixel_scale=d.get("pixel_scale"), binning=int(d.get("binning", 1)))


def axis_done(positions: list[tuple[float, float]], distance: float, max_steps: int) -> bool:
    """Whether calibration along one direction may stop: moved ``distance`` px, or used all steps.

    ``positions[0]`` is the start, ``positions[i]`` the star after i pulses.
    """
    steps = len(positions) - 1
    if steps >= max_steps:
        return True
    (x0, y0), (x1, y1) = positions[0], positions[-1]
    return math.hypot(x1 - x0, y1 - y0) >= distance


def fit_axis(positions: list[tuple[float, float]], step_ms: int, *, name: str, min_move: float) -> AxisCalibration:
    """Direction and rate of one axis from the star's positions after 0, 1, 2... pulses of ``step_ms``.

    A least-squares line of position against pulse count, so one noisy centroid does not set the
    angle. Raises CalibrationError when the star moved less than ``min_move`` px in all.
    """
    if len(positions) < 2:
        raise CalibrationError(f"calibration {name}: need at least one pulse, got {len(positions) - 1}")
    p = np.asarray(positions, dtype=float)
    steps = len(p) - 1
    distance = float(math.hypot(*(p[-1] - p[0])))
    if distance < min_move:
        raise CalibrationError(
            f"calibration {name}: the star moved {distance:.2f} px after {steps} pulses of {step_ms} ms "
            f"(at least {min_move:g} px needed): the mount is not responding to guide pulses. Check that it "
            "is unparked and tracking, that pulses reach it (guide cable / ST4 / the mount's TIMED_GUIDE "
            "properties), and its guide rate; or raise guider.calibration_step_ms"
        )
    n = np.arange(len(p), dtype=float)
    slope_x = np.polyfit(n, p[:, 0], 1)[0]
    slope_y = np.polyfit(n, p[:, 1], 1)[0]
    per_step = math.hypot(slope_x, slope_y)
    return AxisCalibration(angle=math.atan2(slope_y, slope_x), rate=per_step / step_ms, steps=steps, distance=distance)


def calibration_blockers(declination: float | None, tracking: bool | None, parked: bool | None, *,
                         max_dec: float) -> list[str]:
    """Why calibrating cannot work with the mount in this state (empty: go ahead). None = not known."""
    problems = []
    if parked:
        problems.append("the mount is parked: unpark it and turn tracking on")
    elif tracking is False:
        problems.append("tracking is off: turn tracking on (the mount must track for guide pulses to move "
                        "the star against the sky; untracked, the field streams away at 15\"/s)")
    if declination is not None and abs(declination) > max_dec:
        problems.append(
            f"mount at Dec {declination:.1f}: RA calibration is impossible near the pole (an RA pulse moves "
            f"the star only cos(Dec) = {abs(math.cos(math.radians(declination))):.3f} of its rate there); slew "
            f"to |Dec| < 60 on the meridian, calibrate, then slew back: the RA rate is rescaled for Dec "
            f"(limit: guider.calibration_max_dec = {max_dec:g})")
    return problems


def fit_two_way(out: list[tuple[float, float]], back: list[tuple[float, float]], step_ms: int, *,
                name: str, min_move: float) -> AxisCalibration:
    """An axis from its outward steps and the same number of steps back, with steady drift cancelled.

    ``back[0]`` is the star where the outward leg ended, ``back[i]`` after i return pulses. Falls back
    to the outward leg alone when the return leg is too short to fit (fewer than two steps back).
    """
    axis = fit_axis(out, step_ms, name=name, min_move=min_move)
    if len(back) < 3 or len(out) < 3:
        return axis
    n_out, n_back = np.arange(len(out), dtype=float), np.arange(len(back), dtype=float)
    o, b = np.asarray(out, dtype=float), np.asarray(back, dtype=float)
    so = np.array([np.polyfit(n_out, o[:, k], 1)[0] for k in (0, 1)])  # motion + drift per step
    sb = np.array([np.polyfit(n_back, b[:, k], 1)[0] for k in (0, 1)])  # -motion + drift per step
    motion = (so - sb) / 2.0
    per_step = float(math.hypot(*motion))
    if per_step <= 0:
        return axis
    return replace(axis, angle=math.atan2(motion[1], motion[0]), rate=per_step / step_ms)


def derive_calibration(west: list[tuple[float, float]], north: list[tuple[float, float]], step_ms: int, *,
                       min_move: float, max_orthogonality_error: float, declination: float | None = None,
                       pixel_scale: float | None = None, binning: int = 1,
                       east: list[tuple[float, float]] | None = None) -> Calibration:
    """A Calibration from the West and North position series, or CalibrationError saying why not.

    ``east``: the star's positions on the way back from the West steps (see ``fit_two_way``).
    """
    cal = Calibration(
        ra=fit_two_way(west, east or [], step_ms, name="RA (West pulses)", min_move=min_move),
        dec=fit_axis(north, step_ms, name="Dec (North pulses)", min_move=min_move),
        step_ms=step_ms, declination=declination, pixel_scale=pixel_scale, binning=binning,
    )
    if cal.orthogonality_error > max_orthogonality_error:
        raise CalibrationError(
            f"calibration: the RA and Dec directions are {90 + cal.orthogonality_error:.1f} degrees apart "
            f"(90 ± {max_orthogonality_error:g} allowed): the star was probably confused with another, the "
            "mount moved during calibration, or Dec backlash swallowed the North pulses. Recalibrate on an "
            "isolated star; for Dec backlash raise guider.calibration_step_ms"
        )
    return cal
