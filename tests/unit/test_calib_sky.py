"""Where and when sky flats are taken (calib.sky): fixed dates and sites, never today's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from indisync.astro.site import dark_interval, sun_altitudes
from indisync.calib.sky import altaz_of, flat_spot, flat_windows, sun_azimuth
from indisync.night.settings import NightSettings, SiteSettings

UTC = timezone.utc
MUNICH = SiteSettings(latitude=48.1, longitude=11.6, elevation=520)
LA_SILLA = SiteSettings(latitude=-29.26, longitude=-70.73, elevation=2400)
TROMSO = SiteSettings(latitude=69.65, longitude=18.96)
OSLO = SiteSettings(latitude=59.9, longitude=10.75)


def _sun_alt(site, epoch):
    from astropy.time import Time

    return float(sun_altitudes(site, Time(datetime.fromtimestamp(epoch, UTC))))


def _sun_radec(when):
    """The sun's direction from the Earth (GCRS; ICRS would put its origin at the barycentre, 0.007 AU
    from the sun); within aberration (20") of the J2000 direction."""
    import astropy.units as u
    from astropy.coordinates import get_body
    from astropy.time import Time

    sun = get_body("sun", Time(when))
    return sun.ra.to_value(u.deg), sun.dec.to_value(u.deg)


@pytest.mark.parametrize("site,when,altitude", [
    (MUNICH, datetime(2025, 3, 20, 17, 50, tzinfo=UTC), 75.0),
    (MUNICH, datetime(2025, 12, 21, 16, 20, tzinfo=UTC), 70.0),
    (LA_SILLA, datetime(2025, 6, 21, 23, 0, tzinfo=UTC), 75.0),
    (OSLO, datetime(2025, 9, 1, 4, 0, tzinfo=UTC), 80.0),  # dawn
])
def test_flat_spot_is_anti_solar_at_the_altitude(site, when, altitude):
    ra, dec = flat_spot(site, when, altitude)
    alt, az = altaz_of(site, ra, dec, when)
    assert alt == pytest.approx(altitude, abs=0.05)
    sun_az = sun_azimuth(site, when)
    assert ((az - (sun_az + 180.0)) + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=0.2)
    # independently: along the great circle through the zenith, the spot is (90 - sun alt) + (90 - altitude)
    # from the sun
    from indisync.astro.coords import separation_arcsec

    sun_alt = _sun_alt(site, when.timestamp())
    sep = separation_arcsec(ra, dec, *_sun_radec(when)) / 3600.0
    assert sep == pytest.approx((90.0 - sun_alt) + (90.0 - altitude), abs=0.1)


@pytest.mark.parametrize("site,day", [
    (MUNICH, datetime(2025, 3, 20, 12, 0, tzinfo=UTC)),
    (MUNICH, datetime(2025, 12, 21, 12, 0, tzinfo=UTC)),
    (LA_SILLA, datetime(2025, 6, 21, 18, 0, tzinfo=UTC)),
    (OSLO, datetime(2025, 10, 1, 12, 0, tzinfo=UTC)),
])
def test_windows_cross_the_limits_around_the_dark(site, day):
    windows = flat_windows(site, day, -2.0, -10.0)
    (d0, d1), (a0, a1) = windows.dusk, windows.dawn
    assert day.timestamp() < d0 < d1 < a0 < a1 < day.timestamp() + 36 * 3600
    for t, level in ((d0, -2.0), (d1, -10.0), (a0, -10.0), (a1, -2.0)):
        assert _sun_alt(site, t) == pytest.approx(level, abs=0.3)
    assert _sun_alt(site, (d0 + d1) / 2) < _sun_alt(site, d0 - 600)  # setting
    assert _sun_alt(site, (a0 + a1) / 2) > _sun_alt(site, a0 - 600)  # rising
    dark = dark_interval(site, NightSettings(start_sun_altitude=-12, end_sun_altitude=-12), day)
    assert d1 <= dark.start.timestamp() and dark.end.timestamp() <= a0  # dusk before the dark, dawn after
    # the limits in either order
    assert flat_windows(site, day, -10.0, -2.0) == windows


def test_inside_dusk_the_current_one_and_at_night_this_mornings_dawn():
    day = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
    windows = flat_windows(MUNICH, day, -2.0, -10.0)
    (d0, d1), (a0, a1) = windows.dusk, windows.dawn
    inside = flat_windows(MUNICH, datetime.fromtimestamp((d0 + d1) / 2, UTC), -2.0, -10.0)
    assert inside.dusk == pytest.approx((d0, d1), abs=60) and inside.dawn == pytest.approx((a0, a1), abs=60)
    midnight = flat_windows(MUNICH, datetime.fromtimestamp((d1 + a0) / 2, UTC), -2.0, -10.0)
    assert midnight.dawn == pytest.approx((a0, a1), abs=60)
    assert midnight.dusk[0] > a1  # tomorrow evening's
    assert midnight.dusk[0] - d0 == pytest.approx(86400, abs=600)


def test_polar_summer_and_winter_have_none():
    summer = flat_windows(TROMSO, datetime(2025, 6, 21, 12, 0, tzinfo=UTC), -2.0, -10.0)
    assert summer.dusk is None and summer.dawn is None  # the sun never sets
    winter = flat_windows(SiteSettings(latitude=78.2, longitude=15.6), datetime(2025, 12, 21, 0, 0, tzinfo=UTC),
                          -2.0, -10.0)
    assert winter.dusk is None and winter.dawn is None  # never above -2


def test_a_sun_that_dips_but_never_reaches_the_low_limit():
    # Oslo at midsummer: the sun goes down to about -7: flats between -2 and -6 yes, down to -10 no
    when = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
    assert flat_windows(OSLO, when, -2.0, -10.0).dusk is None
    shallow = flat_windows(OSLO, when, -2.0, -6.0)
    assert shallow.dusk is not None and shallow.dawn is not None and shallow.dusk[1] < shallow.dawn[0]


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        flat_spot(MUNICH, datetime(2025, 3, 20, 18, 0))


def test_to_dict():
    windows = flat_windows(MUNICH, datetime(2025, 3, 20, 12, 0, tzinfo=UTC), -2.0, -10.0)
    d = windows.to_dict()
    assert d["dusk"]["from"].startswith("2025-03-20T17:") and d["dawn"]["to"].startswith("2025-03-21T05:")
    assert timedelta(0) < timedelta(seconds=windows.dusk[1] - windows.dusk[0]) < timedelta(hours=2)
