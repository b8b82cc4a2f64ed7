"""The night's meridian flip action (indisync.night.actions.flip) on the fake rig: the pier side
checked after the slew, the guider's calibration mirrored, the events sent; the hold cancelled with
its state. The real thing runs in tests/integration/test_meridian_flip_sim.py."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from indisync.config import load_config
from indisync.night.actions import flip as flip_action
from indisync.night.executor import Ctx, Memo
from indisync.night.events import FlipFailed, Flipped
from indisync.night.machine import NightPlan, Snapshot
from indisync.night.meridian import FlipSettings
from indisync.night.token import Token
from tests.fakes.rig import fake_rig


class Guiding:
    def __init__(self):
        self.stopped, self.flipped = 0, []
        self.guider = SimpleNamespace(after_meridian_flip=lambda recalibrate=False: self.flipped.append(recalibrate))

    def stop(self):
        self.stopped += 1
        return True


def setup(flips=True, recalibrate=False, slew=None):
    cfg = load_config(data={"node": {"name": "m", "role": "master"},
                            "master": {"target": {"name": "T", "ra": 90.0, "dec": 30.0}},
                            "site": {"latitude": 45, "longitude": 10}, "night": {},
                            "flip": {"after_meridian_min": 1, "recalibrate": recalibrate}})
    rig = fake_rig(cfg)
    guiding = Guiding()
    rig.guiding = lambda: guiding
    mount = rig.parts.mount
    mount.slews = []

    def default_slew(ra, dec, timeout, tolerance_arcsec=120.0, cancel=None):
        mount.slews.append((ra, dec))
        if flips:
            mount.pier_side = "east"

    mount.slew_j2000 = slew or default_slew
    night = SimpleNamespace(memo=Memo(longitude=10.0), snapshot=Snapshot(state="flipping"))
    token = Token(1, "flipping")
    ctx = Ctx(rig, NightPlan(slew=True, flip=True, flip_settings=FlipSettings(1, 5, recalibrate)), token, night)
    return ctx, rig, guiding


def test_a_flip_that_changes_the_pier_side_mirrors_the_guider_and_reports():
    ctx, rig, guiding = setup()
    answer = flip_action.flip(ctx, at=time.time() + 0.3)
    assert isinstance(answer, Flipped) and answer.pier_side == "east" and answer.ha_hours is not None
    assert rig.parts.mount.slews == [(90.0, 30.0)] and guiding.stopped == 1 and guiding.flipped == [False]
    report = rig.report
    assert [k for k, _ in report.events] == ["flip_started"]
    assert report.events[0][1]["pier_side"] == "west"
    assert {"phase": "flipping", "exposure": None} in report.states
    assert ctx.memo.flip_report["wait_s"] >= 0.2
    flip_action.report_flip(ctx)  # the first frame after the flip
    kind, done = report.events[-1]
    assert kind == "flip_done" and done["status"] == "ok" and done["pier_side_after"] == "east"
    assert done["total_s"] >= done["slew_s"] >= 0 and ctx.memo.flips == [{k: v for k, v in done.items()
                                                                           if k != "status"}]


def test_a_flip_that_keeps_the_pier_side_fails_with_a_clear_error():
    ctx, rig, guiding = setup(flips=False, recalibrate=True)
    answer = flip_action.flip(ctx, at=None)
    assert isinstance(answer, FlipFailed)
    assert answer.reason.startswith("pier side stayed west after the flip slew")
    assert "GEOGRAPHIC_COORD" in answer.reason
    assert any("meridian flip failed" in e for e in rig.report.errors)
    assert rig.report.events[-1][0] == "flip_done" and rig.report.events[-1][1]["status"] == "failed"
    assert guiding.flipped == []  # nothing mirrored on a failed flip


def test_a_flip_whose_slew_fails_answers_flip_failed_not_flipped():
    from indisync.errors import DeviceError

    def lost(*a, **k):
        raise DeviceError("indiserver connection lost")

    ctx, rig, _ = setup(slew=lost)
    answer = flip_action.flip(ctx, at=None)
    assert isinstance(answer, FlipFailed) and "indiserver connection lost" in answer.reason


def test_the_hold_ends_when_the_night_moves_on():
    ctx, rig, _ = setup()
    threading.Timer(0.3, lambda: ctx.token.cancel("rain")).start()
    t0 = time.monotonic()
    assert flip_action.flip(ctx, at=time.time() + 30) is None
    assert time.monotonic() - t0 < 3 and rig.parts.mount.slews == []
