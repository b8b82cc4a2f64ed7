"""Sky background and source detection: the first half of ``measure_frame``.

Background: photutils ``Background2D`` -- sigma-clipped (3 sigma) median and standard deviation
in boxes of ``background_box`` px, median-filtered over 3x3 boxes and interpolated back to
pixels. The frame's single ``background`` / ``background_rms`` are the medians over the boxes.

Detection: the background-subtracted frame is smoothed with a Gaussian of FWHM ``fwhm_guess``
and thresholded at ``detection_sigma`` x the local background RMS; connected groups of at least
``min_pixels`` pixels are sources (photutils ``detect_sources``). No deblending: sources that
touch are one source, and the blend test in ``measure`` rejects close pairs it can see.

Frames above ``large_frame_megapixels`` are first summed 2x2 (4x fewer pixels for the costly
steps); positions, sizes and the background are converted back to unbinned pixels here, so the
caller never sees the binning.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from photutils.background import Background2D, MedianBackground, StdBackgroundRMS
from photutils.segmentation import detect_sources
from photutils.utils.exceptions import NoDetectionsWarning
from astropy.stats import SigmaClip
from scipy import ndimage

from .settings import AnalysisSettings

GAUSS_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass
class Detections:
    """Sources found in one frame, in unbinned pixel coordinates (pixel centres at integers)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # background-subtracted ADU summed over the source's pixels
    radius: np.ndarray  # radius of a disc with the source's area above threshold, px
    background_map: np.ndarray  # sky per unbinned pixel, on the detection grid (see background_at)
    rms_map: np.ndarray
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


def estimate_background(image: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """(sky, rms) maps of ``image`` from sigma-clipped box statistics (photutils Background2D)."""
    box = max(4, min(box, image.shape[0], image.shape[1]))
    bkg = Background2D(
        image,
        box,
        filter_size=3,
        sigma_clip=SigmaClip(sigma=3.0, maxiters=5),
        bkg_estimator=MedianBackground(),
        bkg_rms_estimator=StdBackgroundRMS(),
    )
    return bkg.background.astype(np.float32, copy=False), bkg.background_rms.astype(np.float32, copy=False)


def detect(data: np.ndarray, settings: AnalysisSettings) -> Detections:
    """Estimate the sky of ``data`` and find its sources (see the module docstring)."""
    b = detection_binning(data.shape, settings)
    image = _bin2(data) if b == 2 else data.astype(np.float32)
    sky, rms = estimate_background(image, settings.background_box // b)
    image -= sky  # in place: image is our own float32 copy
    # the summed 2x2 block holds 4x the sky and 2x the (uncorrelated) noise of one pixel
    background_map = sky / (b * b)
    background = float(np.median(background_map))
    background_rms = float(np.median(rms)) / b

    empty = np.empty(0)
    none_found = Detections(empty, empty, empty, empty, background_map, rms / b, b, background, background_rms)

    smoothed = ndimage.gaussian_filter(image, settings.fwhm_guess / GAUSS_FWHM_PER_SIGMA / b, mode="nearest")
    # a noise-free frame (rms 0) must not detect every pixel: keep the threshold above zero
    floor = 1e-6 * max(abs(background), 1.0)
    threshold = np.maximum(settings.detection_sigma * rms, floor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segments = detect_sources(smoothed, threshold, max(1, math.ceil(settings.min_pixels / (b * b))))
    if segments is None:
        return none_found
    labels = segments.data
    index = segments.labels
    flux = ndimage.sum_labels(image, labels, index)
    centres = np.asarray(ndimage.center_of_mass(smoothed, labels, index), dtype=np.float64).reshape(-1, 2)
    area = np.bincount(labels.ravel(), minlength=int(index.max()) + 1)[index] * float(b * b)
    # a binned pixel i covers unbinned pixels b*i .. b*i + b-1: its centre is b*i + (b-1)/2
    y = centres[:, 0] * b + (b - 1) / 2.0
    x = centres[:, 1] * b + (b - 1) / 2.0
    radius = np.sqrt(area / math.pi)
    return Detections(x, y, np.asarray(flux, dtype=np.float64), radius, background_map, rms / b, b, background, background_rms)
