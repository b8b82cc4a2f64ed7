"""Sky background and source detection: the first half of ``measure_frame``.

Background: sigma-clipped median and noise in boxes of ``background_box`` px
(``background.background_mesh``), interpolated between box centres. The frame's single
``background`` / ``background_rms`` are the medians over the boxes. When sources cover much of
the frame or are large next to a box (defocused stars), the sky is estimated a second time with
the sources masked and in boxes big enough to hold one.

Detection: the sky-subtracted frame is smoothed with a Gaussian of FWHM ``fwhm_guess`` and
thresholded at ``detection_sigma`` x ``background_rms`` (SEP's ``thresh`` convention); connected
groups (8-connected) of at least ``min_pixels`` pixels are sources (what photutils
``detect_sources`` does, done here with ``scipy.ndimage.label``: importing photutils costs ~75 MB
of RSS and seconds of start-up on a Pi, for one labelling call). No deblending: sources that touch are one source, and ``measure`` rejects
pairs it can see as blends. A source's position is its centroid in the smoothed image.

Frames above ``large_frame_megapixels`` are first summed 2x2 (4x fewer pixels for the costly
steps); positions, sizes and the sky are converted back to unbinned pixels here, so the caller
never sees the binning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .background import background_mesh, upsample
from .settings import AnalysisSettings

GAUSS_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
# Sources covering more than this fraction of the frame (or typically larger than a quarter of a
# background box) bias the sky upwards; the sky is then estimated again with them masked.
CROWDED_FRACTION = 0.05
BAND_ROWS = 256  # rows of the label image counted / renumbered at once (small temporaries, not frame-sized ones)


@dataclass
class Detections:
    """Sources found in one frame, in unbinned pixel coordinates (pixel centres at integers)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # background-subtracted ADU summed over the source's pixels
    radius: np.ndarray  # radius of a disc with the source's area above threshold, px
    peak_fraction: np.ndarray  # the brightest (detection) pixel's share of the flux: ~1 for a hot pixel
    background_map: np.ndarray  # sky per unbinned pixel, on the detection grid (see background_at)
    binning: int
    background: float  # median sky per unbinned pixel, ADU
    background_rms: float  # median sky noise per unbinned pixel, ADU

    def __len__(self) -> int:
        return len(self.x)

    def background_at(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Sky of the unbinned pixels [y0:y1, x0:x1], read from the (maybe binned) map."""
        b = self.binning
        rows = np.minimum(np.arange(y0, y1) // b, self.background_map.shape[0] - 1)
        cols = np.minimum(np.arange(x0, x1) // b, self.background_map.shape[1] - 1)
        return self.background_map[np.ix_(rows, cols)]


def detection_binning(shape: tuple[int, int], settings: AnalysisSettings) -> int:
    return 2 if shape[0] * shape[1] > settings.large_frame_megapixels * 1e6 else 1


def _bin2(data: np.ndarray) -> np.ndarray:
    """Sum of each 2x2 block (a trailing odd row or column is dropped), as float32."""
    h, w = (data.shape[0] // 2) * 2, (data.shape[1] // 2) * 2
    out = data[0:h:2, 0:w:2].astype(np.float32)
    out += data[1:h:2, 0:w:2]
    out += data[0:h:2, 1:w:2]
    out += data[1:h:2, 1:w:2]
    return out


@dataclass
class Segments:
    """Sources as a label image: ``data`` 0 for sky, 1..n for the sources (consecutive)."""

    data: np.ndarray
    labels: np.ndarray  # 1..n
    areas: np.ndarray  # pixels of each label, in the order of ``labels``


def detect_sources(image: np.ndarray, threshold: float, npixels: int) -> Segments | None:
    """8-connected groups of pixels above ``threshold`` with at least ``npixels`` pixels, labelled
    1..n (photutils' ``detect_sources`` without deblending); None when there are none."""
    data, count = ndimage.label(image > threshold, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return None
    # by bands of rows: bincount takes its input as intp, a whole label image would be copied to int64
    areas = np.zeros(count + 1, dtype=np.intp)
    for top in range(0, data.shape[0], BAND_ROWS):
        areas += np.bincount(data[top:top + BAND_ROWS].ravel(), minlength=count + 1)
    keep = areas >= npixels
    keep[0] = False
    if not keep.any():
        return None
    if not keep[1:].all():  # drop the small ones and number the rest 1..n again
        relabel = np.zeros(count + 1, dtype=data.dtype)
        relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=data.dtype)
        # in place, a band of rows at a time: relabel[data] whole would be a second label image
        for top in range(0, data.shape[0], BAND_ROWS):
            band = data[top:top + BAND_ROWS]
            band[...] = relabel[band]
    kept_areas = areas[keep]
    return Segments(data, np.arange(1, len(kept_areas) + 1), kept_areas)


def _segment(image: np.ndarray, rms: float, settings: AnalysisSettings, b: int):
    """(smoothed image, Segments or None) of the sky-subtracted ``image``."""
    smoothed = ndimage.gaussian_filter(image, settings.fwhm_guess / GAUSS_FWHM_PER_SIGMA / b, mode="nearest")
    threshold = settings.detection_sigma * rms
    segments = detect_sources(smoothed, threshold, max(1, math.ceil(settings.min_pixels / (b * b))))
    return smoothed, segments


def _detection_pixels(data: np.ndarray, b: int) -> np.ndarray:
    """A new float32 array of the pixels detection works on (summed 2x2 when ``b`` is 2): ours to overwrite."""
    return _bin2(data) if b == 2 else data.astype(np.float32)


def _sky(raw: np.ndarray, box: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(sky-subtracted image, sky map, median sky, median noise) of ``raw``.

    The image is ``raw`` itself, the sky subtracted in place: one frame-sized float32 array fewer
    alive at the peak (memory, issue 13); the same float32 values as ``raw - sky``."""
    sky_grid, rms_grid, box = background_mesh(raw, box, mask)
    sky = upsample(sky_grid, raw.shape, box)
    rms = float(np.median(rms_grid))
    # a noise-free frame (rms 0) must not detect every pixel: keep the threshold above zero
    rms = max(rms, 1e-6 * max(float(np.abs(sky_grid).max()), 1.0))
    raw -= sky
    return raw, sky, float(np.median(sky_grid)), rms


def detect(data: np.ndarray, settings: AnalysisSettings) -> Detections:
    """Estimate the sky of ``data`` and find its sources (see the module docstring)."""
    b = detection_binning(data.shape, settings)
    box = settings.background_box // b
    image, sky, level, rms = _sky(_detection_pixels(data, b), box)
    smoothed, segments = _segment(image, rms, settings, b)
    if segments is not None:
        covered = segments.data > 0
        typical = float(np.sqrt(np.median(segments.areas) / math.pi))  # source radius, binned px
        if covered.mean() > CROWDED_FRACTION or typical > box / 4:
            # big or many sources bias the box statistics upwards (defocused stars fill whole
            # boxes): redo the sky with the sources masked, in boxes that can hold one. The first
            # pass's frame-sized arrays go first, so the two passes never hold theirs at once.
            del image, sky, smoothed, segments
            grow = 2 * int(math.ceil(typical / 2)) + 1
            mask = ndimage.maximum_filter(covered, size=grow)
            del covered
            image, sky, level, rms = _sky(_detection_pixels(data, b), max(box, int(8 * typical)), mask)
            del mask
            smoothed, segments = _segment(image, rms, settings, b)
    # the summed 2x2 block holds 4x the sky and 2x the (uncorrelated) noise of one pixel
    background_map = sky / (b * b) if b > 1 else sky
    background = level / (b * b)
    background_rms = rms / b
    if segments is None:
        empty = np.empty(0)
        return Detections(empty, empty, empty, empty, empty, background_map, b, background, background_rms)
    labels = segments.data
    # statistics over source pixels only: a few % of the frame, far cheaper than label-wide passes
    where = np.flatnonzero(labels)
    lab = labels.ravel()[where]
    n = int(lab.max()) + 1
    width = labels.shape[1]
    rows, cols = np.divmod(where, width)
    weight = smoothed.ravel()[where].astype(np.float64)
    wsum = np.bincount(lab, weight, n)
    index = segments.labels
    values = image.ravel()[where].astype(np.float64)
    flux = np.bincount(lab, values, n)[index]
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, lab, values)
    with np.errstate(divide="ignore", invalid="ignore"):
        peak_fraction = np.where(flux > 0, peak[index] / flux, 1.0)
    cy = np.bincount(lab, weight * rows, n)[index] / wsum[index]
    cx = np.bincount(lab, weight * cols, n)[index] / wsum[index]
    area = np.bincount(lab, minlength=n)[index] * float(b * b)
    # a binned pixel i covers unbinned pixels b*i .. b*i + b-1: its centre is b*i + (b-1)/2
    y = cy * b + (b - 1) / 2.0
    x = cx * b + (b - 1) / 2.0
    radius = np.sqrt(area / math.pi)
    return Detections(x, y, flux, radius, peak_fraction, background_map, b, background, background_rms)
