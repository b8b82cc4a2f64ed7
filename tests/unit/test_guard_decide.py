"""The guard's decision (indisync.guard.decide) over scripted readings and a scripted clock: when it
acts (unsafe weather, stale weather, the weather device gone, the sun up, a dead master after the
window, each with the rig out past the grace), when it waits (the master's own park comes first),
and that it never asks for anything but a safe rig."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from indisync.guard.decide import (DomeReading, Limits, Memory, MountReading, Reading, WeatherReading, decide,
                                   end_at_passed, rig_safe)

LIMITS = Limits(grace=60.0, stale_after=180.0, sun_limit_deg=-12.0, window_end_sun_deg=-12.0)
DRY = WeatherReading("ok", 1.0)
RAIN = WeatherReading("alert", 1.0, "WEATHER_STATUS Alert: WEATHER_RAIN_HOUR")
OUT = MountReading(False)
PARKED = MountReading(True)
OPEN = DomeReading(False)
CLOSED = DomeReading(True)


def reading(t, weather=DRY, mount=OUT, dome=OPEN, sun=-30.0, master=True, **extra) -> Reading:
    return Reading(now=t, weather=weather, mount=mount, dome=dome, sun_alt_deg=sun, master_online=master, **extra)


def run(script, limits=LIMITS):
    """Feed (reading) in order; return the decisions."""
    memory, out = Memory(), []
    for r in script:
        d = decide(r, limits, memory)
        memory = d.memory
        out.append(d)
    return out


def test_a_dry_night_with_the_rig_out_is_left_alone():
    decisions = run([reading(t) for t in range(0, 600, 10)])
    assert all(d.state == "armed" and not d.act and not d.unsafe for d in decisions)
    assert decisions[-1].rig_safe is False


def test_rain_with_the_mount_out_acts_only_after_the_grace():
    decisions = run([reading(t, weather=RAIN) for t in (0, 30, 59, 60, 61)])
    assert [d.act for d in decisions] == [False, False, False, True, True]
    assert [d.started for d in decisions] == [False, False, False, True, False]
    assert decisions[3].state == "acting"
    assert "WEATHER_RAIN_HOUR" in decisions[3].reason and "the mount unparked" in decisions[3].reason
    assert "for 60 s" in decisions[3].reason


def test_the_master_parking_within_the_grace_means_the_guard_does_nothing():
    script = [reading(0, weather=RAIN), reading(20, weather=RAIN, mount=MountReading(False, parking=True)),
              reading(40, weather=RAIN, mount=PARKED, dome=DomeReading(False, closing=True)),
              reading(50, weather=RAIN, mount=PARKED, dome=CLOSED)]
    script += [reading(t, weather=RAIN, mount=PARKED, dome=CLOSED) for t in range(60, 1000, 10)]
    decisions = run(script)
    assert not any(d.act for d in decisions)
    assert decisions[-1].state == "armed" and decisions[-1].rig_safe is True and decisions[-1].unsafe


def test_the_grace_restarts_when_the_rig_was_safe_in_between():
    script = [reading(0, weather=RAIN), reading(50, weather=RAIN, mount=PARKED, dome=CLOSED),
              reading(55, weather=RAIN), reading(100, weather=RAIN), reading(115, weather=RAIN)]
    assert [d.act for d in run(script)] == [False, False, False, False, True]


def test_stale_weather_counts_as_unsafe():
    stale = WeatherReading("ok", 181.0)
    decisions = run([reading(0, weather=stale), reading(61, weather=stale)])
    assert decisions[-1].act
    assert "no weather data for 181 s (safety.stale_after 180 s)" in decisions[-1].reason


def test_a_weather_device_that_is_gone_counts_as_unsafe():
    gone = WeatherReading(None, None, "no WEATHER_STATUS from 'Weather Simulator' (driver stopped?)")
    decisions = run([reading(0, weather=gone), reading(60, weather=gone)])
    assert decisions[-1].act and "the weather device is gone" in decisions[-1].reason


def test_a_warning_light_is_not_unsafe():
    busy = WeatherReading("busy", 1.0)
    assert not any(d.act or d.unsafe for d in run([reading(t, weather=busy) for t in range(0, 300, 30)]))


def test_no_weather_device_configured_means_no_weather_rule():
    assert not any(d.unsafe for d in run([reading(t, weather=None) for t in range(0, 300, 30)]))


def test_the_sun_above_the_limit_with_the_dome_open_acts():
    decisions = run([reading(0, mount=PARKED, sun=-5.0), reading(61, mount=PARKED, sun=-4.9)])
    assert decisions[-1].act
    assert "the sun at -4.9° (above -12°)" in decisions[-1].reason and "the dome open" in decisions[-1].reason


def test_an_unknown_sun_is_no_reason():
    assert not any(d.act for d in run([reading(t, sun=None) for t in range(0, 300, 30)]))


def test_a_dead_master_in_the_window_is_left_alone_but_after_it_acts():
    in_window = run([reading(t, master=False, sun=-30.0) for t in range(0, 300, 30)])
    assert not any(d.act for d in in_window)
    past_end = run([reading(0, master=False, end_at_passed=True), reading(61, master=False, end_at_passed=True)])
    assert past_end[-1].act and "night.end_at passed" in past_end[-1].reason


def test_a_dead_master_with_the_sun_past_the_window_end_but_below_the_sun_limit_acts():
    limits = Limits(grace=60.0, stale_after=180.0, sun_limit_deg=-6.0, window_end_sun_deg=-12.0)
    alive = run([reading(0, sun=-9.0), reading(61, sun=-9.0)], limits)
    assert not alive[-1].act  # a live master owns the twilight between its end and the sun limit
    dead = run([Reading(now=0, weather=DRY, mount=OUT, dome=OPEN, sun_alt_deg=-9.0, master_online=False, master="ota1"),
                Reading(now=61, weather=DRY, mount=OUT, dome=OPEN, sun_alt_deg=-9.0, master_online=False,
                        master="ota1")], limits)
    assert dead[-1].act
    assert "the master ota1 is gone" in dead[-1].reason and "end altitude -12°" in dead[-1].reason


def test_a_master_not_known_yet_is_not_a_dead_one():
    assert not any(d.act for d in run([reading(t, master=None, end_at_passed=True) for t in range(0, 300, 30)]))


def test_acting_goes_on_until_the_rig_reads_safe_then_acted_until_the_conditions_clear():
    script = [reading(0, weather=RAIN), reading(60, weather=RAIN),
              reading(70, weather=RAIN, mount=MountReading(False, parking=True)),
              reading(80, weather=RAIN, mount=PARKED, dome=DomeReading(False, closing=True)),
              reading(90, weather=RAIN, mount=PARKED, dome=CLOSED),
              reading(600, weather=RAIN, mount=PARKED, dome=CLOSED),
              reading(900, weather=DRY, mount=PARKED, dome=CLOSED)]
    states = [d.state for d in run(script)]
    assert states == ["armed", "acting", "acting", "acting", "acted", "acted", "armed"]


def test_acting_stops_when_the_conditions_clear_before_the_rig_is_safe():
    decisions = run([reading(0, weather=RAIN), reading(60, weather=RAIN), reading(70, weather=DRY)])
    assert decisions[1].act and not decisions[2].act and decisions[2].state == "armed"


def test_an_unknown_mount_counts_as_out():
    unknown = MountReading(None)
    decisions = run([reading(0, weather=RAIN, mount=unknown, dome=CLOSED),
                     reading(60, weather=RAIN, mount=unknown, dome=CLOSED)])
    assert decisions[-1].act and "the mount's park unknown" in decisions[-1].reason
    assert decisions[-1].rig_safe is None


def test_blind_is_shown_when_nothing_else_is_going_on():
    d = decide(reading(0, blind="no connection to indiserver at localhost:7624"), LIMITS)
    assert d.state == "blind" and "no connection" in d.reason


def test_no_mount_and_no_dome_is_a_safe_rig_that_is_never_acted_on():
    decisions = run([reading(t, weather=RAIN, mount=None, dome=None) for t in range(0, 300, 30)])
    assert decisions[-1].rig_safe is True and not any(d.act for d in decisions)


@pytest.mark.parametrize("mount,dome,expected", [
    (PARKED, CLOSED, True), (OUT, CLOSED, False), (PARKED, OPEN, False), (MountReading(None), CLOSED, None),
    (MountReading(True, parking=True), CLOSED, False), (PARKED, DomeReading(None), None), (None, None, True),
])
def test_rig_safe(mount, dome, expected):
    assert rig_safe(Reading(now=0, mount=mount, dome=dome)) is expected


def test_every_decision_asks_only_for_a_safe_rig():
    """The decision's vocabulary has no way to say unpark or open: act means make it safe."""
    fields = set(decide(reading(0), LIMITS).__dataclass_fields__)
    assert fields == {"state", "reason", "unsafe", "conditions", "out", "rig_safe", "act", "started", "memory"}


# ---- night.end_at ----------------------------------------------------------------------------------
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("end_at,now,expected", [
    ("05:30", "2026-12-05T04:00:00", False),  # 05:00 in Berlin
    ("05:30", "2026-12-05T04:31:00", True),  # 05:31
    ("05:30", "2026-12-05T10:59:00", True),  # 11:59
    ("05:30", "2026-12-05T11:01:00", False),  # 12:01: the next night's window
    ("05:30", "2026-12-05T22:00:00", False),  # 23:00
    ("23:00", "2026-12-05T21:59:00", False),  # 22:59
    ("23:00", "2026-12-05T22:01:00", True),  # 23:01
    ("23:00", "2026-12-06T02:00:00", True),  # 03:00 the next day
    ("23:00", "2026-12-06T11:30:00", False),  # 12:30
    ("2026-12-06T05:00:00Z", "2026-12-06T04:59:59", False),
    ("2026-12-06T05:00:00Z", "2026-12-06T05:00:00", True),
    ("2026-12-06T05:00:00", "2026-12-06T05:00:01", True),  # naive: UTC
    (None, "2026-12-06T05:00:00", False),
])
def test_end_at_passed(end_at, now, expected):
    assert end_at_passed(end_at, at(now), BERLIN) is expected


def test_end_at_passed_follows_the_site_zone_across_a_change_of_the_clocks():
    # 2026-03-29: Berlin goes from UTC+1 to UTC+2 at 01:00 UTC. 05:30 local is 03:30 UTC that morning.
    assert not end_at_passed("05:30", at("2026-03-29T03:29:00"), BERLIN)
    assert end_at_passed("05:30", at("2026-03-29T03:31:00"), BERLIN)
