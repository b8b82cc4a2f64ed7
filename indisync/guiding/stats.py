"""Guiding statistics: RMS of the star's offset from its lock position, in pixels and arcseconds.

RMS here is the root mean square of the offset itself (about zero, the lock position), not the
standard deviation about its mean: a guider that lets the star sit 2 px off the lock is 2 px off,
however steady. It equals PHD2's figure when the mean offset is zero and is never smaller; the mean
offsets are reported beside it, so PHD2's standard deviation can be had as sqrt(rms² - mean²).
As PHD2 does: RA and Dec apart, total RMS as sqrt(ra² + dec²), the peak (per axis and total), and
only guiding frames counted: frames while a dither (or a start) settles are kept out by the guider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def rms(values) -> float:
    values = list(values)
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


def pixel_scale_from_header(header) -> float | None:
    """Arcsec per (binned) pixel from a FITS header: SCALE, else binned pixel size over focal length."""
    scale = header.get("SCALE")
    if isinstance(scale, (int, float)) and scale > 0:
        return float(scale)
    focal = header.get("FOCALLEN")
    if not isinstance(focal, (int, float)) or focal <= 0:
        return None
    pix = header.get("XPIXSZ")
    if not isinstance(pix, (int, float)) or pix <= 0:
        pix = header.get("PIXSIZE1")
        binning = header.get("XBINNING", 1)
        if not isinstance(pix, (int, float)) or pix <= 0:
            return None
        pix = pix * (binning if isinstance(binning, int) and binning > 0 else 1)
    return 206.265 * float(pix) / float(focal)


@dataclass
class GuideStats:
    """Offsets (px along RA and Dec) of the guided frames since the last reset."""

    pixel_scale: float | None = None  # arcsec per px; None: arcsec figures are None
    ra: list[float] = field(default_factory=list)
    dec: list[float] = field(default_factory=list)

    def add(self, ra_px: float, dec_px: float) -> None:
        self.ra.append(ra_px)
        self.dec.append(dec_px)

    def reset(self) -> None:
        self.ra.clear()
        self.dec.clear()

    @property
    def frames(self) -> int:
        return len(self.ra)

    @property
    def rms_ra_px(self) -> float:
        return rms(self.ra)

    @property
    def rms_dec_px(self) -> float:
        return rms(self.dec)

    @property
    def rms_px(self) -> float:
        return math.hypot(self.rms_ra_px, self.rms_dec_px)

    @property
    def peak_px(self) -> float:
        return max((math.hypot(r, d) for r, d in zip(self.ra, self.dec)), default=0.0)

    @property
    def peak_ra_px(self) -> float:
        return max((abs(v) for v in self.ra), default=0.0)

    @property
    def peak_dec_px(self) -> float:
        return max((abs(v) for v in self.dec), default=0.0)

    @property
    def mean_ra_px(self) -> float:
        return sum(self.ra) / len(self.ra) if self.ra else 0.0

    @property
    def mean_dec_px(self) -> float:
        return sum(self.dec) / len(self.dec) if self.dec else 0.0

    def arcsec(self, px: float) -> float | None:
        return None if self.pixel_scale is None else px * self.pixel_scale

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "rms_px": self.rms_px,
            "rms_ra_px": self.rms_ra_px,
            "rms_dec_px": self.rms_dec_px,
            "peak_px": self.peak_px,
            "peak_ra_px": self.peak_ra_px,
            "peak_dec_px": self.peak_dec_px,
            "mean_ra_px": self.mean_ra_px,
            "mean_dec_px": self.mean_dec_px,
            "pixel_scale": self.pixel_scale,
            "rms_arcsec": self.arcsec(self.rms_px),
            "rms_ra_arcsec": self.arcsec(self.rms_ra_px),
            "rms_dec_arcsec": self.arcsec(self.rms_dec_px),
            "peak_arcsec": self.arcsec(self.peak_px),
        }

    def copy(self) -> "GuideStats":
        return GuideStats(self.pixel_scale, list(self.ra), list(self.dec))
