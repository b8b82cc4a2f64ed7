"""Guide stars: find them in a frame, choose the ones worth guiding on, and measure their centroids.

Pure numpy/scipy on 2-D arrays (row = y, column = x, pixel centres at integer coordinates).

A star is measured in a box around where it is expected: the background and its noise come from a
ring just outside the box (local, so vignetting and gradients do not bias it), the star is the
connected patch of the lightly smoothed image above ``DETECT_SIGMA`` smoothed-noise levels that holds
the box's brightest point, and its position is the background-subtracted intensity-weighted centroid
of that patch. The patch adapts to the star's size, so the same code serves a 3 px star on a short
focal length and a 20 px one on the guide simulator, and a neighbour outside the patch does not pull
the centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# A patch with fewer raw pixels 2 sigma above the sky is a hot pixel or a cosmic ray, not a star.
MIN_PIXELS = 3
# Detection threshold, in noise levels of the 3x3-smoothed image (whose noise is 1/3 of the raw's).
DETECT_SIGMA = 4.0
# Width in pixels of the background ring around a measuring box.
RING = 6
# A neighbour brighter than this fraction of a star's flux, within ``isolation`` px, spoils it.
NEIGHBOUR_FLUX_FRACTION = 0.1


@dataclass(frozen=True)
class Star:
    x: float
    y: float
    flux: float  # background-subtracted ADU in the patch
    peak: float  # brightest raw pixel, ADU (background included)
    snr: float
    pixels: int  # size of the patch
    saturated: bool


def saturation_level(image: np.ndarray, saturation: float | None) -> float:
    """The ADU level counting as saturated: the configured one, else 95% of the data type's range."""
    if saturation is not None:
        return float(saturation)
    if np.issubdtype(image.dtype, np.integer):
        return 0.95 * float(np.iinfo(image.dtype).max)
    return 0.95 * 65535.0


def robust_background(values: np.ndarray) -> tuple[float, float]:
    """(level, noise) of a set of sky pixels: median and a MAD-based sigma after clipping stars out."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0, 1.0
    for _ in range(3):
        med = float(np.median(v))
        mad = float(np.median(np.abs(v - med)))
        sigma = 1.4826 * mad
        if sigma <= 0:
            sigma = float(np.std(v)) or 1.0
        keep = np.abs(v - med) < 3 * sigma
        if keep.all() or keep.sum() < 10:
            break
        v = v[keep]
    return med, max(sigma, 1e-6)


def measure_star(image: np.ndarray, x: float, y: float, radius: float, *, min_snr: float,
                 saturation: float | None = None) -> Star | None:
    """The star nearest the brightest point within ``radius`` px of (x, y), or None if none is there.

    None means: the box is off the frame, or the brightest patch there is too small or below
    ``min_snr`` (clouds, a lost star, noise far above the stars).
    """
    peak_xy = _brightest_point(image, x, y, radius)
    if peak_xy is None:
        return None
    return _measure_at(image, *peak_xy, radius, min_snr=min_snr, saturation=saturation_level(image, saturation))


def _box(image: np.ndarray, x: float, y: float, half: int) -> tuple[int, int, int, int] | None:
    h, w = image.shape
    cx, cy = int(round(x)), int(round(y))
    x0, x1, y0, y1 = max(cx - half, 0), min(cx + half + 1, w), max(cy - half, 0), min(cy + half + 1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    return x0, x1, y0, y1


def _brightest_point(image: np.ndarray, x: float, y: float, radius: float) -> tuple[int, int] | None:
    box = _box(image, x, y, int(np.ceil(radius)))
    if box is None:
        return None
    x0, x1, y0, y1 = box
    smooth = ndimage.uniform_filter(image[y0:y1, x0:x1].astype(np.float64), 3, mode="nearest")
    iy, ix = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return x0 + int(ix), y0 + int(iy)


def _measure_at(image: np.ndarray, px: int, py: int, radius: float, *, min_snr: float,
                saturation: float) -> Star | None:
    half = int(np.ceil(radius))
    outer = _box(image, px, py, half + RING)
    inner = _box(image, px, py, half)
    if outer is None or inner is None:
        return None
    ox0, ox1, oy0, oy1 = outer
    x0, x1, y0, y1 = inner
    ring_mask = np.ones((oy1 - oy0, ox1 - ox0), dtype=bool)
    ring_mask[y0 - oy0:y1 - oy0, x0 - ox0:x1 - ox0] = False
    sky = image[oy0:oy1, ox0:ox1][ring_mask]
    if sky.size < 10:  # a box flush with the frame edge has no ring: use the box's own faint pixels
        sky = image[y0:y1, x0:x1]
    bg, noise = robust_background(sky)

    raw = image[y0:y1, x0:x1].astype(np.float64) - bg
    smooth = ndimage.uniform_filter(raw, 3, mode="nearest")
    labels, _ = ndimage.label(smooth > DETECT_SIGMA * noise / 3.0)
    label = labels[py - y0, px - x0]
    if label == 0:
        return None
    patch = labels == label
    npix = int(patch.sum())
    # Counted on the raw image: smoothing spreads a hot pixel over 3x3, a star is wide before smoothing.
    if int((raw[patch] > 2.0 * noise).sum()) < MIN_PIXELS:
        return None
    weights = np.where(patch, np.clip(raw, 0, None), 0.0)
    flux = float(weights.sum())
    if flux <= 0:
        return None
    # Background noise over the patch plus the star's own shot noise (gain taken as 1 e-/ADU).
    snr = flux / float(np.sqrt(npix * noise * noise + flux))
    if snr < min_snr:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    cx = float((weights * xx).sum() / flux)
    cy = float((weights * yy).sum() / flux)
    peak = float(image[y0:y1, x0:x1][patch].max())
    return Star(x=cx, y=cy, flux=flux, peak=peak, snr=snr, pixels=npix, saturated=peak >= saturation)


def find_stars(image: np.ndarray, *, min_snr: float, radius: float, saturation: float | None = None,
               limit: int = 50) -> list[Star]:
    """Stars in the whole frame, brightest first (at most ``limit``), each measured as in measure_star."""
    data = np.asarray(image)
    sample = data[::4, ::4] if data.size > 40000 else data
    bg, noise = robust_background(sample)
    smooth = ndimage.uniform_filter(data.astype(np.float32), 3, mode="nearest")
    size = max(5, int(radius) | 1)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=size, mode="nearest")) & (
        smooth > bg + DETECT_SIGMA * noise / 3.0
    )
    ys, xs = np.nonzero(peaks)
    order = np.argsort(smooth[ys, xs])[::-1][: limit * 3]
    sat = saturation_level(data, saturation)
    stars: list[Star] = []
    for i in order:
        star = _measure_at(data, int(xs[i]), int(ys[i]), radius, min_snr=min_snr, saturation=sat)
        # Two peaks of one star (a flat or saturated top) measure to the same place: keep one.
        if star is not None and all((s.x - star.x) ** 2 + (s.y - star.y) ** 2 > 4.0 for s in stars):
            stars.append(star)
        if len(stars) >= limit:
            break
    stars.sort(key=lambda s: s.flux, reverse=True)
    return stars


def choose_guide_stars(stars: list[Star], shape: tuple[int, int], *, count: int, min_snr: float,
                       edge_margin: float, isolation: float) -> list[Star]:
    """The best ``count`` guide stars, best first: unsaturated, SNR >= min_snr, clear of the frame
    edges and of comparable neighbours. Ranked by SNR (a saturated star's centroid is biased by its
    flat top, so it is never chosen however bright)."""
    h, w = shape
    chosen = []
    for s in stars:
        if s.saturated or s.snr < min_snr:
            continue
        if not (edge_margin <= s.x <= w - 1 - edge_margin and edge_margin <= s.y <= h - 1 - edge_margin):
            continue
        crowded = any(
            o is not s and (o.x - s.x) ** 2 + (o.y - s.y) ** 2 < isolation**2
            and o.flux > NEIGHBOUR_FLUX_FRACTION * s.flux
            for o in stars
        )
        if not crowded:
            chosen.append(s)
    chosen.sort(key=lambda s: s.snr, reverse=True)
    return chosen[:count]
