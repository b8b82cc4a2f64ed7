"""Dithering: a random shift of the lock position between frames, and the wait until the star settles.

The offset is drawn uniformly in ±pixels along each mount axis (RA only, optionally) and converted
to the camera's axes through the calibration, as PHD2 does. Offsets are relative to the original
lock position, not cumulative, so a night of dithers does not walk the field away.

Settling follows PHD2's criteria: the star must stay within ``settle.pixels`` of the (new) lock
position for ``settle.time`` seconds in a row; if that has not happened ``settle.timeout`` seconds
after the dither, it failed (the master then decides whether to expose anyway).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .calibration import Calibration
from .settings import SettleSettings


@dataclass(frozen=True)
class DitherResult:
    settled: bool
    seconds: float  # from the dither to settling (or to giving up)
    dx: float = 0.0  # lock shift on the camera, px
    dy: float = 0.0
    reason: str | None = None  # why it failed: "timeout", "star lost", "guider stopped", ...

    def as_dict(self) -> dict:
        return {"settled": self.settled, "seconds": round(self.seconds, 3), "dx": round(self.dx, 3),
                "dy": round(self.dy, 3), "reason": self.reason}


def random_offset(pixels: float, ra_only: bool, calibration: Calibration,
                  rng: random.Random) -> tuple[float, float]:
    """A camera (dx, dy) for a random move of up to ``pixels`` along RA (and Dec unless ra_only)."""
    ra = rng.uniform(-pixels, pixels)
    dec = 0.0 if ra_only else rng.uniform(-pixels, pixels)
    return calibration.to_camera(ra, dec)


class SettleTracker:
    """Feed it each guide frame's distance from the lock; it says when the star has settled or failed."""

    def __init__(self, settle: SettleSettings, start: float):
        self.settle = settle
        self.start = start
        self.within_since: float | None = None
        self.result: bool | None = None  # None while settling, then True (settled) or False (timed out)
        self.finished_at: float | None = None

    def update(self, now: float, distance: float | None) -> bool | None:
        """Record one frame (distance None = no star measured). Returns the result once decided."""
        if self.result is not None:
            return self.result
        if distance is not None and distance <= self.settle.pixels:
            if self.within_since is None:
                self.within_since = now
            if now - self.within_since >= self.settle.time:
                return self._finish(True, now)
        else:
            self.within_since = None
        if now - self.start >= self.settle.timeout:
            return self._finish(False, now)
        return None

    def _finish(self, result: bool, now: float) -> bool:
        self.result, self.finished_at = result, now
        return result

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.start
