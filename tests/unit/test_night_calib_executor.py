"""The night's calibration on the fake rig: the real machine, executor and actions (sky_flats,
calibrate, darks) over stand-in devices and participants (tests/fakes/rig.py), the loop on its own
thread (tests/fakes/night.py), the window and the flats intervals relative to now. The night record is a temporary
directory with no night log: the sets come from flats.always (and darks.exposures)."""

from __future__ import annotations

import dataclasses

import pytest

from indisync.config import load_config
from indisync.night import executor as executor_module
from indisync.night.actions import flats as flats_action
from indisync.night.events import FlatsDone
from indisync.night.rig import Outcome
from tests.fakes.night import NightRun
from tests.fakes.rig import fake_rig

pytestmark = pytest.mark.timeout(60)

SPOT = (120.0, 20.0)  # where the stand-in flat spot is (astropy's is tested in test_calib_sky.py)


def config(tmp_path, **extra):
    data = {"node": {"name": "master", "role": "master"},
            "storage": {"directory": str(tmp_path)},
            "site": {"latitude": 45.0, "longitude": 10.0},
            "master": {"target": {"name": "T", "ra": 90.0, "dec": 30.0}, "batches": 1,
                       "sequence": {"slots": [{"type": "light", "filter": "L", "exposure": 0.05, "repeat": 2}]},
                       "refocus": {"after_batch": False}},
            "night": {"cool": True, "park_at_end": True, "warm_at_end": True},
            "indi": {"weather": "Weather", "dome": "Dome"},
            "flats": {"sky": "both", "always": [{"filter": "L"}, {"filter": "R", "binning": 2}],
                      "offset_every_s": 0.05, "offset_arcmin": 6, "cool_timeout": 1, "timeout": 30},
            "safety": {"safe_for": 0.3, "stale_after": 30, "park_retry": 0.2, "frame_retry": 0.2, "poll": 0.02}}
    for key, value in extra.items():
        data.setdefault(key, {}).update(value)
    return load_config(data=data)


class Night(NightRun):
    """An executor on the fake rig; the window and the flats intervals are relative to now."""

    def __init__(self, monkeypatch, cfg, window=(3600.0, 7200.0), dusk=(-5.0, 3000.0), dawn=None, latency=0.0):
        self.cfg = cfg
        rig = fake_rig(cfg)
        for p in rig.parts.participants:
            p.calib_latency = latency
        super().__init__(monkeypatch, rig, window)
        now = self.now
        rel = lambda span: None if span is None else (now + span[0], now + span[1])  # noqa: E731
        monkeypatch.setattr(executor_module, "flat_intervals", lambda cfg, devices, at, s, e: (rel(dusk), rel(dawn)))
        self.spots: list = []

        def spot(site, when, altitude):
            self.spots.append(when)
            return SPOT

        monkeypatch.setattr(flats_action.sky, "flat_spot", spot)

    def stop(self):
        super().stop()
        assert self.error is None


def test_dusk_flats_open_point_at_the_flat_spot_take_every_nodes_sets_then_park_until_dark(monkeypatch, tmp_path):
    night = Night(monkeypatch, config(tmp_path), latency=0.4).start()
    mount, dome, log = night.rig.parts.mount, night.rig.parts.dome, night.rig.parts.log
    night.wait(lambda: night.state == "dusk_flats", what="dusk flats")
    night.wait(lambda: night.state == "waiting_dark" and "dusk_flats" in night.states(), what="flats done")
    assert night.states()[:5] == ["securing", "waiting_dark", "dusk_flats", "securing", "waiting_dark"]
    for p in night.rig.parts.participants:
        [(args, timeout)] = p.flats_calls
        assert args.mode == "sky" and args.direction == "dusk" and args.timeout == 30
        assert [(s["filter"], s["binning"]) for s in args.sets] == [("L", 1), ("R", 2)]
        assert p.cools >= 1  # cooled (bounded by flats.cool_timeout) while the mount slewed
    assert "dusk flats done: 12 frame(s) kept" in night.executor.timeline[3]["reason"]
    # the mount went to the flat spot, tracking off, then every offset_every_s alternately north and south
    assert mount.slews[0] == SPOT and len(mount.slews) >= 4
    decs = [round((dec - SPOT[1]) * 60) for _, dec in mount.slews[1:]]
    assert decs[:3] == [6, -6, 6]
    moves = [e for _, who, e in log if who == "mount" and e in ("slewed", "tracking_off")]
    assert moves[:4] == ["slewed", "tracking_off", "slewed", "tracking_off"]
    assert mount.parked and dome.shutter_open is False  # parked and closed until dark
    assert mount.conflicts == []
    night.stop()


def test_nothing_needed_answers_at_once_without_moving_the_mount(monkeypatch, tmp_path):
    night = Night(monkeypatch, config(tmp_path, flats={"always": []})).start()
    night.wait(lambda: "dusk_flats" in night.states() and night.state == "waiting_dark", what="dusk flats over")
    assert "no flats needed" in night.executor.timeline[3]["reason"]
    moved_after_park = [e for _, who, e in night.rig.parts.log if e in ("unparked", "slew_start")]
    assert moved_after_park == [] and all(p.flats_calls == [] for p in night.rig.parts.participants)
    night.stop()


def test_rain_in_dusk_flats_aborts_every_node_parks_and_takes_darks_with_the_dome_closed(monkeypatch, tmp_path):
    cfg = config(tmp_path, darks={"enabled": True, "when": ["rain"], "exposures": [30.0]})
    night = Night(monkeypatch, cfg, latency=5.0).start()
    parts = night.rig.parts
    night.wait(lambda: all(p.calib_running for p in parts.participants), what="every node taking flats")
    parts.weather.set("alert")
    night.wait(lambda: parts.mount.parked and parts.dome.shutter_open is False, what="parked and closed")
    night.wait(lambda: all(p.calib_stopped == 1 for p in parts.participants), timeout=3, what="flats aborted")
    night.wait(lambda: night.state == "parked", what="parked")
    night.wait(lambda: all(p.darks_calls for p in parts.participants), what="darks")
    for p in parts.participants:
        args, _ = p.darks_calls[0]
        assert args.covered and [(s["kind"], s["exposure"]) for s in args.sets] == [("dark", 30.0), ("bias", 0.0)]
    assert parts.mount.conflicts == [] and night.rig.arbiter.preempted[:1] in ([], ["dusk flats: offset"],
                                                                           ["dusk flats: point at the flat spot"])
    # safe again inside the interval: once safe_for has passed, the darks are cancelled and the flats go on
    parts.weather.set("ok")
    night.wait(lambda: night.states().count("dusk_flats") == 2, what="back to the dusk flats")
    night.wait(lambda: all(p.calib_stopped == 2 for p in parts.participants), timeout=3, what="darks aborted")
    assert "back to the dusk flats" in night.executor.timeline[-1]["reason"]
    night.stop()


def test_the_dusk_interval_ending_cancels_the_flats_and_parks(monkeypatch, tmp_path):
    build = executor_module.build_plan
    monkeypatch.setattr(executor_module, "build_plan",
                        lambda *a, **k: dataclasses.replace(build(*a, **k), flats_overrun=0.2))
    night = Night(monkeypatch, config(tmp_path), dusk=(-5.0, 1.0), latency=30.0).start()
    parts = night.rig.parts
    night.wait(lambda: night.state == "dusk_flats", what="dusk flats")
    night.wait(lambda: night.state in ("securing", "waiting_dark") and night.states().count("securing") == 2,
               what="left at the interval's end + flats_overrun")
    night.wait(lambda: all(p.calib_stopped == 1 for p in parts.participants), timeout=3, what="flats aborted")
    night.wait(lambda: parts.mount.parked and parts.dome.shutter_open is False, what="parked")
    assert "dusk flats stopped: their interval ended at" in night.executor.timeline[3]["reason"]
    night.stop()


def test_a_night_over_goes_to_the_dawn_flats_then_calibrates_and_ends(monkeypatch, tmp_path):
    cfg = config(tmp_path, flats={"panel": True}, darks={"enabled": True, "when": ["end"], "exposures": [60.0]})
    night = Night(monkeypatch, cfg, window=(-100.0, -10.0), dusk=None, dawn=(0.3, 3600.0)).start()
    parts = night.rig.parts
    night.wait(lambda: night.state == "done", timeout=20, what="the night done")
    assert night.states() == ["parking", "waiting_dawn", "dawn_flats", "parking", "calibrating", "warming", "done"]
    for p in parts.participants:
        modes = [(a.mode, a.direction) for a, _ in p.flats_calls]
        assert modes == [("sky", "dawn"), ("panel", None)]
        assert [(s["kind"], s["exposure"]) for s in p.darks_calls[0][0].sets] == [("dark", 60.0), ("bias", 0.0)]
        assert p.darks_calls[0][0].covered  # the dome read closed
    calibrated = night.executor.timeline[-2]["reason"]
    assert calibrated.startswith("calibrated: ") and "panel flats on master, slave1" in calibrated
    assert parts.mount.parked and parts.dome.shutter_open is False
    night.thread.join(5)
    assert night.error is None


def test_flats_failing_on_every_node_are_said_and_the_night_goes_on(monkeypatch, tmp_path):
    night = Night(monkeypatch, config(tmp_path))
    for p in night.rig.parts.participants:
        p.flats_answer = lambda args: Outcome(False, reason="no answer within 90 s", answered=False)
    night.start()
    night.wait(lambda: "dusk_flats" in night.states() and night.state == "waiting_dark", what="dusk flats over")
    reason = night.executor.timeline[3]["reason"]
    assert reason.startswith("dusk flats failed (master: failed (no answer within 90 s); slave1: failed")
    night.stop()


def test_summarise_counts_frames_over_nodes_and_names_the_failed_sets():
    done = flats_action.summarise("dusk", {
        "master": Outcome(True, {"status": "partial", "sets": [
            {"filter": "L", "binning": 1, "status": "ok", "kept": 20, "taken": 24},
            {"filter": "Ha", "binning": 1, "status": "failed", "kept": 0, "taken": 3,
             "reason": "needs 45 s > flats.max_exposure 30 s"}]}),
        "slave1": Outcome(False, reason="no flats answer within 3720 s", answered=False)})
    assert isinstance(done, FlatsDone) and done.ok and (done.kept, done.taken) == (20, 27)
    assert done.reason == ("master: partial, 20 kept in 2 set(s); Ha bin1: needs 45 s > flats.max_exposure 30 s; "
                           "slave1: failed (no flats answer within 3720 s)")
