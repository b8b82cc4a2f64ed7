"""Guiding that tells the user why it cannot work, and never takes the master down with it.

- calibration under a drifting sky measures the pulse, not the drift (issue 9, item 2);
- calibration is refused, with the reason and the fix, at a pole, with tracking off or parked (item 3);
- Guider.stop() never raises, is bounded, and reports a loop that will not stop; the loop cannot end
  unseen; MasterGuiding.stop() never raises into the master's refocus (item 6).
"""

import math
import threading

import pytest

from indisync.errors import CalibrationError, GuideError
from indisync.guiding.calibration import calibration_blockers
from indisync.guiding import guider as guider_module
from indisync.guiding.guider import Guider, GuiderState
from indisync.guiding.settings import DitherSettings, GuiderSettings
from indisync.node.guiding import MasterGuiding

from .test_guiding_guider import FakeSky, Frames, make


# ---- calibration under drift ----------------------------------------------------------------------

@pytest.mark.parametrize("along", [1.0, -1.0])
def test_calibration_rate_is_not_biased_by_drift(along):
    # The sky drifts 0.5 px/s along the RA axis (periodic error, as the Guide Simulator's 11" / 8 min);
    # a calibration step takes 1.6 s, so each West step carries 0.8 px of drift on top of 6 px of pulse.
    a = math.radians(30)
    sky = FakeSky(ra_angle=30, ra_rate=0.012, dec_rate=0.008,
                  drift=(along * 0.5 * math.cos(a), along * 0.5 * math.sin(a)))
    cal = make(sky).calibrate()
    # West leg alone: 0.012 * (1 ± 0.8/6) = 13 % off
    assert cal.ra.rate == pytest.approx(0.012, rel=0.03)
    assert math.degrees(cal.ra.angle) == pytest.approx(30, abs=3)
    assert [d for d, _ in sky.pulses].count("E") == [d for d, _ in sky.pulses].count("W")


# ---- calibration refused where it cannot work --------------------------------------------------

def test_blockers_name_the_problem_and_the_fix():
    assert calibration_blockers(30.0, True, False, max_dec=80) == []
    assert calibration_blockers(None, None, None, max_dec=80) == []  # a mount that says nothing: try
    (pole,) = calibration_blockers(89.5, True, False, max_dec=80)
    assert "Dec 89.5" in pole and "impossible near the pole" in pole and "slew to |Dec| < 60" in pole
    assert "impossible" in calibration_blockers(-85.0, True, None, max_dec=80)[0]  # the south pole too
    (off,) = calibration_blockers(30.0, False, False, max_dec=80)
    assert "tracking is off" in off and "turn tracking on" in off
    (parked,) = calibration_blockers(30.0, False, True, max_dec=80)
    assert "parked" in parked and "unpark" in parked
    assert len(calibration_blockers(89.5, False, None, max_dec=80)) == 2


@pytest.mark.parametrize("dec, tracking, parked, message", [
    (89.5, True, False, "mount at Dec 89.5: RA calibration is impossible near the pole"),
    (30.0, False, False, "tracking is off: turn tracking on"),
    (30.0, None, True, "the mount is parked: unpark it"),
])
def test_calibration_is_refused_before_any_pulse(dec, tracking, parked, message):
    sky = FakeSky()
    sky.coordinates = (5.0, dec)
    sky.tracking, sky.parked = tracking, parked
    g = make(sky)
    with pytest.raises(CalibrationError, match=message):
        g.calibrate()
    with pytest.raises(CalibrationError, match=message):
        g.start()  # start() calibrates first: same answer
    assert sky.pulses == [] and g.state is GuiderState.IDLE


def test_calibration_still_runs_when_the_mount_does_not_say():
    sky = FakeSky()
    sky.tracking = "unknown"  # not a bool: not known, not a reason to refuse
    assert make(sky).calibrate().ra.rate > 0


def test_pulses_go_to_the_given_port_when_pulse_via_camera():
    sky = FakeSky()
    with pytest.raises(GuideError, match="pulse_via"):
        Guider(sky, sky, GuiderSettings(pulse_via="camera"))

    class Port:
        def __init__(self):
            self.pulses = []

        def pulse_guide(self, direction, ms):
            self.pulses.append((direction, ms))
            sky.pulse_guide(direction, ms)

    port = Port()
    sky_pulses_before = len(sky.pulses)
    g = Guider(sky, object(), GuiderSettings(exposure=1.0, pulse_settle=0.1, search_radius=12, edge_margin=15,
                                             max_stars=3, pulse_via="camera"),
               clock=sky.clock, sleep=sky.sleep, pulser=port)
    g.calibrate()
    assert port.pulses and len(sky.pulses) - sky_pulses_before == len(port.pulses)


# ---- stop() never raises; the loop never ends unseen ------------------------------------------

class StuckSky(FakeSky):
    """A guide camera that hangs in expose() once ``stuck`` is set, until ``release`` is set."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.stuck, self.release, self.inside = threading.Event(), threading.Event(), threading.Event()
        self.aborts = 0

    def expose(self, seconds, binning=1):
        if self.stuck.is_set():
            self.inside.set()
            assert self.release.wait(30), "test never released the camera"
        return super().expose(seconds, binning)

    def abort(self):
        self.aborts += 1  # a camera too stuck to abort: the loop stays in expose()


def test_stop_on_a_stuck_camera_is_bounded_reported_and_does_not_raise():
    sky = StuckSky()
    g = make(sky)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    ev.wait(lambda f: f.frames() >= 3)
    sky.stuck.set()
    assert sky.inside.wait(10)
    try:
        assert g.stop(timeout=1.0) is False  # before the fix: raised GuideError out of stop()
        assert g.state is GuiderState.ERROR and isinstance(g.last_error, GuideError)
        assert "did not stop" in str(g.last_error)
        errors = [e for e in ev.events if e.kind == "error"]
        assert errors and "did not stop" in errors[-1].data["message"]
        assert not g.running
        with pytest.raises(GuideError, match="still stuck"):
            g.start()  # never a second loop beside the stuck one
    finally:
        sky.release.set()
    ev.wait(lambda f: "stopped" in f.kinds())
    assert g.stop() is True  # the stuck loop has ended: stopping is clean again
    sky.stuck.clear()
    g.start()
    n = ev.frames()
    ev.wait(lambda f: f.frames() >= n + 3)
    assert g.stop() is True


def test_stop_aborts_the_guide_frame_before_giving_up(monkeypatch):
    monkeypatch.setattr(guider_module, "STOP_GRACE", 0.2)
    monkeypatch.setattr(guider_module, "STOP_AFTER_ABORT", 0.5)
    sky = StuckSky()
    g = make(sky, exposure=0.1, max_pulse_ms=10)
    g.start()
    sky.stuck.set()
    assert sky.inside.wait(10)
    try:
        assert g.stop() is False  # the default bound: frame + 2 pulses + grace, abort, then 0.5 s more
        assert sky.aborts == 1
    finally:
        sky.release.set()


class DyingSky(FakeSky):
    def __init__(self, exc, **kw):
        super().__init__(**kw)
        self.exc, self.die = exc, threading.Event()

    def expose(self, seconds, binning=1):
        if self.die.is_set():
            raise self.exc
        return super().expose(seconds, binning)


@pytest.mark.parametrize("exc", [RuntimeError("numpy said no"), SystemExit(3), KeyboardInterrupt()])
def test_the_loop_never_ends_unseen(exc):
    sky = DyingSky(exc)
    g = make(sky)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    ev.wait(lambda f: f.frames() >= 2)
    sky.die.set()
    ev.wait(lambda f: "stopped" in f.kinds())
    # before the fix a SystemExit / KeyboardInterrupt ended the thread with the state still GUIDING
    assert g.state is GuiderState.ERROR and g.last_error is exc
    assert [e for e in ev.events if e.kind == "error"]
    assert not g.running
    assert g.stop() is True


# ---- the master's side ------------------------------------------------------------------------

class FakeLink:
    def __init__(self):
        self.errors, self.events, self.states = [], [], []

    def error(self, message):
        self.errors.append(message)

    def event(self, kind, **data):
        self.events.append((kind, data))

    def update_state(self, **fields):
        self.states.append(fields)


def _master(guider):
    settings = type("M", (), {"dither": DitherSettings(), "on_star_lost": "continue"})()
    link = FakeLink()
    return MasterGuiding(guider, settings, link, threading.Event()), link


def test_master_guiding_stop_with_a_stuck_camera_reports_and_returns():
    sky = StuckSky()
    g = make(sky)
    mg, link = _master(g)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    ev.wait(lambda f: f.frames() >= 2)
    sky.stuck.set()
    assert sky.inside.wait(10)
    stop = g.stop
    g.stop = lambda timeout=None: stop(timeout=1.0)  # the default bound is a minute; the test has no minute
    try:
        assert mg.stop() is False  # returns: the master goes on to autofocus
        assert any("did not stop" in m for m in link.errors), link.errors
        assert link.states[-1]["guiding"]["state"] == "error"
        assert mg.start() is False  # and the restart after focus is refused, reported, not raised
        assert any("guiding did not start" in m and "still stuck" in m for m in link.errors)
    finally:
        sky.release.set()


def test_master_guiding_survives_a_guider_whose_stop_raises():
    class Broken:
        state = GuiderState.GUIDING
        running = True

        def add_listener(self, fn):
            pass

        def stop(self):
            raise RuntimeError("stand-in bug")

        def start(self, reacquire=True):
            raise ValueError("not an IndisyncError")

        def dither(self, *a):
            raise ZeroDivisionError("bug")

        @property
        def stats(self):
            raise RuntimeError("no stats either")

    mg, link = _master(Broken())
    assert mg.stop() is False
    assert mg.start() is False
    mg.dither_settings.every_frames = 1
    mg.frame_done()
    assert any("did not stop" in m for m in link.errors) and any("did not start" in m for m in link.errors)
    assert link.events[-1][0] == "dither_settled" and link.events[-1][1]["status"] == "failed"
