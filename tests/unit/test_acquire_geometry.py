"""Tangent-plane offsets and coordinate parsing used by centring and co-alignment."""

import math

import pytest

from indisync.acquire.geometry import apply_offset, parse_dec, parse_ra, tangent_offset, wrap180


@pytest.mark.parametrize("ra0,dec0", [(0.0, 0.0), (359.99, 10.0), (150.0, -60.0), (30.0, 88.5)])
@pytest.mark.parametrize("east,north", [(0.0, 0.0), (120.0, -45.0), (-600.0, 900.0)])
def test_offset_round_trip(ra0, dec0, east, north):
    ra, dec = apply_offset(ra0, dec0, east, north)
    e, n = tangent_offset(ra0, dec0, ra, dec)
    assert e == pytest.approx(east, abs=1e-6) and n == pytest.approx(north, abs=1e-6)


def test_offset_matches_spherical_separation_and_directions():
    # 1 arcmin north is +north; 1 arcmin east at Dec 60 is 2 arcmin of RA
    e, n = tangent_offset(100.0, 60.0, 100.0, 60.0 + 1 / 60)
    assert n == pytest.approx(60.0, abs=1e-3) and e == pytest.approx(0.0, abs=1e-9)
    e, n = tangent_offset(100.0, 60.0, 100.0 + 2 / 60, 60.0)
    assert e == pytest.approx(60.0, rel=1e-3) and abs(n) < 0.1
    # across RA 0: 359.99 -> 0.01 is east
    e, _ = tangent_offset(359.99, 0.0, 0.01, 0.0)
    assert e == pytest.approx(72.0, rel=1e-6)
    with pytest.raises(ValueError):
        tangent_offset(0.0, 0.0, 180.0, 0.0)


def test_parse_coordinates():
    assert parse_ra("10:00:00") == pytest.approx(150.0)
    assert parse_ra("150.25") == pytest.approx(150.25)
    assert parse_ra("1h58m31.1s") == pytest.approx((1 + 58 / 60 + 31.1 / 3600) * 15)
    assert parse_dec("-05:30:00") == pytest.approx(-5.5)
    assert parse_dec("-00:30") == pytest.approx(-0.5)  # the sign of a zero degree part survives
    assert parse_dec("+39.87") == pytest.approx(39.87)
    for bad in ("25:00:00", "abc", "10:61:00", "360"):
        with pytest.raises(ValueError, match="RA"):
            parse_ra(bad)
    for bad in ("91", "x", "10:00:61"):
        with pytest.raises(ValueError, match="Dec"):
            parse_dec(bad)
    assert wrap180(350.0) == pytest.approx(-10.0) and wrap180(-190.0) == pytest.approx(170.0)
    assert math.isclose(wrap180(180.0), -180.0)
