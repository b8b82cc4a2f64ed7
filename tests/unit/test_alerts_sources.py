"""What raises an alarm, each source on its own: a park or close that failed and a night that ended
early (the real executor and actions on the fake rig), a node offline, a clock offset and a night
standing still (the master's alarm watch over a stand-in registry and clocks), a frame refused for
lack of disk, the end-of-night summary, and the status column."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from indisync.alerts import Alarm
from indisync.alerts import causes
from indisync.config import load_config
from indisync.night.actions import motion
from indisync.night.alarms import ended_early, stuck
from indisync.night.state import Snapshot
from indisync.node import disk as disk_module
from indisync.node.alarm_watch import MasterAlarmWatch
from indisync.node.base import NodeBase
from indisync.node.disk import DiskSpaceLow, check_free_space
from indisync.node.imaging import FrameRequest, take_frame
from indisync.node.master import MasterNode
from tests.fakes.rig import fake_rig
from tests.unit.test_night_executor import Night, config

pytestmark = pytest.mark.timeout(60)


class Alarms(list):
    def __call__(self, alarm: Alarm) -> bool:
        assert isinstance(alarm, Alarm)
        self.append(alarm)
        return True

    def causes(self) -> list[str]:
        return [a.cause for a in self]


# -- park and close ------------------------------------------------------------------------------
def test_a_refused_park_raises_park_failed_and_a_refused_close_raises_close_failed():
    rig = fake_rig(config())
    rig.alarm = raised = Alarms()
    rig.parts.faults.park_refusals = 1
    rig.parts.faults.close_refusals = 1
    problems = motion.secure(rig, "rain")
    assert len(problems) == 2
    assert raised.causes() == ["park_failed", "close_failed"]
    assert all(a.level == "critical" for a in raised)
    assert "refused by the stand-in" in raised[0].body and "rain" in raised[0].body
    assert "DOME_SHUTTER" in raised[1].body
    raised.clear()
    assert motion.secure(rig, "rain") == []  # parked and closed now: no alarm
    assert raised == []


def test_no_devices_at_the_park_raises_park_failed():
    rig = fake_rig(config())
    rig.alarm = raised = Alarms()
    rig.parts.faults.devices_gone = True
    with pytest.raises(Exception, match="indiserver gone"):
        motion.secure(rig, "end of the night")
    assert raised.causes() == ["park_failed"] and "no devices" in raised[0].body


def test_a_park_refused_during_the_night_alarms_and_the_park_still_comes_first(monkeypatch):
    night = Night(monkeypatch)
    night.rig.alarm = raised = Alarms()
    night.start()
    night.wait(lambda: night.executor.snapshot.state == "imaging", what="imaging")
    night.rig.parts.faults.park_refusals = 2
    night.rain()
    night.wait(lambda: night.rig.parts.mount.parked, what="parked after two refusals")
    assert raised.causes().count("park_failed") == 2  # one per attempt; the alerter dedupes them
    assert "close_failed" not in raised.causes()
    night.stop()


# -- the night ended early ------------------------------------------------------------------------
def test_a_failed_slew_ends_the_night_early_with_an_alarm(monkeypatch):
    night = Night(monkeypatch)
    night.rig.alarm = raised = Alarms()
    night.rig.parts.faults.slew_failures = 1
    night.start()
    night.wait(lambda: night.executor.snapshot.state == "done", what="the night done")
    assert raised.causes() == ["night_ended_early"]
    assert "slew" in raised[0].body
    night.stop()


def test_a_night_that_finishes_its_sequence_raises_no_alarm(monkeypatch):
    night = Night(monkeypatch)
    night.rig.alarm = raised = Alarms()
    night.start()
    night.wait(lambda: night.executor.snapshot.state == "done", what="the night done")
    assert raised == []
    night.stop()


def _snap(state, **fields):
    return Snapshot(state=state, **fields)


@pytest.mark.parametrize("new, stopped, early", [
    (_snap("parking", reason="slew_failed: x", window_end=10_000.0, next_duration=60.0), False, True),
    (_snap("parking", reason="the sequence is finished", finished=True, window_end=10_000.0), False, False),
    (_snap("parking", reason="stopped by hand", window_end=10_000.0), True, False),
    (_snap("parking", reason="end of the night: the window has closed", window_end=1000.0), False, False),
    # the next 600 s frame would end past the window: the normal end, not early
    (_snap("parking", reason="end of the night: the next frame", window_end=1500.0, next_duration=600.0), False, False),
    (_snap("parking", reason="stuck in centering for 700 s", window_end=None), False, True),
])
def test_ended_early_rule(new, stopped, early):
    alarm = ended_early(_snap("imaging"), new, 1000.0, stopped)
    assert (alarm is not None) is early
    if early:
        assert alarm.cause == "night_ended_early" and new.reason in alarm.body


def test_ended_early_only_on_the_move_into_parking():
    parking = _snap("parking", reason="x")
    assert ended_early(None, parking, 0.0, False) is None
    assert ended_early(parking, parking, 0.0, False) is None
    assert ended_early(_snap("warming"), parking, 0.0, False) is None


# -- stuck -----------------------------------------------------------------------------------------
def test_stuck_rule():
    imaging = _snap("imaging", since=0.0, next_duration=600.0, window_end=100_000.0)
    assert stuck(imaging, 600.0 + 1800.0, 0.0, 1800.0) is None  # within the limit plus the frame under way
    alarm = stuck(imaging, 600.0 + 1800.0 + 1.0, 0.0, 1800.0)
    assert alarm.cause == "night_stuck" and alarm.level == "critical" and "imaging" in alarm.title
    assert stuck(imaging, 3000.0, 1000.0, 1800.0) is None  # a frame 2000 s ago: not stuck
    assert stuck(_snap("parked", since=0.0), 1e6, 0.0, 1800.0) is None  # parked for rain may last hours
    assert stuck(_snap("waiting_dark", since=0.0), 1e6, 0.0, 1800.0) is None
    late = _snap("imaging", since=0.0, window_end=2000.0)
    assert stuck(late, 5000.0, 0.0, 1800.0) is None  # past the window the machine parks on its own


# -- the master's alarm watch --------------------------------------------------------------------
class FakeRegistry:
    def __init__(self):
        self.listeners = []
        self.infos = []

    def add_listener(self, fn):
        self.listeners.append(fn)

    def say(self, node, what):
        for fn in self.listeners:
            fn(node, what)

    def nodes(self):
        return list(self.infos)


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def watch(night_state="imaging", **alerts):
    cfg = load_config(data={"alerts": {"node_offline_s": 300, "night_stuck_s": 1800, **alerts},
                            "mqtt": {"clock_warn": 0.1}})
    registry, raised, wall, mono = FakeRegistry(), Alarms(), Clock(50_000.0), Clock(1000.0)
    box = SimpleNamespace(snap=_snap(night_state, since=50_000.0, window_end=None, next_duration=60.0), frames=0)
    w = MasterAlarmWatch(cfg, raised, registry, night=lambda: box.snap, frames=lambda: box.frames,
                         clock=wall, mono=mono)
    return w, registry, raised, wall, mono, box


def test_a_node_offline_past_node_offline_s_while_the_night_is_active_alarms_once():
    w, registry, raised, wall, mono, box = watch()
    registry.say("ota2", "missed heartbeats")
    mono.t += 299
    assert w.check() == []
    mono.t += 2
    assert [a.cause for a in w.check()] == ["node_offline:ota2"]
    assert "5 min" in raised[0].body and "indisync@ota2" in raised[0].body
    mono.t += 600
    assert w.check() == []  # once per episode
    registry.say("ota2", "joined")
    registry.say("ota2", "offline")
    mono.t += 301
    assert [a.cause for a in w.check()] == ["node_offline:ota2"]  # a new episode


def test_a_node_offline_while_waiting_for_dark_is_no_alarm():
    w, registry, raised, wall, mono, box = watch("waiting_dark")
    registry.say("ota2", "offline")
    mono.t += 3600
    assert w.check() == []
    box.snap = _snap("imaging", since=wall.t, next_duration=60.0)  # the night starts: now it counts
    assert [a.cause for a in w.check()] == ["node_offline:ota2"]


def test_a_clock_past_clock_warn_alarms_once_until_it_is_back():
    w, registry, raised, wall, mono, box = watch()
    info = SimpleNamespace(name="ota2", alive=True, state={"clock_offset_s": 0.05, "clock_rtt_s": 0.002})
    registry.infos = [info]
    assert w.check() == []
    info.state = {"clock_offset_s": -0.35, "clock_rtt_s": 0.004}
    alarm, = w.check()
    assert alarm.cause == "clock_offset:ota2" and "-0.350 s" in alarm.body and "chrony" in alarm.body
    assert w.check() == []
    info.state = {"clock_offset_s": 0.01, "clock_rtt_s": 0.004}
    assert w.check() == []
    info.state = {"clock_offset_s": 0.5, "clock_rtt_s": 0.004}
    assert [a.cause for a in w.check()] == ["clock_offset:ota2"]
    # an offset within its own round trip's error is not trusted as past the limit
    info.state = {"clock_offset_s": 0.15, "clock_rtt_s": 0.2}
    w._raised.clear()
    assert w.check() == []


def test_a_night_standing_still_alarms_once_and_a_frame_rearms_it():
    w, registry, raised, wall, mono, box = watch()
    w.check()  # sees frame 0 at 50000
    wall.t += 1800 + 60
    assert w.check() == []
    wall.t += 2
    assert [a.cause for a in w.check()] == ["night_stuck"]
    wall.t += 5000
    assert w.check() == []
    box.frames = 1  # a frame: progress
    assert w.check() == []
    wall.t += 1863
    assert [a.cause for a in w.check()] == ["night_stuck"]


def test_the_watch_thread_survives_a_failing_look():
    w, registry, raised, wall, mono, box = watch()
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("bad snapshot")

    w.night = broken
    w.period = 0.01
    w.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    w.stop()
    assert len(calls) >= 3


# -- disk space --------------------------------------------------------------------------------------
def _usage(free_bytes):
    return lambda path: SimpleNamespace(total=10**12, used=10**12 - free_bytes, free=free_bytes)


def test_check_free_space_refuses_below_min_free_gb_with_the_reason_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(disk_module.shutil, "disk_usage", _usage(int(0.3e9)))
    storage = SimpleNamespace(directory=str(tmp_path / "not-yet"), min_free_gb=0.5)
    with pytest.raises(DiskSpaceLow) as info:
        check_free_space(storage)
    assert str(info.value) == (f"only 0.30 GB free in {tmp_path / 'not-yet'}, below storage.min_free_gb 0.5: "
                               "free space or lower it")
    storage.min_free_gb = 0.0  # 0: never refuse
    assert check_free_space(storage) == pytest.approx(0.3)
    storage.min_free_gb = 0.2
    assert check_free_space(storage) == pytest.approx(0.3)


class RecordingDevices:
    def __init__(self):
        self.calls = []
        wheel = SimpleNamespace(select=lambda name: self.calls.append(("select", name)), current="Red")
        camera = SimpleNamespace(expose=lambda *a: self.calls.append(("expose",) + a))
        self.filter_wheel, self.camera, self.focuser = wheel, camera, None


def test_take_frame_refuses_before_anything_moves_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(disk_module.shutil, "disk_usage", _usage(int(0.1e9)))
    cfg = load_config(data={"storage": {"directory": str(tmp_path), "min_free_gb": 1.0}})
    devices, started = RecordingDevices(), []
    with pytest.raises(DiskSpaceLow, match="only 0.10 GB free"):
        take_frame(devices, cfg, FrameRequest(duration=1.0, filter_name="Red"), on_start=started.append)
    assert devices.calls == [] and started == []  # no wheel move, no shutter
    assert list(tmp_path.iterdir()) == []


def test_a_node_refusing_a_frame_raises_an_alarm_and_publishes_its_free_space(monkeypatch, tmp_path):
    monkeypatch.setattr(disk_module.shutil, "disk_usage", _usage(int(0.25e9)))
    cfg = load_config(data={"node": {"name": "ota2"}, "storage": {"directory": str(tmp_path), "min_free_gb": 2}})
    states, raised = [], Alarms()
    node = SimpleNamespace(cfg=cfg, name="ota2", link=SimpleNamespace(update_state=lambda **f: states.append(f)),
                           raise_alarm=raised)
    node._disk_state = lambda free: NodeBase._disk_state(node, free)
    with pytest.raises(DiskSpaceLow):
        NodeBase.check_disk(node)
    assert states == [{"disk_free_gb": 0.25}]
    assert raised.causes() == ["disk_low:ota2"] and raised[0].level == "critical"
    assert "below storage.min_free_gb 2" in raised[0].body and "No file was written" in raised[0].body
    monkeypatch.setattr(disk_module.shutil, "disk_usage", _usage(int(50e9)))
    assert NodeBase.check_disk(node) == pytest.approx(50.0)
    assert states[-1] == {"disk_free_gb": 50.0} and len(raised) == 1


# -- the night's summary ----------------------------------------------------------------------------
REPORT_NODES = {
    "ota1": {"frames": 12, "frames_by_filter": {"Luminance": 12}, "shutter_open_pct": 81.4,
             "autofocus": {"runs": 3, "ok": 3}, "failed": 0},
    "ota2": {"frames": 11, "frames_by_filter": {"Blue": 3, "Green": 4, "Red": 4}, "shutter_open_pct": 74.0,
             "autofocus": {"runs": 3, "ok": 2}, "failed": 1},
}


def test_the_summary_says_frames_per_node_and_filter_shutter_autofocus_failures_and_the_report():
    alarm = causes.night_summary("2026-12-05", REPORT_NODES, 2, "/data/nights/report-2026-12-05/index.html")
    assert alarm.cause == "night_summary:2026-12-05" and alarm.level == "info"
    assert alarm.title == "Night 2026-12-05: 23 frames"
    assert "ota1: 12 frames (Luminance 12), shutter open 81 %, autofocus 3/3 ok" in alarm.body
    assert "ota2: 11 frames (Blue 3, Green 4, Red 4), shutter open 74 %, autofocus 2/3 ok, 1 failed" in alarm.body
    assert "Failures: 2" in alarm.body and "Report: /data/nights/report-2026-12-05/index.html" in alarm.body
    # its lines travel joined on MQTT (the event schema refuses control characters)
    from indisync.protocol import messages

    payload = messages.make("alarm", "master", alarm.event_payload()).payload
    assert " | Failures: 2 (see the report) | Report: " in payload["body"]


def test_the_master_sends_the_summary_from_its_report(tmp_path):
    out = tmp_path / "report-2026-12-05"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"night": "2026-12-05", "nodes": REPORT_NODES, "failures": [{}],
                                                 "window": {"start": "2026-12-05T18:00:00Z",
                                                            "end": "2026-12-06T05:00:00Z"}}))
    raised = Alarms()
    master = SimpleNamespace(recording=SimpleNamespace(report_path=out / "index.html"), frames=12,
                             raise_alarm=raised)
    MasterNode._night_summary(master)
    alarm, = raised
    assert alarm.cause == "night_summary:2026-12-05" and str(out / "index.html") in alarm.body
    assert "Failures: 1" in alarm.body and "Window: 2026-12-05T18:00:00Z to 2026-12-06T05:00:00Z" in alarm.body
    raised.clear()
    MasterNode._night_summary(SimpleNamespace(recording=None, frames=7, raise_alarm=raised))  # no report: still one
    assert raised[0].title.endswith(": 7 frames") and "Report: none written" in raised[0].body


# -- status ------------------------------------------------------------------------------------------
def test_status_shows_each_nodes_free_disk():
    from indisync.commands.status import node_row, render_table
    from indisync.protocol.registry import NodeInfo

    info = NodeInfo("ota2", status="online", alive=True, last_heartbeat=0.0,
                    state={"role": "slave", "phase": "idle", "frames": 3, "version": "x", "disk_free_gb": 12.34})
    row = node_row(info, 10.0, 1.0)
    assert row["disk_free_gb"] == 12.34
    header, line = render_table([row]).splitlines()[:2]
    assert "DISK" in header and "12.3G" in line
