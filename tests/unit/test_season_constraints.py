"""Constraints over a night's grid (indisync.season.constraints, ephem): fixed dates, astropy offline."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from indisync.season.constraints import (BROADBAND, NARROWBAND, flip_margin, horizon_altitude, limits_for,
                                         moon_limit_deg, table_for)
from indisync.season.ephem import alt_az, hour_angle, night_bounds
from indisync.season.model import Constraints, PlanLine, Target
from indisync.season.settings import MoonRule, SchedulerSettings

from .season_skies import SITE, epoch, full_moon, march1  # noqa: F401 - fixtures



def target(name="T", ra=0.0, dec=0.0, **kw) -> Target:
    return Target("p", name, ra, dec, (PlanLine("ota1", "Luminance", 300, 10), PlanLine("ota3", "Ha", 300, 10)), **kw)


def test_horizon_interpolates_and_wraps_at_360():
    profile = [(350, 10), (10, 30), (180, 20)]
    assert horizon_altitude([0.0], profile)[0] == pytest.approx(20.0)
    assert horizon_altitude([355.0], profile)[0] == pytest.approx(15.0)
    assert horizon_altitude([95.0], profile)[0] == pytest.approx(25.0)
    assert horizon_altitude([720.0 + 10.0], profile)[0] == pytest.approx(30.0)
    assert horizon_altitude([123.0], [(0, 17)])[0] == 17.0
    assert horizon_altitude([1.0, 2.0], None).tolist() == [-90.0, -90.0]


def test_moon_limit_is_the_lorentzian():
    rule = MoonRule(distance=120, width=14)
    assert moon_limit_deg(14.75, rule) == pytest.approx(120.0)
    assert moon_limit_deg(14.75 + 14, rule) == pytest.approx(60.0)
    assert moon_limit_deg(0.75, rule) == pytest.approx(60.0)
    narrow = MoonRule(distance=60, width=7)
    assert moon_limit_deg(14.75 + 7, narrow) == pytest.approx(30.0)


def test_flip_margin_is_continuous_at_the_meridian_and_anti_meridian():
    ha = np.array([-179.0, -90.0, -1.0, 1.0, 90.0, 179.0])
    assert flip_margin(ha).tolist() == pytest.approx([1.0, 90.0, 1.0, -1.0, -90.0, -1.0])


def test_night_bounds_the_night_under_way_or_the_next(march1):
    night = night_bounds(SITE, epoch(2027, 3, 1, 23))
    assert night[0] == pytest.approx(march1.start, abs=5)
    assert night[1] <= march1.end < night[1] + march1.step_s  # the grid's last sample: at or after sunrise
    noon_next = night_bounds(SITE, epoch(2027, 3, 2, 12))
    assert noon_next[0] > march1.end + 6 * 3600
    assert march1.night_date == "2027-03-01"
    assert datetime.fromtimestamp(march1.start, timezone.utc).hour == 16  # sunset 17:54 CET


def test_numpy_altitude_agrees_with_astropy(march1):
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    ra, dec = np.array([202.47, 83.82, 300.0]), np.array([47.2, -5.39, 60.0])
    alt, az = alt_az(ra, dec, march1)
    loc = EarthLocation.from_geodetic(SITE.longitude * u.deg, SITE.latitude * u.deg, SITE.elevation * u.m)
    times = Time(march1.times, format="unix")
    for i in range(3):
        ref = SkyCoord(ra[i] * u.deg, dec[i] * u.deg).transform_to(AltAz(obstime=times, location=loc))
        assert np.abs(ref.alt.deg - alt[i]).max() < 0.05
        low = ref.alt.deg < 80  # azimuth is ill-defined near the zenith
        assert np.abs(((ref.az.deg - az[i] + 180) % 360 - 180)[low]).max() < 0.1
    ha = hour_angle(ra, march1)
    assert ha.min() >= -180 and ha.max() <= 180


def test_why_names_the_first_failing_constraint_in_words(march1):
    settings = SchedulerSettings()
    low = target("Low", ra=250.42, dec=36.46)  # M13: below 30° in the evening
    table = table_for(march1, [low], settings)
    t = epoch(2027, 3, 1, 19)
    assert table.why(0, t, 300, BROADBAND).startswith("altitude ")
    assert "< 30°" in table.why(0, t, 300, BROADBAND)
    dusk = march1.start + 600
    assert table.why(0, dusk, 300, BROADBAND).startswith("sun ")
    assert table.why(0, dusk, 300, BROADBAND).endswith("> -18° (broadband)")
    late = epoch(2027, 3, 2, 2)
    assert table.why(0, late, 300, BROADBAND) is None
    assert table.window_ok([0], late, 300, BROADBAND)[0]


def test_date_range_compares_the_nights_local_date(march1):
    settings = SchedulerSettings()
    ended = target("Ended", ra=202.47, dec=47.2, end_date="2027-02-28")
    later = target("Later", ra=202.47, dec=47.2, start_date="2027-03-02")
    today = target("Today", ra=202.47, dec=47.2, start_date="2027-03-01", end_date="2027-03-01")
    table = table_for(march1, [ended, later, today], settings)
    t = epoch(2027, 3, 2, 1)  # after midnight: still the night of 2027-03-01
    assert table.why(0, t, 300, BROADBAND) == "after its end date 2027-02-28"
    assert table.why(1, t, 300, BROADBAND) == "before its start date 2027-03-02"
    assert table.why(2, t, 300, BROADBAND) is None


def test_horizon_profile_excludes_with_its_altitude(march1):
    settings = SchedulerSettings(horizon=[[0, 60], [359, 60]])
    table = table_for(march1, [target("M51", ra=202.47, dec=47.2)], settings)
    t = epoch(2027, 3, 1, 21)  # M51 at ~40° in the east
    text = table.why(0, t, 300, BROADBAND)
    assert text.startswith("altitude ") and "< horizon 60.0° at azimuth" in text
    own = target("M51", ra=202.47, dec=47.2, constraints=Constraints(horizon=((0, 10), (180, 10))))
    assert table_for(march1, [own], settings).why(0, t, 300, BROADBAND) is None  # the target's own profile wins


def test_before_flip_excludes_past_the_meridian(march1):
    settings = SchedulerSettings()
    m51 = target("M51", ra=202.47, dec=47.2, constraints=Constraints(before_flip=True))
    table = table_for(march1, [m51], settings)
    transit = march1.times[int(np.argmax(table.alt[0]))]
    assert table.why(0, transit - 1800, 300, BROADBAND) is None
    assert table.why(0, transit + 1200, 300, BROADBAND) == "past the meridian (before_flip)"
    assert not table.window_ok([0], transit - 200, 300, BROADBAND)[0]  # the frame would end past it


def test_moon_excludes_broadband_not_narrowband(full_moon):
    settings = SchedulerSettings()
    near = target("Near", ra=175.0, dec=70.0)  # ~70° from the full moon: inside 120° (broadband), outside 60°
    table = table_for(full_moon, [near], settings)
    t = epoch(2027, 3, 21, 23)
    assert full_moon.at(t)["moon_illum"] > 0.98
    words = table.why(0, t, 300, BROADBAND)
    assert words.startswith("moon ") and words.endswith("(Lorentzian, broadband)")
    assert table.why(0, t, 300, NARROWBAND) is None
    assert table.window_ok([0], t, 300, NARROWBAND)[0] and not table.window_ok([0], t, 300, BROADBAND)[0]


def test_a_targets_moon_rule_overrides_the_broadband_distance(full_moon):
    settings = SchedulerSettings()
    lenient = target("Near", ra=175.0, dec=70.0, constraints=Constraints(moon_separation=30, moon_width=5))
    limits = limits_for(lenient, settings)
    assert limits.moon[BROADBAND] == (30, 5) and limits.moon[NARROWBAND] == (30, 5)
    table = table_for(full_moon, [lenient], settings)
    assert table.why(0, epoch(2027, 3, 21, 23), 300, BROADBAND) is None
