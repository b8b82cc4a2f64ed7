"""The sky's stars on a sensor (indisync.sim.sky.render): sub-pixel positions, flux, noise, FITS."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from astropy.io import fits

from indisync.guiding.star import measure_star
from indisync.sim.sky.render import (CameraParams, FieldStar, FrameTruth, fits_bytes, psf_stamp, read_fits_header,
                                     render, sky_to_sensor, star_field)

ONE = [FieldStar(0.0, 0.0, 50000.0)]


def _centroid(img: np.ndarray, bias: float) -> tuple[float, float]:
    data = img.astype(float) - bias
    yy, xx = np.indices(data.shape)
    return (data * xx).sum() / data.sum(), (data * yy).sum() / data.sum()


@pytest.mark.parametrize("beta", [0.0, 4.0])
def test_a_star_moves_by_fractions_of_a_pixel(beta):
    p = CameraParams(read_noise=0.0, sky_background=0.0, rotation=0.0, moffat_beta=beta)
    cx0, cy0 = _centroid(render(p, ONE, FrameTruth(0.0, 0.0), 1.0, 1, 2.0, None), p.bias)
    assert (cx0, cy0) == pytest.approx(((p.width - 1) / 2, (p.height - 1) / 2), abs=0.01)
    for shift in (0.1, 0.3, 0.55, 0.8):
        cx, cy = _centroid(render(p, ONE, FrameTruth(shift * p.scale, 0.0), 1.0, 1, 2.0, None), p.bias)
        assert cx - cx0 == pytest.approx(shift, abs=0.01)  # not 0 or 1: no whole-pixel rounding
        assert cy == pytest.approx(cy0, abs=0.01)


def test_the_psf_integrates_to_the_flux_and_has_its_fwhm():
    for beta in (0.0, 3.0):
        stamp, rows, cols = psf_stamp(50.3, 40.7, 3.0, beta, 1000.0, (100, 100))
        assert stamp.sum() == pytest.approx(1000.0, rel=0.02 if beta else 1e-4)
    # Gaussian: the profile through the centre is at half maximum 1.5 px out
    stamp, rows, cols = psf_stamp(50.0, 50.0, 6.0, 0.0, 1.0, (101, 101))
    row = stamp[50 - rows.start]
    peak = row.max()
    assert row[50 - cols.start + 3] / peak == pytest.approx(0.5, abs=0.04)


def test_a_star_off_the_frame_is_not_drawn():
    assert psf_stamp(-100.0, 10.0, 2.0, 4.0, 1.0, (50, 50)) is None


def test_rotation_and_scale_map_west_and_north():
    assert sky_to_sensor(2.0, 0.0, 0.0, 2.0) == pytest.approx((1.0, 0.0))
    assert sky_to_sensor(0.0, 2.0, 0.0, 2.0) == pytest.approx((0.0, 1.0))
    dx, dy = sky_to_sensor(2.0, 0.0, 90.0, 1.0)
    assert (dx, dy) == pytest.approx((0.0, -2.0), abs=1e-12)
    assert math.hypot(*sky_to_sensor(3.0, 4.0, 33.0, 1.0)) == pytest.approx(5.0)


def test_noise_is_shot_and_read_noise_about_the_sky():
    p = CameraParams(stars=0, read_noise=5.0, sky_background=100.0, gain=2.0, bias=300.0)
    img = render(p, [], FrameTruth(0, 0), 1.0, 1, 2.0, np.random.default_rng(1)).astype(float)
    assert img.mean() == pytest.approx(300 + 100 / 2.0, abs=0.5)
    assert img.std() == pytest.approx(math.sqrt(100 + 25) / 2.0, rel=0.05)


def test_binning_sums_pixels_and_halves_the_frame():
    p = CameraParams(read_noise=0.0, sky_background=10.0)
    one = render(p, ONE, FrameTruth(0, 0), 1.0, 1, 2.0, None).astype(float) - p.bias
    two = render(p, ONE, FrameTruth(0, 0), 1.0, 2, 2.0, None).astype(float) - p.bias
    assert two.shape == (p.height // 2, p.width // 2)
    assert two.sum() == pytest.approx(one.sum(), rel=0.01)


def test_clouds_hide_the_stars_and_dark_frames_have_no_sky():
    p = CameraParams(transparency=0.0, read_noise=0.0)
    img = render(p, star_field(p), FrameTruth(0, 0), 1.0, 1, 2.0, None)
    assert img.max() == img.min()
    dark = render(CameraParams(read_noise=0.0), star_field(CameraParams()), FrameTruth(0, 0), 1.0, 1, 2.0, None, "dark")
    assert dark.max() == dark.min() == CameraParams().bias


def test_the_guiders_centroid_sees_a_third_of_a_pixel_through_noise():
    p = CameraParams(rotation=0.0)
    rng = np.random.default_rng(3)
    xs = {0.0: [], 0.3: []}
    for shift in xs:
        for _ in range(10):
            img = render(p, ONE, FrameTruth(shift * p.scale, 0.0), 1.0, 1, 2.0, rng)
            xs[shift].append(measure_star(img, 319.5, 239.5, 20, min_snr=8).x)
    assert np.mean(xs[0.3]) - np.mean(xs[0.0]) == pytest.approx(0.3, abs=0.03)


def test_the_field_is_deterministic_and_spread_over_the_sensor():
    a, b = star_field(CameraParams()), star_field(CameraParams())
    assert a == b and len(a) == 25
    assert a[0].flux == CameraParams().star_flux and all(s.flux <= a[0].flux for s in a)
    assert star_field(CameraParams(field_seed=8)) != a
    half_w = CameraParams().width * CameraParams().scale / 2
    assert all(abs(s.west) < half_w for s in a)


def test_fits_bytes_read_back_by_astropy():
    data = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    blob = fits_bytes(data, {"EXPTIME": 1.5, "SCALE": 1.289, "INSTRUME": "Sky Guider", "XBINNING": 2, "FLAG": True})
    assert len(blob) % 2880 == 0
    with fits.open(io.BytesIO(blob)) as hdul:
        assert np.array_equal(hdul[0].data, data)
        h = hdul[0].header
        assert h["EXPTIME"] == 1.5 and h["SCALE"] == pytest.approx(1.289) and h["INSTRUME"] == "Sky Guider"
        assert h["XBINNING"] == 2 and h["FLAG"] is True
    assert read_fits_header(blob)["INSTRUME"] == "Sky Guider"
    with pytest.raises(ValueError, match="longer than 8"):
        fits_bytes(data, {"TOOLONGKEY": 1})


def test_bad_camera_parameters_are_refused_with_the_name():
    with pytest.raises(ValueError, match="transparency"):
        CameraParams(transparency=2.0).validate()
    with pytest.raises(ValueError, match="moffat_beta"):
        CameraParams(moffat_beta=0.5).validate()
