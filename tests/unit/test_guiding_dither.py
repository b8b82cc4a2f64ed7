"""Dither offsets and the settle tracker."""

import math
import random

import pytest

from indisync.guiding.calibration import AxisCalibration, Calibration
from indisync.guiding.dither import SettleTracker, random_offset
from indisync.guiding.settings import SettleSettings

CAL = Calibration(ra=AxisCalibration(math.radians(30), 0.01, 8, 16),
                  dec=AxisCalibration(math.radians(120), 0.01, 8, 16), step_ms=500)


def test_offsets_are_bounded_and_vary():
    rng = random.Random(4)
    offs = [random_offset(3.0, False, CAL, rng) for _ in range(200)]
    for dx, dy in offs:
        ra, dec = CAL.to_mount(dx, dy)
        assert abs(ra) <= 3.0 + 1e-9 and abs(dec) <= 3.0 + 1e-9
    assert len({(round(dx, 3), round(dy, 3)) for dx, dy in offs}) == 200
    assert max(math.hypot(dx, dy) for dx, dy in offs) > 3.0  # both axes used


def test_ra_only_offsets_lie_along_ra():
    rng = random.Random(5)
    for _ in range(50):
        dx, dy = random_offset(3.0, True, CAL, rng)
        ra, dec = CAL.to_mount(dx, dy)
        assert abs(dec) < 1e-9 and abs(ra) <= 3.0


def test_settles_after_time_within_pixels():
    t = SettleTracker(SettleSettings(pixels=1.5, time=10, timeout=60), start=0.0)
    assert t.update(2.0, 4.0) is None
    assert t.update(4.0, 1.0) is None  # within since 4
    assert t.update(8.0, 2.0) is None  # out again: restart
    assert t.update(10.0, 1.0) is None
    assert t.update(19.0, 0.5) is None
    assert t.update(20.0, 1.4) is True
    assert t.seconds == 20.0
    assert t.update(25.0, 9.0) is True  # decided stays decided


def test_times_out_and_lost_frames_count_as_out():
    t = SettleTracker(SettleSettings(pixels=1.5, time=10, timeout=30), start=100.0)
    for now in range(101, 129, 2):
        assert t.update(float(now), None if now % 4 == 1 else 1.0) is None
    assert t.update(130.0, 1.0) is False
    assert t.seconds == pytest.approx(30.0)


def test_zero_settle_time_settles_on_first_good_frame():
    t = SettleTracker(SettleSettings(pixels=1.0, time=0, timeout=5), start=0.0)
    assert t.update(1.0, 3.0) is None
    assert t.update(2.0, 0.5) is True
