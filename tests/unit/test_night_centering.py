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
    assert entry["offset_north_arcmin"] == pytest.approx(1.5, abs=0.01)
    assert entry["offset_east_arcmin"] == pytest.approx(0.1, abs=0.01)
    assert 80 < entry["overlap_pct"] < 100 and not entry["low_overlap"] and entry["parity_matches"]
    # what the master publishes passes the wire schemas (state field and event)
    messages.make("coalignment", "master", {"ota": "slave1", **entry})
    state = {"role": "master", "phase": "idle", "version": "0",
             "coalign": {"slave1": entry, "slave2": failed_entry("x")}}
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


def test_night_center_is_a_config_key_and_the_centering_deadline_covers_every_attempt():
    from indisync.config import load_config
    from indisync.night.actions.center import centering_timeout, coalign_wait

    cfg = load_config(data={"night": {"center": True}, "acquire": {"attempts": 3, "on_failure": "stop"}})
    assert cfg.night.center is True and cfg.acquire.on_failure == "stop"
    assert load_config(data={"night": {}}).night.center is False
    a = cfg.acquire
    one = a.slew_timeout + a.settle + a.exposure + a.solve_timeout
    assert centering_timeout(a) > 3 * one + coalign_wait(a) > NightPlan().timeouts["centering"]


class FakeLink:
    """Records what the master would publish, each checked against the wire schemas."""

    def __init__(self):
        self.events, self.errors, self.state = [], [], {"role": "master", "phase": "idle", "version": "0"}

    def event(self, type, **payload):
        self.events.append(messages.make(type, "master", payload).payload | {"type": type})

    def update_state(self, **fields):
        self.state = messages.make("state", "master", {**self.state, **fields}).payload

    def error(self, message, topic=None, about=None):
        self.errors.append(message)


def test_coalign_rig_reports_every_slave_solved_failed_silent_or_off():
    from types import SimpleNamespace

    from indisync.acquire.centering import CenterAttempt
    from indisync.acquire.settings import AcquireSettings
    from indisync.night.actions import center as night_center
    from indisync.night.rig import Outcome

    def report(ra, dec, rotation):
        return {"ra": ra, "dec": dec, "rotation_deg": rotation, "scale_arcsec": 1.19, "parity": 1,
                "field_w_arcmin": 25.4, "field_h_arcmin": 20.3, "offset_arcsec": None, "offset_east_arcsec": None,
                "offset_north_arcsec": None, "offset_from": None, "reference_ra": None, "reference_dec": None,
                "scale_hint_arcsec": 1.19, "scale_source": "x", "stars": 300, "index": "i", "seconds": 2.0}

    sent = {}
    answers = {
        "slave1": Outcome(True, report(150.0, 45.0, 93.0)),
        "slave2": Outcome(False, reason="only 0 star(s) found"),
        "slave3": Outcome(False, reason="no solve answer", answered=False),
        "slave4": Outcome(True, report(150.0, 45.2, 90.0)),  # 12' north: low overlap
    }

    class Slave:
        local = False

        def __init__(self, name):
            self.name = name

        def solve(self, hint, timeout):
            sent.update(args=hint, timeout=timeout)
            return answers[self.name]

    class Own:
        local, name = True, "master"

    link = FakeLink()
    rig = SimpleNamespace(report=link, participants=lambda: [Own()] + [Slave(n) for n in sorted(answers)])
    last = CenterAttempt(2, 150.0, 45.0, solved_ra=150.0, solved_dec=45.0, rotation_deg=90.0,
                         field_w_arcmin=25.4, field_h_arcmin=20.3, parity=1)
    settings = AcquireSettings()
    entries = night_center.coalign_rig(rig, last, settings)
    assert sent["args"] == {"ra": 150.0, "dec": 45.0}
    assert sent["timeout"] == night_center.coalign_wait(settings)
    assert entries["slave1"]["rotation_diff_deg"] == pytest.approx(3.0) and entries["slave1"]["overlap_pct"] > 90
    assert entries["slave2"] == failed_entry("its solve failed: only 0 star(s) found")
    assert entries["slave3"]["status"] == "failed" and "no solve answer within" in entries["slave3"]["reason"]
    assert entries["slave4"]["low_overlap"]
    assert link.state["coalign"] == entries
    assert [e["ota"] for e in link.events if e["type"] == "coalignment"] == ["slave1", "slave2", "slave4", "slave3"]
    assert len(link.errors) == 1 and "slave4" in link.errors[0] and "min_overlap_pct" in link.errors[0]


def test_centering_is_cancelled_when_the_night_leaves_centering(monkeypatch):
    import threading
    import time
    from types import SimpleNamespace

    from indisync.acquire import centering
    from indisync.acquire.settings import AcquireSettings
    from indisync.night.actions import center as night_center
    from indisync.night.arbiter import MotionArbiter
    from indisync.night.events import Centered
    from indisync.night.token import Token

    seen = {}

    def fake_center(mount, camera, target, settings, on_attempt=None, cancel=None):
        on_attempt(centering.CenterAttempt(1, target.ra, target.dec, offset_arcsec=50.0, offset_east_arcsec=30.0,
                                           offset_north_arcsec=40.0, rotation_deg=90.0, solve_seconds=2.0))
        seen["cancelled"] = cancel.wait(5.0)
        result = centering.CenterResult(target, centered=False, reason="cancelled")
        result.attempts.append(centering.CenterAttempt(1, target.ra, target.dec))
        return result

    monkeypatch.setattr(centering, "center", fake_center)
    link = FakeLink()
    devices = SimpleNamespace(mount=object(), camera=object())
    cfg = SimpleNamespace(acquire=AcquireSettings(),
                          master=SimpleNamespace(target="M31", target_coords=SimpleNamespace(ra=10.68, dec=41.27)))
    rig = SimpleNamespace(report=link, stop_event=threading.Event(), device_lock=threading.Lock(),
                          devices=lambda: devices, cfg=cfg, arbiter=MotionArbiter())
    token = Token(3, "centering")
    ctx = SimpleNamespace(rig=rig, plan=dataclasses.replace(PLAN), token=token)
    threading.Timer(0.3, lambda: token.cancel("rain")).start()  # the night left centering
    t0 = time.monotonic()
    answer = night_center.center(ctx)
    assert seen["cancelled"] and time.monotonic() - t0 < 2.0
    assert answer == Centered(ok=False, reason="cancelled: the night left centering", error_arcsec=None, attempts=1)
    assert [e["type"] for e in link.events] == ["center_attempt", "center_done"]
    assert link.events[0]["offset_arcsec"] == 50.0 and link.errors == []  # cancelled is not a failure to shout
    assert not rig.device_lock.locked() and rig.arbiter.holder is None
    # night.center off: the old pass-through, no device touched
    ctx.plan = dataclasses.replace(PLAN, center=False)
    assert night_center.center(ctx).ok is True


def test_the_night_report_lists_centrings_and_coalignment(tmp_path):
    import json as _json

    from indisync.record.report import build, render_html

    entry = coalign_entry(coalignment(MASTER, FieldSolution(150.0, 45.0, 93.0, 25.4, 20.3), 80.0))
    lines = [
        {"rx": "2026-12-03T22:10:00.000Z", "node": "master", "kind": "event", "type": "center_done",
         "ts": "2026-12-03T22:10:00.000Z", "payload": {"ok": True, "attempts": 2, "error_arcsec": 0.9,
                                                      "seconds": 30.0, "reason": None}},
        {"rx": "2026-12-03T22:10:20.000Z", "node": "master", "kind": "event", "type": "coalignment",
         "ts": "2026-12-03T22:10:20.000Z", "payload": {"ota": "slave1", **entry}},
    ]
    log = tmp_path / "2026-12-03.jsonl"
    log.write_text("".join(_json.dumps(x) + "\n" for x in lines))
    data = build(log)
    assert data["centering"][0]["error_arcsec"] == 0.9 and data["coalignment"][0]["ota"] == "slave1"
    page = render_html(data, {})
    assert "OTA co-alignment" in page and "<td>3.0</td>" in page and "<h2>Centring</h2>" in page
