"""Measure the stars of one frame: ``measure_frame(data, settings) -> FrameMeasurement``.

Steps: sky and sources (``detection.detect``); then, brightest source first, each source is
re-centred and its half-flux radius measured (``hfr.half_flux_radius``, SEP's flux_radius
definition) in a circle of ``aperture_factor`` x HFR, iterating because the HFR sets the circle;
then it is kept or rejected for one of the reasons in ``REJECTIONS``. At most ``max_stars``
stars are kept, so a 26-megapixel frame with thousands of stars costs little more than its
detection.

The frame's figures: ``median_hfr`` is the median of the kept stars' HFRs, ``hfr_spread`` is
the MAD-based sigma ``1.4826 * median(|hfr - median_hfr|)`` (robust to a few odd stars). With no
star kept both are NaN and ``star_count`` is 0: an empty or cloudy frame is a result, not an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnalysisError
from .detection import Detections, detect
from .hfr import half_flux_radius
from .memory import release_free_memory
from .settings import AnalysisSettings

MAD_TO_SIGMA = 1.4826  # a normal distribution's sigma / its median absolute deviation
CONVERGED = 0.005  # HFR iterations stop once the HFR changes by less than this fraction
MIN_APERTURE = 3.0  # px: the smallest circle measured, so a tiny first estimate still sees the star
WINDOW_ROUNDS = 4  # rounds of windowed re-centring per HFR iteration
ROUGH_PARTS = 30.0  # rough rounds split pixels so that rmax spans at least this many parts
MAX_GROWTH = 2.0  # the HFR estimate grows at most this factor per iteration
ELONGATION_RADIUS = 2.0  # x HFR: the circle the shape is measured in (core, little sky noise)
NOT_CONVERGED = 0.05  # still changing this much after all iterations: light from elsewhere
MAX_SHIFT = 0.5  # x HFR: a star re-centred this far from its source's centroid shares the source

REJECTIONS = ("hot_pixel", "saturated", "edge", "blended", "elongated", "faint", "size")
"""Why a source was not kept (counted in ``FrameMeasurement.rejected``):

- hot_pixel: ``hot_pixel_fraction`` of its flux in one pixel (hot pixel, cosmic-ray hit); such
  sources are not counted as anyone's neighbour either;
- saturated: a pixel within the aperture at or above the saturation level;
- edge: centre within ``edge_margin`` of the border, or the aperture crossing it;
- blended: a neighbour with ``blend_flux_ratio`` of its flux within ``blend_separation``
  apertures; or merged with another star into one source (the re-centred star lies far from the
  source's centroid); or an HFR that would not settle (light from elsewhere in the circle);
- elongated: major / minor axis above ``max_elongation`` (two merged stars, a trail);
- faint: SNR below ``min_snr``, or no positive flux;
- size: HFR outside [min_hfr, max_hfr].
"""


@dataclass
class StarMeasurement:
    x: float  # centre, px, 0-based, pixel centres at integers (numpy column index)
    y: float  # numpy row index
    flux: float  # background-subtracted ADU within the aperture
    peak: float  # highest raw pixel within the aperture, ADU, bias and sky included
    hfr: float  # half-flux radius, px (see indisync.analysis.hfr)
    snr: float = math.nan


@dataclass
class FrameMeasurement:
    star_count: int
    median_hfr: float  # px; NaN when star_count == 0
    hfr_spread: float  # px, MAD-based sigma of the stars' HFRs; NaN when star_count == 0
    background: float  # sky per pixel, ADU (bias included): median over the frame's boxes
    background_rms: float  # sky noise per pixel, ADU: median over the frame's boxes
    stars: list[StarMeasurement] = field(default_factory=list)
    detected: int = 0  # sources found before rejection (those not reached because of max_stars included)
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count, reasons in REJECTIONS


def _windowed_centre(sub: np.ndarray, xc: float, yc: float, hfr: float) -> tuple[float, float]:
    """Gaussian-windowed centroid (SExtractor's XWIN): unbiased for symmetric stars, insensitive
    to noise far from the star. The window's sigma is 2 HFR / 2.35, as SExtractor uses."""
    sig = max(2.0 * hfr / 2.3548, 0.5)
    inv2s2 = 1.0 / (2.0 * sig * sig)
    ny, nx = sub.shape
    ys = np.arange(ny, dtype=np.float64)
    xs = np.arange(nx, dtype=np.float64)
    for _ in range(WINDOW_ROUNDS):
        dy = ys - yc
        dx = xs - xc
        w = np.exp(-(dy * dy)[:, None] * inv2s2) * np.exp(-(dx * dx)[None, :] * inv2s2) * sub
        total = w.sum()
        if not total > 0:
            break
        # factor 2: the windowed first moment of a Gaussian is half its true offset
        step_y = 2.0 * float((w.sum(axis=1) * dy).sum() / total)
        step_x = 2.0 * float((w.sum(axis=0) * dx).sum() / total)
        if abs(step_x) > sig or abs(step_y) > sig:
            break  # running off: noise or a neighbour dominates; keep the last centre
        xc += step_x
        yc += step_y
        if step_x * step_x + step_y * step_y < 1e-6:
            break
    return xc, yc


def elongation(sub: np.ndarray, xc: float, yc: float, radius: float) -> float:
    """Major / minor axis ratio from the second moments of the positive pixels within ``radius``.

    1 for a round star or a centred donut; two merged stars d apart give ~sqrt(1 + (d/2 sigma)^2).
    """
    dy = np.arange(sub.shape[0]) - yc
    dx = np.arange(sub.shape[1]) - xc
    inside = dy[:, None] ** 2 + dx[None, :] ** 2 <= radius * radius
    w = np.where(inside, np.clip(sub, 0.0, None), 0.0)
    total = w.sum()
    if not total > 0:
        return math.nan
    myy = float((w.sum(axis=1) * dy * dy).sum() / total)
    mxx = float((w.sum(axis=0) * dx * dx).sum() / total)
    mxy = float((w * dy[:, None] * dx[None, :]).sum() / total)
    mean = 0.5 * (mxx + myy)
    diff = math.sqrt(0.25 * (mxx - myy) ** 2 + mxy * mxy)
    minor = mean - diff
    return math.sqrt((mean + diff) / minor) if minor > 0 else math.inf


class _Neighbours:
    """Points sorted by x, for "which lie within r of (x, y)": the one query scipy.spatial.cKDTree did.

    A band of the sorted x by binary search, then the exact distance (<= r, as cKDTree): the same
    answer without scipy.spatial, whose import costs ~13 MB of RSS in every autofocus run (issue 13).
    """

    def __init__(self, pos: np.ndarray):
        self.order = np.argsort(pos[:, 0], kind="stable")
        self.x = pos[self.order, 0]
        self.y = pos[self.order, 1]

    def query_ball_point(self, point, r: float) -> np.ndarray:
        px, py = float(point[0]), float(point[1])
        lo, hi = int(np.searchsorted(self.x, px - r, "left")), int(np.searchsorted(self.x, px + r, "right"))
        dx, dy = self.x[lo:hi] - px, self.y[lo:hi] - py
        return np.sort(self.order[lo:hi][dx * dx + dy * dy <= r * r])


class _FrameMeasurer:
    """Per-frame state for measuring sources one by one."""

    def __init__(self, data: np.ndarray, det: Detections, settings: AnalysisSettings):
        self.data = data
        self.det = det
        self.s = settings
        self.saturation = settings.saturation_level(data.dtype)
        self.height, self.width = data.shape
        # hot pixels next to a star must not reject it as blended
        self.hot = det.peak_fraction >= settings.hot_pixel_fraction
        self.neighbours = np.flatnonzero(~self.hot)
        pos = np.column_stack([det.x[self.neighbours], det.y[self.neighbours]])
        self.tree = _Neighbours(pos) if len(self.neighbours) > 1 else None

    def _cutout(self, x: float, y: float, rmax: float) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(raw, background-subtracted) pixels around (x, y) reaching rmax + 2, and their origin."""
        reach = int(math.ceil(rmax)) + 2
        ix, iy = int(round(x)), int(round(y))
        x0, x1 = max(0, ix - reach), min(self.width, ix + reach + 1)
        y0, y1 = max(0, iy - reach), min(self.height, iy + reach + 1)
        raw = self.data[y0:y1, x0:x1]
        sub = raw.astype(np.float64) - self.det.background_at(y0, y1, x0, x1)
        return raw, sub, x0, y0

    def _peak(self, raw: np.ndarray, xc: float, yc: float, rmax: float) -> float:
        dy2 = (np.arange(raw.shape[0]) - yc) ** 2
        dx2 = (np.arange(raw.shape[1]) - xc) ** 2
        inside = dy2[:, None] + dx2[None, :] <= rmax * rmax
        return float(raw[inside].max()) if inside.any() else math.nan

    def _off_frame(self, x: float, y: float, rmax: float) -> bool:
        return x - rmax < 0 or y - rmax < 0 or x + rmax > self.width - 1 or y + rmax > self.height - 1

    def _blended(self, i: int, rmax: float) -> bool:
        if self.tree is None or self.s.blend_separation <= 0:
            return False
        det = self.det
        near = self.neighbours[self.tree.query_ball_point([det.x[i], det.y[i]], self.s.blend_separation * rmax)]
        limit = self.s.blend_flux_ratio * det.flux[i]
        return any(j != i and det.flux[j] >= limit for j in near)

    def measure(self, i: int) -> StarMeasurement | str:
        """The star from source ``i``, or the reason (one of REJECTIONS) it is not kept."""
        s, det = self.s, self.det
        if self.hot[i]:
            return "hot_pixel"
        x, y = float(det.x[i]), float(det.y[i])
        margin = s.edge_margin
        if x < margin or y < margin or x > self.width - 1 - margin or y > self.height - 1 - margin:
            return "edge"
        # first guess: the radius at the detection threshold is 1-3.5 HFR for a Gaussian (more
        # for brighter stars); start small, as a circle reaching a neighbour inflates the HFR
        hfr = max(float(det.radius[i]) / 2.5, 0.7)
        raw, sub, x0, y0 = self._cutout(x, y, max(s.aperture_factor * hfr, MIN_APERTURE))
        if raw.max() >= self.saturation and self._peak(raw, x - x0, y - y0, 2.5 * hfr) >= self.saturation:
            return "saturated"  # checked early: the brightest sources are the likely saturated ones
        # rough rounds, with coarser sub-pixels, to settle the centre and the aperture
        for _ in range(s.hfr_iterations):
            rmax = max(s.aperture_factor * hfr, MIN_APERTURE)
            raw, sub, x0, y0 = self._cutout(x, y, rmax)
            xc, yc = _windowed_centre(sub, x - x0, y - y0, hfr)
            x, y = xc + x0, yc + y0
            new_hfr, _ = half_flux_radius(sub, xc, yc, rmax, min(s.subpixels, math.ceil(ROUGH_PARTS / rmax)))
            if not math.isfinite(new_hfr) or new_hfr <= 0:
                return "faint"
            change = abs(new_hfr - hfr) / hfr
            # a star's own wings make the HFR creep up a little each round; a neighbour or
            # nebulosity entering the circle makes it run away
            hfr = min(new_hfr, MAX_GROWTH * hfr)
            if change < CONVERGED:
                break
        else:
            if change > NOT_CONVERGED:
                return "blended"
        rmax = max(s.aperture_factor * hfr, MIN_APERTURE)
        if self._off_frame(x, y, rmax):
            return "edge"
        raw, sub, x0, y0 = self._cutout(x, y, rmax)
        hfr, flux = half_flux_radius(sub, x - x0, y - y0, rmax, s.subpixels)
        if not (math.isfinite(hfr) and flux > 0):
            return "faint"
        peak = self._peak(raw, x - x0, y - y0, rmax)
        if peak >= self.saturation:
            return "saturated"
        if not s.min_hfr <= hfr <= s.max_hfr:
            return "size"
        snr = flux / math.sqrt(flux / s.gain + math.pi * rmax * rmax * det.background_rms**2)
        if snr < s.min_snr:
            return "faint"
        if self._blended(i, rmax):
            return "blended"
        # the source's centroid lies between merged stars; the re-centred circle sits on one
        if math.hypot(x - det.x[i], y - det.y[i]) > max(MAX_SHIFT * hfr, 1.0):
            return "blended"
        if elongation(sub, x - x0, y - y0, ELONGATION_RADIUS * hfr) > s.max_elongation:
            return "elongated"
        return StarMeasurement(float(x), float(y), flux, peak, hfr, snr)


def summarize(stars: list[StarMeasurement]) -> tuple[float, float]:
    """(median HFR, MAD-based sigma of the HFRs) of ``stars``; NaNs for none."""
    if not stars:
        return math.nan, math.nan
    hfrs = np.array([st.hfr for st in stars])
    median = float(np.median(hfrs))
    return median, MAD_TO_SIGMA * float(np.median(np.abs(hfrs - median)))


def measure_frame(data: np.ndarray, settings: AnalysisSettings | None = None) -> FrameMeasurement:
    """Detect and measure the stars of the 2-D frame ``data`` (raw ADU, any numeric dtype)."""
    try:
        return _measure_frame(data, settings or AnalysisSettings())
    finally:  # the frame's scratch arrays are free now: hand them back (see analysis/memory.py)
        release_free_memory()


def _measure_frame(data: np.ndarray, settings: AnalysisSettings) -> FrameMeasurement:
    data = np.asarray(data)
    if data.ndim != 2:
        raise AnalysisError(
            f"a frame must be a 2-D array of pixels, got shape {data.shape}; "
            "debayer or take one colour plane of a colour frame first"
        )
    if data.dtype.kind not in "uif":
        raise AnalysisError(f"a frame must hold numbers, got dtype {data.dtype}")
    if min(data.shape) < 16:
        raise AnalysisError(f"a frame of {data.shape[1]}x{data.shape[0]} px is too small to measure (>= 16x16)")

    if data.dtype.kind == "f" and not np.isfinite(data).all():
        # bad pixels some drivers or calibrations mark as NaN: the sky level, so they add nothing
        finite = np.isfinite(data)
        data = np.where(finite, data, np.median(data[finite]) if finite.any() else 0.0)

    det = detect(data, settings)
    measurer = _FrameMeasurer(data, det, settings)
    rejected = dict.fromkeys(REJECTIONS, 0)
    stars: list[StarMeasurement] = []
    for i in np.argsort(-det.flux, kind="stable"):
        if det.flux[i] <= 0:
            rejected["faint"] += 1
            continue
        result = measurer.measure(int(i))
        if isinstance(result, str):
            rejected[result] += 1
            continue
        stars.append(result)
        if settings.max_stars and len(stars) >= settings.max_stars:
            break
    median, spread = summarize(stars)
    return FrameMeasurement(
        star_count=len(stars),
        median_hfr=median,
        hfr_spread=spread,
        background=det.background,
        background_rms=det.background_rms,
        stars=stars,
        detected=len(det),
        rejected=rejected,
    )
