"""Calibration maths: axes and rates from position series, failure modes, coordinate transforms."""

import math

import numpy as np
import pytest

from indisync.errors import CalibrationError
from indisync.guiding.calibration import Calibration, axis_done, derive_calibration, fit_axis


def series(angle_deg, px_per_step, steps, noise=0.0, seed=0, start=(0.0, 0.0)):
    rng = np.random.default_rng(seed)
    a = math.radians(angle_deg)
    return [(start[0] + i * px_per_step * math.cos(a) + rng.normal(0, noise),
             start[1] + i * px_per_step * math.sin(a) + rng.normal(0, noise)) for i in range(steps + 1)]


@pytest.mark.parametrize("ra_angle", [0.0, 37.0, 160.0, -100.0])
def test_derives_angles_and_rates(ra_angle):
    west = series(ra_angle, 2.5, 8, noise=0.1, seed=1)
    north = series(ra_angle + 90, 1.5, 10, noise=0.1, seed=2, start=(0.4, -0.3))
    cal = derive_calibration(west, north, 500, min_move=3, max_orthogonality_error=15, declination=30.0)
    assert math.degrees(cal.ra.angle) == pytest.approx(ra_angle if ra_angle > -180 else ra_angle + 360, abs=1.5)
    assert cal.ra.rate == pytest.approx(2.5 / 500, rel=0.03)
    assert cal.dec.rate == pytest.approx(1.5 / 500, rel=0.03)
    assert cal.orthogonality_error < 2
    assert (cal.ra.steps, cal.dec.steps) == (8, 10)


def test_mount_that_does_not_move_is_an_error_naming_the_fix():
    west = series(0, 0.05, 12, noise=0.05)
    north = series(90, 2, 8)
    with pytest.raises(CalibrationError, match="not responding to guide pulses"):
        derive_calibration(west, north, 500, min_move=3, max_orthogonality_error=15)


def test_non_orthogonal_axes_are_rejected():
    west = series(0, 2, 8)
    north = series(50, 2, 8)
    with pytest.raises(CalibrationError, match="degrees apart"):
        derive_calibration(west, north, 500, min_move=3, max_orthogonality_error=15)
    # mirrored axes (camera flipped) are still perpendicular, hence fine
    cal = derive_calibration(series(0, 2, 8), series(-90, 2, 8), 500, min_move=3, max_orthogonality_error=15)
    assert cal.orthogonality_error < 1


def test_to_mount_and_back_round_trip_with_skewed_axes():
    cal = derive_calibration(series(20, 2, 8), series(118, 3, 8), 400, min_move=3, max_orthogonality_error=15)
    ra, dec = cal.to_mount(*cal.to_camera(1.7, -2.2))
    assert (ra, dec) == pytest.approx((1.7, -2.2), abs=1e-9)
    # a pure move along the fitted West direction is all RA
    a = cal.ra.angle
    ra, dec = cal.to_mount(3 * math.cos(a), 3 * math.sin(a))
    assert ra == pytest.approx(3) and dec == pytest.approx(0, abs=1e-9)


def test_ra_rate_rescaled_with_declination():
    cal = derive_calibration(series(0, 2, 8), series(90, 2, 8), 500, min_move=3,
                             max_orthogonality_error=15, declination=0.0)
    at60 = cal.at_declination(60.0)
    assert at60.ra.rate == pytest.approx(cal.ra.rate * 0.5)
    assert at60.dec.rate == cal.dec.rate
    assert cal.at_declination(None) is cal
    assert cal.at_declination(89.5) is cal  # too close to the pole to rescale


def test_axis_done_by_distance_or_steps():
    assert not axis_done([(0, 0), (3, 4)], 15, 12)
    assert axis_done([(0, 0), (3, 4), (9, 12)], 15, 12)
    assert axis_done([(0, 0)] + [(0.1, 0)] * 12, 15, 12)


def test_fit_axis_needs_a_pulse():
    with pytest.raises(CalibrationError):
        fit_axis([(0, 0)], 500, name="RA", min_move=1)


def test_dict_round_trip():
    cal = derive_calibration(series(10, 2, 8), series(100, 2, 8), 500, min_move=3,
                             max_orthogonality_error=15, declination=25.0, pixel_scale=0.55)
    d = cal.as_dict()
    assert d["ra"]["angle_deg"] == pytest.approx(10, abs=0.01)
    assert Calibration.from_dict(d) == cal
