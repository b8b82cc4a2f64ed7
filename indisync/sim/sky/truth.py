"""Guiding judged against the sky's true error, and the oracle that knows it. Pure; no INDI here.

- ``guiding_windows``: from a guider's events, the stretches that count as guiding (PHD2's rule:
  the settling after the start and after each dither is left out);
- ``truth_stats``: RMS per axis and total, and the peak, of the true error sampled over those
  windows, each window about its own mean (the lock sits wherever the guider locked; what blurs a
  frame is the motion about it) — in arcsec on the sky and in guide-camera pixels;
- ``OracleController``: the correction a guider would send if it knew the true error exactly,
  at the same cadence as the real one: the physical floor for that cadence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def guiding_windows(events: list[tuple[float, str]], end: float) -> list[tuple[float, float]]:
    """(start, end) times of guiding from ``(time, kind)`` guide events: a window opens at the
    start's "settled" and at each dither's "settled"/"settle_failed", and closes at a "dither",
    "stopped", or ``end``."""
    windows, opened, settling = [], None, True
    for t, kind in sorted(events):
        if kind in ("settled", "settle_failed") and settling:
            opened, settling = t, False
        elif kind == "dither":
            if opened is not None:
                windows.append((opened, t))
            opened, settling = None, True
        elif kind == "stopped":
            if opened is not None:
                windows.append((opened, t))
            opened = None
    if opened is not None and end > opened:
        windows.append((opened, end))
    return windows


def truth_stats(samples: list[tuple[float, float, float]], windows: list[tuple[float, float]],
                pixel_scale: float) -> dict:
    """RMS RA, Dec, total and peak of ``(time, ra, dec)`` samples (arcsec) within ``windows``,
    each window about its own mean; arcsec and px (``pixel_scale`` arcsec/px). Empty: None values."""
    dev_ra, dev_dec = [], []
    for a, b in windows:
        inside = [(r, d) for t, r, d in samples if a <= t <= b]
        if len(inside) < 2:
            continue
        mr = sum(r for r, _ in inside) / len(inside)
        md = sum(d for _, d in inside) / len(inside)
        dev_ra += [r - mr for r, _ in inside]
        dev_dec += [d - md for _, d in inside]
    if not dev_ra:
        return {"samples": 0, "rms_ra_arcsec": None, "rms_dec_arcsec": None, "rms_arcsec": None,
                "peak_arcsec": None, "rms_ra_px": None, "rms_dec_px": None, "rms_px": None, "peak_px": None}
    ra = math.sqrt(sum(v * v for v in dev_ra) / len(dev_ra))
    dec = math.sqrt(sum(v * v for v in dev_dec) / len(dev_dec))
    peak = max(math.hypot(r, d) for r, d in zip(dev_ra, dev_dec))
    total = math.hypot(ra, dec)
    return {"samples": len(dev_ra), "seconds": round(sum(b - a for a, b in windows), 1),
            "rms_ra_arcsec": ra, "rms_dec_arcsec": dec, "rms_arcsec": total, "peak_arcsec": peak,
            "rms_ra_px": ra / pixel_scale, "rms_dec_px": dec / pixel_scale, "rms_px": total / pixel_scale,
            "peak_px": peak / pixel_scale}


@dataclass
class OracleController:
    """Full corrections of the true error towards ``target`` (arcsec on the sky, as ``model.TrueError``):
    a West pulse lowers the RA error, a South pulse the Dec error. Rates in arcsec on the sky per ms."""

    ra_rate: float
    dec_rate: float
    max_pulse_ms: int = 2000
    min_pulse_ms: int = 5
    target: tuple[float, float] = (0.0, 0.0)

    def pulses(self, error_ra: float, error_dec: float) -> list[tuple[str, int]]:
        out = []
        for off, rate, up, down in ((error_ra - self.target[0], self.ra_rate, "E", "W"),
                                    (error_dec - self.target[1], self.dec_rate, "N", "S")):
            ms = int(round(min(abs(off) / rate, self.max_pulse_ms))) if rate > 0 else 0
            if ms >= self.min_pulse_ms:
                out.append((down if off > 0 else up, ms))
        return out
