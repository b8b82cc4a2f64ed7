"""Co-alignment of OTAs: offset from the master's centre, rotation difference and field overlap."""

import pytest

from indisync.acquire.coalign import FieldSolution, coalign_all, coalignment
from indisync.acquire.geometry import apply_offset

MASTER = FieldSolution(150.0, 40.0, -90.0, 25.4, 20.3)


def test_identical_fields_overlap_fully():
    c = coalignment(MASTER, MASTER)
    assert c.offset_arcmin == pytest.approx(0.0, abs=1e-9)
    assert c.rotation_diff_deg == pytest.approx(0.0)
    assert c.overlap_pct == pytest.approx(100.0)
    assert c.parity_matches and not c.low_overlap


def test_shift_along_the_image_width_halves_the_overlap():
    # rotation -90: image up points west, so the image's width runs north-south
    ra, dec = apply_offset(MASTER.ra, MASTER.dec, 0.0, 25.4 / 2 * 60)
    c = coalignment(MASTER, FieldSolution(ra, dec, -90.0, 25.4, 20.3), min_overlap_pct=80)
    assert c.offset_arcmin == pytest.approx(12.7, abs=1e-6)
    assert c.offset_north_arcmin == pytest.approx(12.7, abs=1e-6)
    assert c.overlap_pct == pytest.approx(50.0, abs=0.01)
    assert c.low_overlap
    # the same shift east (along the image height, 20.3') leaves (20.3-12.7)/20.3
    ra, dec = apply_offset(MASTER.ra, MASTER.dec, 12.7 * 60, 0.0)
    c = coalignment(MASTER, FieldSolution(ra, dec, -90.0, 25.4, 20.3))
    assert c.overlap_pct == pytest.approx(100 * (20.3 - 12.7) / 20.3, abs=0.05)


def test_rotation_difference_and_overlap_of_a_turned_field():
    c = coalignment(MASTER, FieldSolution(150.0, 40.0, -87.0, 25.4, 20.3))
    assert c.rotation_diff_deg == pytest.approx(3.0)
    assert 90.0 < c.overlap_pct < 100.0
    square = FieldSolution(150.0, 40.0, 0.0, 20.0, 20.0)
    assert coalignment(square, FieldSolution(150.0, 40.0, 90.0, 20.0, 20.0)).overlap_pct == pytest.approx(100.0)
    # a square turned 45 degrees about the same centre: the octagon is 2(sqrt2-1) = 82.8 % of it
    assert coalignment(square, FieldSolution(150.0, 40.0, 45.0, 20.0, 20.0)).overlap_pct == pytest.approx(82.84, abs=0.01)
    # wrap: 179 vs -179 is 2 degrees apart, not 358
    assert coalignment(FieldSolution(0, 0, 179.0, 10, 10), FieldSolution(0, 0, -179.0, 10, 10)).rotation_diff_deg == pytest.approx(2.0)


def test_narrow_field_inside_a_wide_one_and_disjoint_fields():
    wide = FieldSolution(10.0, -20.0, 30.0, 120.0, 80.0)
    narrow = FieldSolution(*apply_offset(10.0, -20.0, 300.0, 300.0), 77.0, 20.0, 15.0)
    assert coalignment(wide, narrow).overlap_pct == pytest.approx(100.0)
    far = FieldSolution(*apply_offset(10.0, -20.0, 0.0, 3 * 3600.0), 30.0, 120.0, 80.0)
    assert coalignment(wide, far).overlap_pct == 0.0
    opposite = FieldSolution(190.0, 20.0, 30.0, 120.0, 80.0)
    c = coalignment(wide, opposite)
    assert c.overlap_pct == 0.0 and c.low_overlap


def test_across_ra_zero_and_all_otas():
    m = FieldSolution(359.95, 10.0, 0.0, 30.0, 20.0)
    s = FieldSolution(0.05, 10.0, 1.5, 30.0, 20.0, parity=-1)
    result = coalign_all(m, {"ota2": s}, min_overlap_pct=50)
    c = result["ota2"]
    assert c.offset_east_arcmin == pytest.approx(0.1 * 60 * 0.98481, rel=1e-3)
    assert c.rotation_diff_deg == pytest.approx(1.5)
    assert not c.parity_matches
    straight = coalignment(m, FieldSolution(0.05, 10.0, 0.0, 30.0, 20.0))
    assert straight.overlap_pct == pytest.approx(100 * (30 - straight.offset_east_arcmin) / 30, abs=0.01)
    assert c.overlap_pct < straight.overlap_pct - 0.5  # turning it 1.5 degrees costs the corners
