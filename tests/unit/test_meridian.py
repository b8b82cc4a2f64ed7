"""The meridian flip's pure parts: sidereal time, hour angle, the flip decision, the flip: section."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from indisync.config import load_config
from indisync.errors import ConfigError
from indisync.night.meridian import (SIDEREAL_RATE, FlipSettings, flip_decision, gmst_deg, hour_angle_at,
                                     hour_angle_hours, seconds_until_hour_angle)


def epoch(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_gmst_matches_meeus_examples():
    # Meeus, Astronomical Algorithms, examples 12.a and 12.b (1987 April 10).
    assert gmst_deg(epoch(1987, 4, 10, 0, 0, 0)) == pytest.approx((13 + 10 / 60 + 46.3668 / 3600) * 15, abs=0.1 / 240)
    assert gmst_deg(epoch(1987, 4, 10, 19, 21, 0)) == pytest.approx(128.7378734, abs=0.1 / 240)


def test_gmst_matches_astropy_pinned_value():
    # Time("2026-12-03T17:00:00", scale="utc").sidereal_time("mean", "greenwich") with astropy's
    # offline IERS (UT1 - UTC = -0.095 s then), computed once and pinned here.
    assert gmst_deg(epoch(2026, 12, 3, 17, 0, 0)) == pytest.approx(ASTROPY_GMST_DEG, abs=0.2 / 240)


ASTROPY_GMST_DEG = 327.53612927871905


def test_hour_angle_east_and_west_of_the_meridian():
    now = epoch(2026, 12, 3, 17, 0, 0)
    lst = (gmst_deg(now) + 11.5) % 360.0
    assert hour_angle_hours(lst, 11.5, now) == pytest.approx(0.0, abs=1e-9)
    assert hour_angle_hours((lst + 15.0) % 360, 11.5, now) == pytest.approx(-1.0, abs=1e-9)  # an hour east
    assert hour_angle_hours((lst - 30.0) % 360, 11.5, now) == pytest.approx(2.0, abs=1e-9)
    assert hour_angle_hours((lst + 180.0 - 1e-6) % 360, 11.5, now) == pytest.approx(-12.0, abs=1e-6)
    # an hour of wall clock later, the hour angle has grown by a little more than an hour
    assert hour_angle_hours(lst, 11.5, now + 3600) == pytest.approx(SIDEREAL_RATE, abs=1e-6)


def test_hour_angle_carried_on_and_time_until():
    assert hour_angle_at(-0.5, 1000.0, 1000.0 + 1800.0) == pytest.approx(-0.5 + 0.5 * SIDEREAL_RATE)
    assert hour_angle_at(11.9, 0.0, 3600.0) == pytest.approx(11.9 + SIDEREAL_RATE - 24.0)
    assert seconds_until_hour_angle(-0.1, 0.0) == pytest.approx(360.0 / SIDEREAL_RATE)
    assert seconds_until_hour_angle(0.2, 0.1) == 0.0


S = FlipSettings(after_meridian_min=5, max_wait_min=30)


@pytest.mark.parametrize("ha_min, side, frame_s, expected", [
    (-60, "west", 300, "go"),        # well east: nothing due
    (4.9, "west", 60, "go"),         # ends at 5.9 min < 35 min
    (5.0, "west", 60, "flip"),       # due
    (90, "west", 60, "flip"),        # long overdue (a restart): flip at once
    (5.0, "east", 60, "go"),         # already flipped
    (60, "east", 600, "go"),
    (3, "west", 40 * 60, "wait"),    # a 40 min frame would end at 43 min > 35: hold, then flip
    (-4.9, "west", 39 * 60, "go"),   # ends at about 34.2 min: still inside the limit
    (-5.5, "west", 41 * 60, "wait"),
    (5.0, None, 60, "flip"),         # a mount that does not say: the flip's check tells
    (-7 * 60, "west", 10 * 3600, "go"),  # more than 6 h east: no flip tonight
])
def test_flip_decision(ha_min, side, frame_s, expected):
    assert flip_decision(ha_min / 60.0, side, frame_s, S) == expected


def test_flip_decision_with_no_wait_allowed():
    s = FlipSettings(after_meridian_min=0.5, max_wait_min=0.0)
    assert flip_decision(0.0, "west", 20, s) == "go"   # ends at ~0.33 min
    assert flip_decision(0.2 / 60, "west", 30, s) == "wait"  # would end at ~0.7 min > 0.5


def test_flip_section():
    assert load_config(data={}).flip is None  # no section: no flip
    cfg = load_config(data={"flip": {"after_meridian_min": 2, "max_wait_min": 10, "recalibrate": True}})
    assert cfg.flip == FlipSettings(2.0, 10.0, True) and cfg.flip.limit_min == 12.0
    assert load_config(data={"flip": {}}).flip == FlipSettings()
    with pytest.raises(ConfigError, match="flip.after_meridian_min"):
        load_config(data={"flip": {"after_meridian_min": -1}})
    with pytest.raises(ConfigError, match="max_wait_min"):
        load_config(data={"flip": {"max_wait_min": -3}})
    with pytest.raises(ConfigError):
        load_config(data={"flip": {"after_meridian": 3}})
