"""Centring inside the night (issue 11, item 2): what the machine does with Ev.CENTERED, and the
co-alignment records the master publishes and `indisync status` prints (item 3). No servers."""

import dataclasses
import math

import pytest

from indisync.acquire.coalign import (Coalignment, FieldSolution, coalign_entry, coalignment, describe_entry,
                                      failed_entry, low_overlap_warning)
from indisync.commands.status import acquire_lines, render_table
from indisync.night.machine import Ev, NightPlan, State, start, step
from indisync.protocol import messages

PLAN = NightPlan(slew=True, guide=True, park_at_end=True, center=True)


def centring(plan, **data):
    """A night at the start of centering (dark at once), then Ev.CENTERED with ``data``."""
    snap, _ = start(0.0, plan, None, None, next_duration=10.0)
    snap, _ = step(snap, Ev.SLEWED, 1.0, plan)
    assert snap.state == State.CENTERING.value
    return step(snap, Ev.CENTERED, 2.0, plan, data)


def test_centred_goes_on_to_the_guider_and_says_how_well():
    snap, actions = centring(PLAN, ok=True, error_arcsec=3.24, attempts=2)
    assert snap.state == State.STARTING_GUIDER.value and [a.kind for a in actions] == ["start_guider"]
    assert snap.reason == 'centred: 3.2" from the target in 2 attempt(s)' and snap.warnings == []


def test_without_acquisition_centring_passes_at_once():
    snap, _ = centring(dataclasses.replace(PLAN, center=False), ok=True, reason="no acquisition configured")
    assert snap.state == State.STARTING_GUIDER.value and "no acquisition configured" in snap.reason


def test_a_failed_centring_with_on_failure_continue_images_off_centre_with_a_warning():
    snap, actions = centring(PLAN, ok=False, reason='still 40.0" from the target', error_arcsec=40.0, attempts=4)
    assert snap.state == State.STARTING_GUIDER.value and [a.kind for a in actions] == ["start_guider"]
    assert "centring failed in 4 attempt(s)" in snap.reason and "acquire.on_failure: continue" in snap.reason
    assert any("still 40.0" in w for w in snap.warnings)


def test_a_failed_centring_with_on_failure_stop_parks_and_says_why():
    plan = dataclasses.replace(PLAN, center_on_failure="stop")
    snap, actions = centring(plan, ok=False, reason="no astrometry.net index files in /x", attempts=1)
    assert snap.state == State.PARKING.value and [a.kind for a in actions] == ["stop_guider", "park"]
    assert snap.reason == ("centring failed in 1 attempt(s): no astrometry.net index files in /x; "
                           "parking (acquire.on_failure: stop)")


def test_a_centring_that_raised_answers_without_attempts_and_still_decides():
    plan = dataclasses.replace(PLAN, center_on_failure="stop")
    snap, _ = centring(plan, ok=False, reason="center: Telescope Simulator did not reach the target")
    assert snap.state == State.PARKING.value and "did not reach" in snap.reason


def test_rain_during_centring_wins_over_its_late_answer():
    plan = dataclasses.replace(PLAN, weather=True, stale_after=30)
    snap, _ = start(0.0, plan, None, None, next_duration=10.0)
    snap, _ = step(snap, Ev.WEATHER, 0.5, plan, {"status": "ok"})
    snap, _ = step(snap, Ev.SLEWED, 1.0, plan)
    snap, actions = step(snap, Ev.WEATHER, 2.0, plan, {"status": "alert"})
    assert snap.state == State.UNSAFE.value and "park" in [a.kind for a in actions]
    snap, actions = step(snap, Ev.CENTERED, 3.0, plan, {"ok": False, "reason": "cancelled"})
    assert snap.state == State.UNSAFE.value and actions == []


def test_failed_centrings_over_a_long_night_keep_at_most_twenty_warnings():
    snap, _ = start(0.0, PLAN, None, None, next_duration=10.0)
    for i in range(30):
        snap = dataclasses.replace(snap, state=State.CENTERING.value)
        snap, _ = step(snap, Ev.CENTERED, 1.0 + i, PLAN, {"ok": False, "reason": f"try {i}"})
    assert len(snap.warnings) == 20 and "try 29" in snap.warnings[-1]


# ---- co-alignment records --------------------------------------------------------------------
MASTER = FieldSolution(150.0, 45.0, 90.0, 25.4, 20.3)


def test_an_otas_entry_is_rounded_schema_valid_and_reads_as_one_line():
    ota = FieldSolution(150.0 + 0.1 / 60 / math.cos(math.radians(45)), 45.0 + 1.5 / 60, 93.0, 25.4, 20.3)
    entry = coalign_entry(coalignment(MASTER, ota, 80.0))
    assert entry["status"] == "ok" and entry["rotation_diff_deg"] == pytest.approx(3.0, abs=1e-3)
    assert entry["offset_north_arcmin"] == pytest.approx(1.5, abs=0.01) and entry["offset_east_arcmin"] == pytest.approx(0.1, abs=0.01)
    assert 80 < entry["overlap_pct"] < 100 and not entry["low_overlap"] and entry["parity_matches"]
    # what the master publishes passes the wire schemas (state field and event)
    messages.make("coalignment", "master", {"ota": "slave1", **entry})
    state = {"role": "master", "phase": "idle", "version": "0", "coalign": {"slave1": entry, "slave2": failed_entry("x")}}
    assert messages.make("state", "master", state).payload["coalign"]["slave1"] == entry
    line = describe_entry("slave1", entry)
    assert line.startswith("slave1: 1.50' from the master's centre (E +0.10', N +1.50'), rotated +3.00°, overlap")
    assert low_overlap_warning("slave1", entry, 80.0) is None


def test_a_low_overlap_warns_naming_the_ota_and_the_setting():
    ota = FieldSolution(150.0, 45.0 + 12.0 / 60, 90.0, 25.4, 20.3)  # 12' north: about 40 % of the field
    entry = coalign_entry(coalignment(MASTER, ota, 80.0))
    assert entry["low_overlap"] and entry["overlap_pct"] < 80
    warning = low_overlap_warning("slave2", entry, 80.0)
    assert "slave2" in warning and "acquire.min_overlap_pct 80" in warning and "+12.00' north" in warning
    assert describe_entry("slave2", entry).endswith("LOW")


def test_fields_far_apart_or_a_failed_solve_are_reported_not_crashed_on():
    far = Coalignment(math.inf, math.nan, math.nan, 10.0, 0.0, True, True)
    entry = coalign_entry(far)
    assert entry["status"] == "failed" and "90 degrees" in entry["reason"]
    messages.make("coalignment", "master", {"ota": "slave1", **entry})  # no NaN on the wire
    assert describe_entry("slave3", failed_entry("its solve failed: only 0 star(s)")) == \
        "slave3: not co-aligned: its solve failed: only 0 star(s)"


def test_status_prints_the_centring_and_a_line_per_ota():
    entry = coalign_entry(coalignment(MASTER, FieldSolution(150.0, 45.0, 93.0, 25.4, 20.3), 80.0))
    row = {"name": "master", "centering": {"ok": True, "error_arcsec": 2.5, "attempts": 2,
                                           "at": "2026-12-03T22:10:04.000Z", "reason": None},
           "coalign": {"slave2": failed_entry("no solve answer within 130 s"), "slave1": entry}}
    lines = acquire_lines(row)
    assert lines[0] == 'centred (master): 2.5" from the target in 2 attempt(s) at 22:10:04 UTC'
    assert lines[1].startswith("co-alignment (master) slave1: 0.00' from the master's centre") and "+3.00°" in lines[1]
    assert lines[2] == "co-alignment (master) slave2: not co-aligned: no solve answer within 130 s"
    failed = acquire_lines({"name": "master", "centering": {"ok": False, "attempts": 1, "reason": "no index"}})
    assert failed == ["centring FAILED (master): no index"]


def test_the_status_table_carries_the_acquire_lines():
    from indisync.commands.status import _COLUMNS

    row = {k: None for k in ("role", "phase", "filter", "exposure", "hfr", "focuser_position", "frames",
                             "seconds_since_heartbeat", "night", "work", "temperature", "cooling")}
    row.update(name="master", online=True, coalign={"slave1": failed_entry("x")})
    assert "co-alignment (master) slave1: not co-aligned: x" in render_table([row])
    assert _COLUMNS[0] == "NODE"
