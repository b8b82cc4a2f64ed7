"""Render synthetic star fields with known star widths, for tests and benchmarks.

The frames look like the INDI CCD simulator's: a bias level, sky glow, Gaussian read noise and
photon noise, unsigned 16-bit pixels that clip at 65535. Stars are Gaussian or Moffat profiles
integrated over each pixel (not sampled at pixel centres), so a Gaussian of width ``sigma``
carries the pixel box too: its measured half-flux radius is ``1.1774 * sqrt(sigma**2 + 1/12)``
(see ``gaussian_hfr``), which is what a perfect measurement returns.

A "donut" star (an annulus, as a reflector far out of focus shows) can be rendered too, to check
that the measurement stays monotonic when stars grow to tens of pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import erf

SQRT2 = math.sqrt(2.0)
GAUSS_HALF_LIGHT = math.sqrt(2.0 * math.log(2.0))  # half-light radius of a 2D Gaussian / sigma


def gaussian_hfr(sigma: float, pixel_box: bool = True) -> float:
    """Half-flux radius of a circular 2D Gaussian of width ``sigma`` px.

    With ``pixel_box`` the Gaussian is convolved with the 1x1 pixel (variance 1/12 per axis),
    as it is once rendered into pixels; the result is then approximate to well under 1 %.
    """
    var = sigma * sigma + (1.0 / 12.0 if pixel_box else 0.0)
    return GAUSS_HALF_LIGHT * math.sqrt(var)


@dataclass
class SyntheticStar:
    x: float
    y: float
    flux: float  # total ADU above the sky
    sigma: float  # Gaussian sigma, Moffat core width alpha, or donut outer radius, px
    profile: Literal["gaussian", "moffat", "donut"] = "gaussian"
    beta: float = 3.0  # Moffat index
    obstruction: float = 0.4  # donut: inner radius / outer radius


def _gaussian_stamp(star: SyntheticStar, x0: int, y0: int, size: int) -> np.ndarray:
    """Pixel-integrated Gaussian on the stamp whose lower-left pixel centre is (x0, y0)."""
    edges_x = np.arange(size + 1) + x0 - 0.5 - star.x
    edges_y = np.arange(size + 1) + y0 - 0.5 - star.y
    cx = np.diff(erf(edges_x / (SQRT2 * star.sigma))) / 2.0
    cy = np.diff(erf(edges_y / (SQRT2 * star.sigma))) / 2.0
    return star.flux * np.outer(cy, cx)


def _supersampled_stamp(star: SyntheticStar, x0: int, y0: int, size: int, sub: int = 5) -> np.ndarray:
    """Profiles without a separable integral: average ``sub``x``sub`` samples in each pixel."""
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    xs = (np.arange(size)[:, None] + offsets[None, :]).ravel() + x0 - star.x
    ys = (np.arange(size)[:, None] + offsets[None, :]).ravel() + y0 - star.y
    r2 = ys[:, None] ** 2 + xs[None, :] ** 2
    if star.profile == "moffat":
        img = (1.0 + r2 / star.sigma**2) ** (-star.beta)
    elif star.profile == "donut":
        r = np.sqrt(r2)
        inner = star.sigma * star.obstruction
        # a soft-edged annulus: flat between the radii, falling off over ~1.5 px
        img = 1.0 / (1.0 + np.exp((r - star.sigma) / 1.5)) / (1.0 + np.exp((inner - r) / 1.5))
    else:
        raise ValueError(f"unknown profile {star.profile!r}; allowed: gaussian, moffat, donut")
    img = img.reshape(size, sub, size, sub).mean(axis=(1, 3))
    total = img.sum()
    return star.flux * img / total if total > 0 else img


def render_stars(shape: tuple[int, int], stars: list[SyntheticStar]) -> np.ndarray:
    """Noise-free float64 image (sky 0) holding the stars; stamps are clipped at the frame edge."""
    height, width = shape
    image = np.zeros(shape, dtype=np.float64)
    for star in stars:
        # beyond these radii the profile holds < 1e-4 of the flux
        extents = {"gaussian": 5.0 * star.sigma, "moffat": 12.0 * star.sigma, "donut": star.sigma + 12.0}
        if star.profile not in extents:
            raise ValueError(f"unknown profile {star.profile!r}; allowed: {', '.join(extents)}")
        extent = extents[star.profile]
        half = int(math.ceil(extent)) + 1
        size = 2 * half + 1
        x0 = int(round(star.x)) - half
        y0 = int(round(star.y)) - half
        if star.profile == "gaussian":
            stamp = _gaussian_stamp(star, x0, y0, size)
        else:
            stamp = _supersampled_stamp(star, x0, y0, size)
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + size, width), min(y0 + size, height)
        if xa >= xb or ya >= yb:
            continue
        image[ya:yb, xa:xb] += stamp[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return image


def noisy_frame(
    signal: np.ndarray,
    rng: np.random.Generator,
    bias: float = 1000.0,
    sky: float = 200.0,
    read_noise: float = 10.0,
    gain: float = 1.0,
    poisson: bool = True,
) -> np.ndarray:
    """Add sky, photon noise (``gain`` e-/ADU) and read noise to ``signal``; return uint16 ADU.

    For large frames ``poisson=False`` uses the Gaussian approximation of photon noise, which is
    several times faster and indistinguishable at these signal levels.
    """
    electrons = (signal + sky) * gain
    if poisson:
        electrons = rng.poisson(np.clip(electrons, 0, None)).astype(np.float64)
    else:
        electrons = electrons + rng.standard_normal(signal.shape) * np.sqrt(np.clip(electrons, 0, None))
    adu = electrons / gain + bias + rng.standard_normal(signal.shape) * read_noise
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def random_stars(
    rng: np.random.Generator,
    shape: tuple[int, int],
    count: int,
    sigma: float,
    flux_range: tuple[float, float] = (5_000.0, 200_000.0),
    margin: float = 20.0,
    profile: Literal["gaussian", "moffat", "donut"] = "gaussian",
) -> list[SyntheticStar]:
    """``count`` stars at uniform random positions with log-uniform fluxes, all of width ``sigma``."""
    height, width = shape
    xs = rng.uniform(margin, width - 1 - margin, count)
    ys = rng.uniform(margin, height - 1 - margin, count)
    fluxes = np.exp(rng.uniform(math.log(flux_range[0]), math.log(flux_range[1]), count))
    return [SyntheticStar(float(x), float(y), float(f), sigma, profile) for x, y, f in zip(xs, ys, fluxes)]
