"""Settings of star detection and HFR measurement (config section ``analysis``).

Every threshold the measurement uses is here, with the reason for its default. Sizes are in
unbinned pixels of the frame handed to ``measure_frame``; fluxes and levels are in ADU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..configtypes import ConfigValueError


@dataclass
class AnalysisSettings:
    # --- background -------------------------------------------------------------------------
    background_box: int = 64
    """Side of the boxes the sky is estimated in (3-sigma-clipped mean per box, then a 3x3
    median filter over boxes; see analysis/background.py). Several times a focused star, small
    enough to follow gradients; defocused stars get larger boxes automatically."""

    # --- detection --------------------------------------------------------------------------
    detection_sigma: float = 3.0
    """A source is pixels above ``detection_sigma * background_rms`` in the smoothed image
    (the same convention as SEP's ``thresh`` with ``err=globalrms``). Smoothing lowers the noise
    about 3x, so 3 here is ~10 sigma of the smoothed noise: few false sources."""
    fwhm_guess: float = 3.0
    """Width (px) of the Gaussian the frame is smoothed with before thresholding. Focused
    stars on small-pixel cameras are 2-5 px; broad defocused stars are still found with it."""
    min_pixels: int = 5
    """Fewest connected pixels above threshold that make a source (drops faint hot pixels)."""
    large_frame_megapixels: float = 8.0
    """Frames larger than this are detected on a 2x2-binned copy (background, smoothing and
    segmentation cost 4x less); stars are still measured on the unbinned pixels."""

    # --- measurement ------------------------------------------------------------------------
    aperture_factor: float = 5.0
    """The HFR is measured in a circle of radius ``aperture_factor * HFR`` (iterated from a
    first estimate), so the aperture grows with defocus. 5 x HFR is ~6 sigma for a Gaussian,
    like the 6 x a that SEP's documentation uses with flux_radius."""
    hfr_iterations: int = 4
    """Most re-centring / re-measuring rounds; stops earlier once the HFR changes < 0.5 %."""
    subpixels: int = 5
    """Each pixel is split in subpixels x subpixels parts for the radial profile (as SEP's
    subpix=5); needed for stars of HFR ~1-2 px, thinned automatically for broad stars."""
    max_stars: int = 500
    """Measure at most this many stars, brightest first (0: all). A few hundred give a median
    HFR to well under 1 %; the bound keeps 26-megapixel frames fast."""

    # --- rejection --------------------------------------------------------------------------
    saturation_adu: float | None = None
    """Stars with a pixel at or above this raw level (ADU, bias included) are rejected.
    null: ``saturation_fraction`` of the full scale of ``bit_depth``."""
    saturation_fraction: float = 0.9
    """Fraction of full scale used when ``saturation_adu`` is null: sensors go non-linear
    before the ADC clips, and the INDI CCD simulator clips at 65000."""
    bit_depth: int | None = None
    """Bits of the camera's ADC for the full scale. null: from the array's integer dtype
    (uint16 -> 16), and 16 for float data."""
    edge_margin: int = 10
    """Stars whose centre is within this many px of the frame border, or whose aperture
    crosses the border, are rejected (their profile is cut)."""
    blend_separation: float = 1.5
    """A star is blended, and rejected, when another source lies within
    ``blend_separation * its aperture radius`` ..."""
    blend_flux_ratio: float = 0.05
    """... and that source has at least this fraction of the star's flux. Fainter neighbours
    change the HFR by well under 1 % and are ignored, so noise specks do not reject stars."""
    max_elongation: float = 1.5
    """Sources whose major / minor axis ratio (second moments within 2 HFR) exceeds this are
    rejected: two stars merged into one source (1.8 for a pair 3 sigma apart), or trailed.
    Good tracking with coma or tilt stays under ~1.3."""
    min_snr: float = 10.0
    """Stars with a signal-to-noise ratio below this are rejected; their HFR is mostly noise.
    SNR = flux / sqrt(flux / gain + aperture_area * background_rms**2)."""
    gain: float = 1.0
    """Electrons per ADU, only used for the star's own photon noise in the SNR."""
    hot_pixel_fraction: float = 0.7
    """Sources with at least this share of their flux in their brightest pixel are hot pixels or
    cosmic-ray hits (a focused star centred on a pixel puts < 0.5 there, even 2x2-binned)."""
    min_hfr: float = 0.5
    """Sources with a smaller HFR (px) are hot pixels or cosmic-ray hits, not stars."""
    max_hfr: float = 100.0
    """Sources with a larger HFR (px) are nebulae, gradients or the Moon's glow, not stars."""

    def validate(self) -> None:
        positive = {
            "background_box": self.background_box,
            "detection_sigma": self.detection_sigma,
            "fwhm_guess": self.fwhm_guess,
            "min_pixels": self.min_pixels,
            "large_frame_megapixels": self.large_frame_megapixels,
            "hfr_iterations": self.hfr_iterations,
            "subpixels": self.subpixels,
            "gain": self.gain,
            "min_hfr": self.min_hfr,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ConfigValueError(key, f"got {value!r}; allowed: a number > 0")
        if self.background_box < 8:
            raise ConfigValueError("background_box", f"got {self.background_box}; allowed: >= 8 px")
        if self.aperture_factor < 2:
            raise ConfigValueError("aperture_factor", f"got {self.aperture_factor}; allowed: >= 2 (x HFR)")
        if self.max_stars < 0:
            raise ConfigValueError("max_stars", f"got {self.max_stars}; allowed: 0 (all) or a positive count")
        if self.saturation_adu is not None and self.saturation_adu <= 0:
            raise ConfigValueError("saturation_adu", f"got {self.saturation_adu}; allowed: null or ADU > 0")
        if not 0 < self.saturation_fraction <= 1:
            raise ConfigValueError("saturation_fraction", f"got {self.saturation_fraction}; allowed: 0 < f <= 1")
        if self.bit_depth is not None and not 1 <= self.bit_depth <= 32:
            raise ConfigValueError("bit_depth", f"got {self.bit_depth}; allowed: null or 1..32")
        if self.edge_margin < 0:
            raise ConfigValueError("edge_margin", f"got {self.edge_margin}; allowed: >= 0 px")
        if self.blend_separation < 0:
            raise ConfigValueError("blend_separation", f"got {self.blend_separation}; allowed: >= 0")
        if not 0 <= self.blend_flux_ratio <= 1:
            raise ConfigValueError("blend_flux_ratio", f"got {self.blend_flux_ratio}; allowed: 0..1")
        if not 0 < self.hot_pixel_fraction <= 1:
            raise ConfigValueError("hot_pixel_fraction", f"got {self.hot_pixel_fraction}; allowed: 0 < f <= 1")
        if self.max_elongation < 1:
            raise ConfigValueError("max_elongation", f"got {self.max_elongation}; allowed: >= 1 (major / minor axis)")
        if self.min_snr < 0:
            raise ConfigValueError("min_snr", f"got {self.min_snr}; allowed: >= 0")
        if self.max_hfr <= self.min_hfr:
            raise ConfigValueError("max_hfr", f"got {self.max_hfr}; allowed: greater than min_hfr ({self.min_hfr})")

    def saturation_level(self, dtype) -> float:
        """The raw ADU at and above which a pixel counts as saturated, for data of ``dtype``."""
        import numpy as np

        if self.saturation_adu is not None:
            return float(self.saturation_adu)
        bits = self.bit_depth
        if bits is None:
            dt = np.dtype(dtype)
            bits = dt.itemsize * 8 if dt.kind == "u" else (dt.itemsize * 8 - 1 if dt.kind == "i" else 16)
        return self.saturation_fraction * float(2**bits - 1)
