"""Per-axis guide corrections: from an error in pixels along RA and Dec to timed pulses.

Each axis follows PHD2's hysteresis algorithm: the correction is a blend of this frame's error and
the previous correction, ``(1-h)·error + h·previous``, times the aggressiveness; errors smaller than
``min_move`` are left alone (they are seeing, and chasing them adds noise).

A proportional guider lags a steady drift: each frame it corrects ``aggressiveness`` of an error
that the drift rebuilds, so the star sits ``drift per frame / aggressiveness`` px off the lock for
as long as the drift lasts (measured on the Guide Simulator, whose periodic error moves the star
0.2 px/s: a steady 0.43 px RA offset, nearly all of the 0.46 px RMS). ``drift_gain`` adds the sum of
past errors times that gain, which converges on the drift and cancels it (poles of the loop at
0.85 and 0.35 per frame with the defaults 0.7 / 0.1: stable, settling in a few frames). The sum is
kept across a dither (the sky drifts the same) and cleared with a new lock. The pulse length is the
correction divided by the calibrated rate, clipped to ``max_pulse_ms``; pulses shorter than
``min_pulse_ms`` are dropped.

Signs: an error is the star's offset from its lock position along the calibrated West (RA) or
North (Dec) direction. A positive RA error is undone by an East pulse, a positive Dec error by a
South pulse.
"""

from __future__ import annotations

from dataclasses import dataclass

from .calibration import Calibration
from .settings import GuiderSettings


@dataclass(frozen=True)
class Pulse:
    direction: str  # "N", "S", "E" or "W"
    ms: int


class AxisController:
    def __init__(self, aggressiveness: float, min_move: float, hysteresis: float = 0.0, drift_gain: float = 0.0,
                 max_px: float = float("inf")):
        self.aggressiveness = aggressiveness
        self.min_move = min_move
        self.hysteresis = hysteresis
        self.drift_gain = drift_gain
        self.max_px = max_px  # the largest correction one pulse can make: the drift term never exceeds it
        self.last = 0.0
        self.drift = 0.0  # drift_gain × the sum of past errors: px per frame the sky moves on its own

    def reset(self, keep_drift: bool = False) -> None:
        self.last = 0.0
        if not keep_drift:
            self.drift = 0.0

    def correction(self, error_px: float) -> float:
        """Pixels to move the star back toward its lock position (same sign as the error)."""
        value = ((1.0 - self.hysteresis) * error_px + self.hysteresis * self.last) * self.aggressiveness
        if abs(error_px) < self.min_move:
            value = 0.0
        self.last = value
        if self.drift_gain:
            # clamped (anti-windup): a star that cannot be brought back must not build a runaway sum
            self.drift = max(-self.max_px, min(self.max_px, self.drift + self.drift_gain * error_px))
        return value + self.drift


class GuideController:
    """Both axes, with the Dec mode and pulse limits of a GuiderSettings."""

    def __init__(self, settings: GuiderSettings):
        self.settings = settings
        self.ra = AxisController(settings.aggressiveness, settings.min_move, settings.hysteresis,
                                 settings.drift_gain)
        self.dec = AxisController(settings.dec_aggressiveness, settings.min_move, 0.0, settings.dec_drift_gain)

    def reset(self, keep_drift: bool = False) -> None:
        self.ra.reset(keep_drift)
        self.dec.reset(keep_drift)

    def pulses(self, ra_error: float, dec_error: float, calibration: Calibration) -> list[Pulse]:
        """The pulses (at most one per axis) that correct these errors (px along West, North)."""
        s = self.settings
        self.ra.max_px = s.max_pulse_ms * calibration.ra.rate
        self.dec.max_px = s.max_pulse_ms * calibration.dec.rate
        out = []
        ra_px = self.ra.correction(ra_error)
        if ra_px:
            out += self._pulse(ra_px, calibration.ra.rate, "E", "W")
        dec_px = self.dec.correction(dec_error) if s.dec_mode != "off" else 0.0
        if dec_px:
            pulse = self._pulse(dec_px, calibration.dec.rate, "S", "N")
            if pulse and (s.dec_mode == "auto" or pulse[0].direction == {"north": "N", "south": "S"}[s.dec_mode]):
                out += pulse
        return out

    def _pulse(self, px: float, rate: float, positive: str, negative: str) -> list[Pulse]:
        ms = min(abs(px) / rate, float(self.settings.max_pulse_ms)) if rate > 0 else 0.0
        ms = int(round(ms))
        if ms < max(self.settings.min_pulse_ms, 1):
            return []
        return [Pulse(positive if px > 0 else negative, ms)]
