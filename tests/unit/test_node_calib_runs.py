"""Calibration on every node from the master (indisync.calib.runs, the master's `calibrate`, the
participants' flats/darks): the sets come from the night log, each node gets its own; every node
without a panel is a clear failure; a night with the mount out refuses; a cancelled local run stops."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from indisync.calib.runs import NO_PANEL, calibrate_rig, darks_all, panel_flats_all, refusal, summary
from indisync.config import load_config
from indisync.contracts import CalibrateArgs, DarksArgs, FlatsArgs
from indisync.errors import IndisyncError
from indisync.night.rig import Outcome
from indisync.record.nightlog import NightLogWriter
from tests.unit.test_node_calib import FakeCamera, FakeDevices, FakeWheel, files_in, make_node


def light(node, filter_name, duration, binning=1, gain=None, set_temperature=None, frame_type="light"):
    now = datetime.now(timezone.utc)
    payload = {"exposure_id": "1", "status": "ok", "filter": filter_name, "duration": duration, "binning": binning,
               "frame_type": frame_type, "start": now.isoformat().replace("+00:00", "Z")}
    if gain is not None:
        payload["gain"] = gain
    if set_temperature is not None:
        payload["set_temperature"] = set_temperature
    return {"rx": now.isoformat(), "node": node, "kind": "event", "type": "exposure_done", "ts": now.isoformat(),
            "payload": payload}


@pytest.fixture
def cfg(tmp_path):
    cfg = load_config(data={"node": {"name": "master", "role": "master"},
                            "storage": {"directory": str(tmp_path / "store")},
                            "flats": {"always": [{"filter": "L", "binning": 2, "node": "ota2"}]},
                            "darks": {"exposures": [60], "bias": True}})
    writer = NightLogWriter(tmp_path / "store" / "nights", fsync=False)
    for entry in (light("master", "R", 300, set_temperature=-10.0), light("master", "R", 300),
                  light("ota2", "Ha", 600, binning=2, gain=100), light("ota2", None, 5, frame_type="dark")):
        writer.append(entry)
    writer.close()
    return cfg


class Recorder:
    """A participant that records what it was asked and answers as told."""

    def __init__(self, name, answer):
        self.name, self.local, self.answer, self.asked = name, False, answer, []

    def flats(self, args, timeout, cancel=None):
        self.asked.append(args)
        return self.answer(args)

    def darks(self, args, timeout, cancel=None):
        self.asked.append(args)
        return self.answer(args)


def ok(status):
    return lambda args: Outcome(True, {"status": status, "sets": []})


def test_panel_flats_send_each_node_the_sets_its_lights_used(cfg):
    nodes = [Recorder("master", ok("ok")), Recorder("ota2", ok("ok")), Recorder("ota3", ok("nothing"))]
    outcomes = panel_flats_all(nodes, cfg, time.time())
    assert set(outcomes) == {"master", "ota2", "ota3"}
    sent = {p.name: p.asked[0] for p in nodes}
    assert all(isinstance(a, FlatsArgs) and a.mode == "panel" and a.timeout == cfg.flats.timeout
               for a in sent.values())
    assert [(s["filter"], s["binning"]) for s in sent["master"].sets] == [("R", 1)]
    assert [(s["filter"], s["binning"], s["gain"]) for s in sent["ota2"].sets] == [("Ha", 2, 100.0), ("L", 2, None)]
    assert sent["ota3"].sets == ()  # asked all the same: it may have no panel, and says so


def test_darks_send_the_nights_exposures_and_setpoint_plus_the_extras(cfg):
    nodes = [Recorder("master", ok("ok")), Recorder("ota2", ok("ok")), Recorder("ota3", ok("ok"))]
    darks_all(nodes, cfg, covered=True, extra=[30])
    sent = {p.name: p.asked[0] for p in nodes}
    assert all(isinstance(a, DarksArgs) and a.covered for a in sent.values())
    assert [(s["kind"], s["exposure"]) for s in sent["master"].sets] == [("dark", 300), ("dark", 30), ("dark", 60),
                                                                         ("bias", 0)]
    assert sent["master"].setpoint == -10.0 and sent["ota2"].setpoint is None
    assert {(s["kind"], s["exposure"], s["binning"], s["gain"]) for s in sent["ota2"].sets} == {
        ("dark", 600, 2, 100.0), ("dark", 30, 2, 100.0), ("dark", 60, 2, 100.0), ("bias", 0, 2, 100.0)}
    # a node without lights in the record: the extra exposures at binning 1, and a bias
    assert [(s["kind"], s["exposure"]) for s in sent["ota3"].sets] == [("dark", 30), ("dark", 60), ("bias", 0)]


def test_no_panel_anywhere_is_a_clear_failure_else_the_reason_names_who_was_served():
    none = {"master": Outcome(True, {"status": "no_panel", "reason": "x"}),
            "ota2": Outcome(True, {"status": "no_panel", "reason": "y"})}
    status, reason = summary("panel", none)
    assert status == "failed" and reason == NO_PANEL.format(nodes="master, ota2")
    assert "indi.light_panel" in reason and "Light Panel Simulator" in reason
    some = {"master": Outcome(True, {"status": "no_panel"}), "ota2": Outcome(True, {"status": "ok", "sets": []})}
    status, reason = summary("panel", some)
    assert status == "ok" and reason.startswith("panel flats on ota2 (no panel: master)")
    lost = {"ota2": Outcome(True, {"status": "ok"}), "ota3": Outcome(False, reason="no flats answer (node lost)")}
    assert summary("panel", lost) == ("partial", "panel flats on ota2, ota3: ota2: ok; ota3: failed "
                                                 "(no flats answer (node lost))")
    waiting = {"ota2": Outcome(True, {"status": "waiting", "reason": "nothing covers the OTA"})}
    assert summary("darks", waiting)[0] == "partial"


def test_calibrate_is_refused_while_the_mount_is_out(cfg):
    assert refusal(None) is None and refusal("parked") is None and refusal("waiting_dark") is None
    assert "imaging" in refusal("imaging")
    assert "its own calibration" in refusal("calibrating") and "cooling" in refusal("cooling")
    nodes = [Recorder("master", ok("ok"))]
    with pytest.raises(IndisyncError, match="mount is out"):
        calibrate_rig(CalibrateArgs(what="darks"), nodes, cfg, "imaging")
    assert nodes[0].asked == []
    result = calibrate_rig(CalibrateArgs(what="darks"), nodes, cfg, "parked", covered=lambda: True)
    assert result.status == "ok" and nodes[0].asked[0].covered and result.nodes["master"]["status"] == "ok"


def test_the_calibrate_reply_leaves_the_per_frame_lists_out(cfg):
    answer = Outcome(True, {"status": "ok", "sets": [{"filter": "R", "status": "ok", "kept": 20, "taken": 22,
                                                       "files": ["a"] * 20, "adu": [1.0] * 20, "exposures": [1.0]}]})
    result = calibrate_rig(CalibrateArgs(what="panel"), [Recorder("master", lambda a: answer)], cfg, None)
    assert result.nodes["master"]["sets"] == [{"filter": "R", "status": "ok", "kept": 20, "taken": 22}]


@pytest.mark.timeout(60)
def test_a_local_participants_flats_stop_when_cancelled(tmp_path):
    from indisync.node.master_rig import LocalParticipant

    wheel = FakeWheel(["L"])
    camera = FakeCamera(lambda t, kind, s: 0.4 * 65535, wheel, sleep=0.2)
    node = make_node(tmp_path, FakeDevices(camera, wheel), flats={"count": 1000, "min_exposure": 0.01})
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    outcome = LocalParticipant(node).flats(FlatsArgs(mode="sky", direction="dusk", sets=[{"filter": "L"}]), 60.0,
                                           cancel=cancel)
    assert time.monotonic() - started < 5.0
    assert outcome.ok and outcome.result["status"] == "stopped"
    kept = outcome.result["sets"][0]["kept"]
    assert 0 < kept < 1000 and len(files_in(node)) == kept
    assert camera.aborted.is_set() or camera.frames  # the frame under way was aborted


def test_a_local_participant_answers_a_failed_outcome_when_the_run_cannot_start(tmp_path):
    from indisync.node.master_rig import LocalParticipant

    node = make_node(tmp_path, FakeDevices(None))
    outcome = LocalParticipant(node).darks(DarksArgs(sets=[{"kind": "bias", "exposure": 0}]), 10.0)
    assert not outcome.ok and "no camera" in outcome.reason


def test_darks_on_demand_wait_for_a_shutter_still_closing(tmp_path):
    """The Dome Simulator closes its closed shutter again when it parks (DOME_SHUTTER Busy for ~6 s,
    measured): read then, the OTAs would count as uncovered."""
    from types import SimpleNamespace

    from indisync.devices.dome import Dome as IndiDome
    from indisync.node.master_rig import dome_closed

    class Dome:
        name = "Dome"
        closed_when_still = IndiDome.closed_when_still  # the device's own wait, over this stand-in's reads

        def __init__(self):
            self.reads = 0
            self.client = self

        def snapshot(self, device, prop):
            self.reads += 1
            return SimpleNamespace(state="Busy" if self.reads < 4 else "Ok")

        @property
        def shutter_open(self):
            return None if self.reads < 4 else False

    dome = Dome()
    master = SimpleNamespace(supervisor=SimpleNamespace(get=lambda: SimpleNamespace(dome=dome)),
                             cfg=SimpleNamespace(indi=SimpleNamespace(move_timeout=10.0)),
                             stop_event=threading.Event())
    assert dome_closed(master) is True and dome.reads >= 4
    master.supervisor.get = lambda: SimpleNamespace(dome=None)
    assert dome_closed(master) is False
