"""The executor's meridian flip (NightRunner._do_flip) with stand-in devices: the pier side checked
after the slew, the guider's calibration mirrored, the events sent. The real thing runs in
tests/integration/test_meridian_flip_sim.py."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from indisync.config import load_config
from indisync.night.machine import Ev, NightPlan, Snapshot
from indisync.night.meridian import FlipSettings
from indisync.node.night_runner import NightRunner


class Link:
    def __init__(self):
        self.events, self.errors, self.states = [], [], []

    def event(self, kind, **data):
        self.events.append((kind, data))

    def error(self, message):
        self.errors.append(message)

    def update_state(self, **fields):
        self.states.append(fields)


class Mount:
    def __init__(self, flips=True):
        self.side, self.flips, self.slews = "west", flips, []

    @property
    def pier_side(self):
        return self.side

    @property
    def coordinates(self):
        return 6.0, 30.0

    def slew_j2000(self, ra, dec, timeout):
        self.slews.append((ra, dec))
        if self.flips:
            self.side = "east"


class Guiding:
    def __init__(self):
        self.stopped, self.flipped = 0, []
        self.guider = SimpleNamespace(after_meridian_flip=lambda recalibrate=False: self.flipped.append(recalibrate))

    def stop(self):
        self.stopped += 1
        return True


def runner(mount, recalibrate=False):
    cfg = load_config(data={"node": {"name": "m", "role": "master"},
                            "master": {"target": {"name": "T", "ra": 90.0, "dec": 30.0}},
                            "site": {"latitude": 45, "longitude": 10}, "night": {},
                            "flip": {"after_meridian_min": 1, "recalibrate": recalibrate}})
    devices = SimpleNamespace(mount=mount)
    master = SimpleNamespace(cfg=cfg, link=Link(), guiding=Guiding(), stop_event=threading.Event(), plan=[],
                             supervisor=SimpleNamespace(get=lambda: devices))
    r = NightRunner(master)
    r.plan = NightPlan(slew=True, flip=True, flip_settings=FlipSettings(1, 5, recalibrate))
    r.snapshot = Snapshot(state="flipping")
    r._longitude = 10.0
    return r, master


def test_a_flip_that_changes_the_pier_side_mirrors_the_guider_and_reports():
    mount = Mount()
    r, m = runner(mount)
    event, data = r._do_flip(at=time.time() + 0.3)
    assert event is Ev.FLIPPED and data["pier_side"] == "east" and "ha_hours" in data
    assert mount.slews == [(90.0, 30.0)] and m.guiding.stopped == 1 and m.guiding.flipped == [False]
    assert [k for k, _ in m.link.events] == ["flip_started"]
    assert m.link.events[0][1]["pier_side"] == "west"
    assert {"phase": "flipping", "exposure": None} in m.link.states
    assert r._flip_report["wait_s"] >= 0.2
    r._report_flip()  # the first frame after the flip
    kind, done = m.link.events[-1]
    assert kind == "flip_done" and done["status"] == "ok" and done["pier_side_after"] == "east"
    assert done["total_s"] >= done["slew_s"] >= 0 and r.flips == [{k: v for k, v in done.items() if k != "status"}]


def test_a_flip_that_keeps_the_pier_side_fails_with_a_clear_error():
    mount = Mount(flips=False)
    r, m = runner(mount, recalibrate=True)
    event, data = r._do_flip(at=None)
    assert event is Ev.FLIP_FAILED
    assert data["reason"].startswith("pier side stayed west after the flip slew")
    assert "GEOGRAPHIC_COORD" in data["reason"]
    assert any("meridian flip failed" in e for e in m.link.errors)
    assert m.link.events[-1][0] == "flip_done" and m.link.events[-1][1]["status"] == "failed"
    assert m.guiding.flipped == []  # nothing mirrored on a failed flip


def test_a_flip_that_raises_answers_flip_failed_not_flipped():
    class LostMount(Mount):
        def slew_j2000(self, ra, dec, timeout):
            raise RuntimeError("indiserver connection lost")

    r, m = runner(LostMount())
    posted = []
    r.post = lambda event, **data: posted.append((event, data))
    r._spawn("flip", r._do_flip, answer=(Ev.FLIPPED, Ev.FLIP_FAILED))
    deadline = time.monotonic() + 5
    while not posted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert posted and posted[0][0] is Ev.FLIP_FAILED and "indiserver connection lost" in posted[0][1]["reason"]


def test_the_hold_ends_when_the_night_moves_on():
    mount = Mount()
    r, m = runner(mount)
    threading.Timer(0.3, lambda: setattr(r, "snapshot", Snapshot(state="unsafe"))).start()
    t0 = time.monotonic()
    assert r._do_flip(at=time.time() + 30) is None
    assert time.monotonic() - t0 < 3 and mount.slews == []
