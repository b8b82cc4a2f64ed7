"""Stars on a sensor at sub-pixel positions, and the FITS file they are sent in. numpy only.

Pixel centres sit at integer coordinates (as in ``indisync.guiding.star``): pixel ``i`` covers
``[i - 0.5, i + 0.5]``. A star's light is the PSF integrated over each pixel: exactly (through erf)
for a Gaussian, by ``SUPERSAMPLE`` x ``SUPERSAMPLE`` sub-pixels for a Moffat. So a star 0.3 px to
the right gives a centroid 0.3 px to the right, not 0 or 1.

The sky's frame: a star's offset from the field centre is (west, north) arcsec; the sensor's x axis
points ``rotation`` degrees from West towards North (180 more on the other pier side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

SUPERSAMPLE = 5  # sub-pixels per pixel side for PSFs without a closed-form pixel integral
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class CameraParams:
    width: int = 640  # unbinned pixels
    height: int = 480
    pixel_size: float = 3.75  # um
    focal_length: float = 600.0  # mm (the guide scope's)
    rotation: float = 12.0  # degrees from West towards North of the sensor's x axis
    optics_fwhm: float = 1.2  # arcsec added in quadrature to the seeing (optics, focus)
    moffat_beta: float = 4.0  # 0: a Gaussian PSF
    read_noise: float = 3.0  # e- RMS per (binned) pixel
    gain: float = 1.0  # e- per ADU
    bias: float = 200.0  # ADU
    sky_background: float = 20.0  # e- per unbinned pixel per second
    star_flux: float = 60000.0  # e- per second of the brightest star
    stars: int = 25
    transparency: float = 1.0  # 0..1: clouds
    field_seed: int = 7

    @property
    def scale(self) -> float:
        """Arcsec per unbinned pixel."""
        return 206.264806 * self.pixel_size / self.focal_length

    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not math.isfinite(v):
                raise ValueError(f"camera parameter {f.name} = {v}: allowed: a finite number")
        for name in ("width", "height", "pixel_size", "focal_length", "gain"):
            if getattr(self, name) <= 0:
                raise ValueError(f"camera parameter {name} = {getattr(self, name)}: allowed: > 0")
        for name in ("optics_fwhm", "read_noise", "bias", "sky_background", "star_flux", "stars"):
            if getattr(self, name) < 0:
                raise ValueError(f"camera parameter {name} = {getattr(self, name)}: allowed: >= 0")
        if self.moffat_beta != 0 and self.moffat_beta <= 1:
            raise ValueError(f"camera parameter moffat_beta = {self.moffat_beta}: allowed: 0 (Gaussian) or > 1")
        if not 0 <= self.transparency <= 1:
            raise ValueError(f"camera parameter transparency = {self.transparency}: allowed: 0..1")


@dataclass(frozen=True)
class FieldStar:
    west: float  # arcsec from the field centre
    north: float
    flux: float  # e- per second


def star_field(params: CameraParams) -> list[FieldStar]:
    """The field's stars (deterministic for ``field_seed``): uniform over the sensor with a margin,
    fluxes spread over 5 magnitudes below ``star_flux``, the brightest first."""
    rng = np.random.default_rng(int(params.field_seed))
    half_w = params.width * params.scale / 2.0
    half_h = params.height * params.scale / 2.0
    out = []
    for i in range(int(params.stars)):
        x, y = rng.uniform(-0.92, 0.92, 2)
        mag = 0.0 if i == 0 else float(rng.uniform(0.0, 5.0))
        out.append(FieldStar(float(x * half_w), float(y * half_h), params.star_flux * 10 ** (-0.4 * mag)))
    return sorted(out, key=lambda s: -s.flux)


def sky_to_sensor(west: float, north: float, rotation_deg: float, scale: float) -> tuple[float, float]:
    """Arcsec (west, north) to sensor px (dx, dy) for a sensor turned ``rotation_deg`` at ``scale`` arcsec/px."""
    r = math.radians(rotation_deg)
    c, s = math.cos(r), math.sin(r)
    return (west * c + north * s) / scale, (-west * s + north * c) / scale


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.2e-7 (Numerical Recipes' erfc Chebyshev fit): numpy has none, scipy is not loaded here."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    r = t * np.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return np.where(x >= 0, 1.0 - r, r - 1.0)


def psf_stamp(x: float, y: float, fwhm_px: float, beta: float, flux: float,
              shape: tuple[int, int]) -> tuple[np.ndarray, slice, slice] | None:
    """The star's e- per pixel in the part of a ``shape`` frame it touches: (stamp, rows, cols), or
    None when it falls outside. ``beta`` 0 is a Gaussian, else a Moffat of that beta."""
    h, w = shape
    reach = int(math.ceil((4.0 if beta == 0 else 6.0) * fwhm_px)) + 2
    x0, x1 = max(int(math.floor(x)) - reach, 0), min(int(math.floor(x)) + reach + 1, w)
    y0, y1 = max(int(math.floor(y)) - reach, 0), min(int(math.floor(y)) + reach + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)
    if beta == 0:
        sigma = fwhm_px / FWHM_PER_SIGMA
        k = 1.0 / (math.sqrt(2.0) * sigma)
        fx = 0.5 * (_erf((xs + 0.5 - x) * k) - _erf((xs - 0.5 - x) * k))
        fy = 0.5 * (_erf((ys + 0.5 - y) * k) - _erf((ys - 0.5 - y) * k))
        stamp = flux * np.outer(fy, fx)
    else:
        alpha = fwhm_px / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        n = SUPERSAMPLE
        sub = (np.arange(n) + 0.5) / n - 0.5
        sx = (xs[:, None] + sub[None, :]).ravel() - x
        sy = (ys[:, None] + sub[None, :]).ravel() - y
        r2 = (sy[:, None] ** 2 + sx[None, :] ** 2) / (alpha * alpha)
        norm = (beta - 1.0) / (math.pi * alpha * alpha)  # the Moffat's integral over the plane is 1
        fine = norm * (1.0 + r2) ** (-beta) / (n * n)
        stamp = flux * fine.reshape(len(ys), n, len(xs), n).sum(axis=(1, 3))
    return stamp, slice(y0, y1), slice(x0, x1)


@dataclass(frozen=True)
class FrameTruth:
    """Where the field sat during the exposure: its mean offset and its blur."""

    west: float  # arcsec: the stars' mean apparent offset (mount error and seeing) on the sky
    north: float
    smear: float = 0.0  # arcsec RMS of the motion during the exposure
    pier_flip: bool = False  # True: the sensor is turned 180 degrees (the other pier side)


def render(params: CameraParams, field: list[FieldStar], truth: FrameTruth, seconds: float, binning: int,
           seeing_fwhm: float, rng: np.random.Generator | None, frame_type: str = "light") -> np.ndarray:
    """One frame (uint16, binned): the field shifted by ``truth``, with shot and read noise and sky
    background; ``rng`` None: no noise (the expected e- as ADU, for tests)."""
    b = max(int(binning), 1)
    h, w = params.height // b, params.width // b
    scale = params.scale * b
    light = frame_type in ("light", "flat")
    sky = params.sky_background * b * b * seconds if light else 0.0
    img = np.full((h, w), sky, dtype=np.float64)
    if frame_type == "flat":
        img += 20000.0 * params.gain
    if frame_type == "light" and params.transparency > 0:
        fwhm = math.sqrt(seeing_fwhm ** 2 + params.optics_fwhm ** 2 + (FWHM_PER_SIGMA * truth.smear) ** 2) / scale
        rotation = params.rotation + (180.0 if truth.pier_flip else 0.0)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        for star in field:
            dx, dy = sky_to_sensor(star.west + truth.west, star.north + truth.north, rotation, scale)
            out = psf_stamp(cx + dx, cy + dy, fwhm, params.moffat_beta,
                            star.flux * seconds * params.transparency, (h, w))
            if out is not None:
                stamp, rows, cols = out
                img[rows, cols] += stamp
    if rng is not None:
        # shot noise (Gaussian with the Poisson variance: at 20 e- and more per pixel the two agree
        # to a few %, and it is four times faster) and read noise
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        img += noise * np.sqrt(img + params.read_noise ** 2)
    adu = img / params.gain + params.bias
    np.clip(adu, 0, 65535, out=adu)
    return np.rint(adu).astype(np.uint16)


def fits_bytes(data: np.ndarray, header: dict[str, object]) -> bytes:
    """A minimal FITS file: one 16-bit image (unsigned through BZERO 32768) and the given cards.

    Header values: bool, int, float or str (strings up to 68 characters). Keys up to 8 characters.
    """
    if data.dtype != np.uint16 or data.ndim != 2:
        raise ValueError(f"fits_bytes writes 2-D uint16 images, got {data.dtype} {data.shape}")
    cards = [("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", data.shape[1]), ("NAXIS2", data.shape[0]),
             ("BZERO", 32768), ("BSCALE", 1)]
    cards += [(k, v) for k, v in header.items()]
    lines = []
    for key, value in cards:
        if len(key) > 8:
            raise ValueError(f"FITS keyword {key!r} is longer than 8 characters")
        if isinstance(value, bool):
            text = f"{'T' if value else 'F':>20}"
        elif isinstance(value, int):
            text = f"{value:>20d}"
        elif isinstance(value, float):
            text = f"{value:>20.10G}"
        else:
            s = str(value).replace("'", "''")[:68]
            text = f"'{s:<8}'"
        lines.append(f"{key:<8}= {text}".ljust(80)[:80])
    lines.append("END".ljust(80))
    head = "".join(lines).encode("ascii")
    head += b" " * (-len(head) % 2880)
    body = (data.astype(np.int32) - 32768).astype(">i2").tobytes()
    body += b"\0" * (-len(body) % 2880)
    return head + body


def read_fits_header(blob: bytes) -> dict[str, str]:
    """The header cards of a FITS file as raw strings (for tests without astropy)."""
    out = {}
    for i in range(0, len(blob), 80):
        card = blob[i:i + 80].decode("ascii", errors="replace")
        key = card[:8].strip()
        if key == "END":
            break
        if card[8:10] == "= ":
            out[key] = card[10:].split("/")[0].strip().strip("'").strip()
    return out

