"""The guide loop against a fake sky: a camera that renders stars where a fake mount has put them.

The fake mount moves the star field by a known vector per millisecond of pulse (rotated against the
sensor), the sky drifts at a known rate, and a fake clock advances by the exposure and pulse times,
so minutes of guiding run in a fraction of a second and every figure is known in advance.
"""

import math
import random
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from indisync.errors import CalibrationError, DeviceError, GuideError
from indisync.guiding.guider import Guider, GuiderState
from indisync.guiding.settings import GuiderSettings, SettleSettings

STARS = [(70.0, 60.0, 3000.0), (140.0, 110.0, 2000.0), (60.0, 130.0, 1500.0)]


class FakeSky:
    def __init__(self, ra_angle=30.0, ra_rate=0.012, dec_rate=0.008, drift=(0.0, 0.0), moves=True,
                 noise=5.0, seed=0, flip_dec=False):
        a = math.radians(ra_angle)
        self.west = np.array([math.cos(a), math.sin(a)]) * ra_rate  # px per ms of West pulse
        d = a + (-math.pi / 2 if flip_dec else math.pi / 2)
        self.north = np.array([math.cos(d), math.sin(d)]) * dec_rate
        self.drift = np.array(drift, dtype=float)  # px per second
        self.moves = moves
        self.noise = noise
        self.t = 0.0
        self.mount = np.zeros(2)
        self.rng = np.random.default_rng(seed)
        self.yy, self.xx = np.mgrid[0:180, 0:220]
        self.pulses = []
        self.fail_exposures = False
        self.fail_next = 0  # this many exposures fail, then they work again
        self.coordinates = (5.0, 0.0)

    # the truth the guider should keep at zero
    def offset(self):
        return self.mount + self.drift * self.t

    # camera
    def expose(self, seconds, binning=1):
        if self.fail_exposures or self.fail_next > 0:
            self.fail_next -= 1
            raise DeviceError("Fake Camera vanished during the exposure")
        self.t += seconds
        ox, oy = self.offset()
        img = np.full(self.xx.shape, 100.0 + 4 * self.noise)  # a sky high enough that noise is not clipped
        for x, y, peak in STARS:
            img += peak * np.exp(-((self.xx - x - ox) ** 2 + (self.yy - y - oy) ** 2) / 8.0)
        img += self.rng.normal(0, self.noise, img.shape)
        data = np.clip(img, 0, 65535).astype(np.uint16)
        return SimpleNamespace(data=data, header={"SCALE": 1.5})

    # mount
    def pulse_guide(self, direction, ms):
        self.pulses.append((direction, ms))
        vec = {"W": self.west, "E": -self.west, "N": self.north, "S": -self.north}[direction]
        if self.moves:
            self.mount = self.mount + vec * ms
        self.t += ms / 1000.0

    def clock(self):
        return self.t

    def sleep(self, s):
        self.t += s


def make(sky, **settings):
    s = GuiderSettings(**{"exposure": 1.0, "pulse_settle": 0.1, "search_radius": 12, "edge_margin": 15,
                          "max_stars": 3, **settings})
    return Guider(sky, sky, s, rng=random.Random(1), clock=sky.clock, sleep=sky.sleep)


class Frames:
    """Listener that collects events and lets the test wait for a number of guide frames."""

    def __init__(self):
        self.events, self.cond = [], threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def kinds(self):
        return [e.kind for e in self.events]

    def wait(self, predicate, timeout=20.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout), f"events so far: {self.kinds()[-20:]}"

    def frames(self):
        return sum(1 for e in self.events if e.kind == "frame")


@pytest.mark.parametrize("flip_dec", [False, True])
def test_calibration_measures_the_fake_mount(flip_dec):
    sky = FakeSky(ra_angle=30, ra_rate=0.012, dec_rate=0.008, flip_dec=flip_dec)
    g = make(sky)
    cal = g.calibrate()
    assert math.degrees(cal.ra.angle) == pytest.approx(30, abs=2)
    assert math.degrees(cal.dec.angle) == pytest.approx(-60 if flip_dec else 120, abs=2)
    assert cal.ra.rate == pytest.approx(0.012, rel=0.05)
    assert cal.dec.rate == pytest.approx(0.008, rel=0.05)
    assert cal.pixel_scale == 1.5 and cal.declination == 0.0
    # it pulsed back: the star is near where it started
    assert np.hypot(*sky.offset()) < 1.0
    assert g.state is GuiderState.IDLE


def test_calibration_fails_when_the_mount_does_not_move():
    sky = FakeSky(moves=False)
    g = make(sky, calibration_max_steps=6)
    with pytest.raises(CalibrationError, match="not responding") as info:
        g.calibrate()
    # and what the mount said, so the user can tell a cable from a stopped mount
    assert "pulses went to the mount (guider.pulse_via: mount)" in str(info.value)
    assert "Dec 0.0, tracking unknown" in str(info.value)
    assert [d for d, _ in sky.pulses].count("W") == 6
    assert g.state is GuiderState.IDLE


def test_calibration_fails_without_stars():
    sky = FakeSky()
    sky.noise = 3000.0
    with pytest.raises(CalibrationError, match="no usable guide star"):
        make(sky).calibrate()


def run_frames(g, frames, n):
    frames.wait(lambda f: f.frames() >= n)


def test_guiding_holds_a_drifting_star():
    drift = (0.25, -0.15)  # px/s: 58 px off after 200 s unguided
    sky = FakeSky(drift=drift)
    g = make(sky)
    ev = Frames()
    truth = {"lock": None, "errors": []}

    def true_error(event):  # runs in the guide thread, right after each measurement
        if event.kind == "star_selected" and g.state is not GuiderState.CALIBRATING:
            truth["lock"] = sky.offset().copy()
        elif event.kind == "frame":
            truth["errors"].append(np.hypot(*(sky.offset() - truth["lock"])))

    g.add_listener(true_error)
    g.add_listener(ev)
    g.start()  # calibrates first
    assert g.calibration is not None
    run_frames(g, ev, 150)
    g.stop()
    stats = g.stats
    assert stats.frames >= 150
    true_rms = float(np.sqrt(np.mean(np.square(truth["errors"]))))
    assert true_rms < 0.6 and stats.rms_px < 0.6
    assert stats.rms_px == pytest.approx(true_rms, abs=0.15)  # the guider's own figure is honest
    assert stats.summary()["rms_arcsec"] == pytest.approx(stats.rms_px * 1.5)
    assert g.state is GuiderState.IDLE
    kinds = ev.kinds()
    assert kinds.index("calibration_step") < kinds.index("calibrated") < kinds.index("started") < kinds.index("frame")
    assert kinds[-1] == "stopped"
    # the same sky unguided over the same time: the star walks far away
    unguided = math.hypot(*drift) * stats.frames * 1.0
    assert unguided > 20 * true_rms


def test_dither_moves_the_lock_and_settles():
    sky = FakeSky(drift=(0.1, 0.05))
    g = make(sky)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 10)
    before = sky.offset().copy()
    result = g.dither(4.0, ra_only=False, settle=SettleSettings(pixels=0.8, time=5, timeout=60))
    assert result.settled, result
    assert 5 <= result.seconds < 40
    shift = np.hypot(result.dx, result.dy)
    assert shift > 0.5
    # the stars really moved by the dither offset (within guiding noise + 1 frame of drift)
    moved = sky.offset() - before
    assert np.hypot(moved[0] - result.dx, moved[1] - result.dy) < 1.0
    assert "dither" in ev.kinds() and "settled" in ev.kinds()
    ra_only = g.dither(3.0, ra_only=True, settle=SettleSettings(pixels=0.8, time=3, timeout=60))
    ra, dec = g.calibration.to_mount(ra_only.dx, ra_only.dy)
    assert abs(dec) < 1e-6 and ra_only.settled
    g.stop()


def test_settle_times_out_when_the_star_cannot_get_there():
    sky = FakeSky()
    g = make(sky, max_pulse_ms=20, min_pulse_ms=5)  # tiny pulses: 10 px takes far longer than the timeout
    g.start()
    result = g.dither(10.0, settle=SettleSettings(pixels=0.5, time=2, timeout=8))
    assert not result.settled and result.reason == "timeout"
    assert result.seconds == pytest.approx(8, abs=2.5)
    g.stop()


def test_star_lost_is_reported_and_found_again():
    sky = FakeSky()
    g = make(sky, lost_after_frames=3, reacquire_after_frames=0)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 5)
    sky.noise = 4000.0  # noise far above the stars
    ev.wait(lambda f: "star_lost" in f.kinds())
    assert g.state is GuiderState.LOST and g.star_lost_count == 1
    n_pulses = len(sky.pulses)
    sky.noise = 5.0
    ev.wait(lambda f: "star_found" in f.kinds())
    g.stop()
    lost_at = ev.kinds().index("star_lost")
    found_at = ev.kinds().index("star_found")
    assert "frame" not in ev.kinds()[lost_at:found_at]  # no corrections while blind
    assert len(sky.pulses) >= n_pulses


def test_reacquires_a_new_star_after_long_loss():
    sky = FakeSky()
    g = make(sky, lost_after_frames=2, reacquire_after_frames=4)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 3)
    sky.mount = sky.mount + np.array([30.0, 0.0])  # the field jumps beyond the search radius
    ev.wait(lambda f: "reacquired" in f.kinds())
    n = ev.frames()
    ev.wait(lambda f: f.frames() >= n + 5)
    g.stop()
    assert ev.kinds().count("star_lost") == 1
    assert g.stats.frames > 0


def test_stop_and_restart_reacquires():
    sky = FakeSky()
    g = make(sky)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 3)
    g.stop()
    assert g.state is GuiderState.IDLE and not g.running
    calls = len(sky.pulses)
    sky.mount = sky.mount + np.array([5.0, -4.0])  # e.g. the focuser run shifted the image
    g.start()  # no recalibration: calibration is kept
    n = ev.frames()
    ev.wait(lambda f: f.frames() >= n + 10)
    g.stop()
    assert ev.kinds().count("calibrated") == 1
    # locked afresh where the star was, so no big correction back toward the old position
    assert all(ms < 300 for _, ms in sky.pulses[calls:])


def test_camera_failure_stops_the_loop_with_error():
    sky = FakeSky()
    g = make(sky)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 3)
    sky.fail_exposures = True
    ev.wait(lambda f: "error" in f.kinds())
    ev.wait(lambda f: "stopped" in f.kinds())
    assert g.state is GuiderState.ERROR and isinstance(g.last_error, DeviceError)
    with pytest.raises(GuideError, match="not guiding"):
        g.wait_settled()
    g.stop()
    assert g.state is GuiderState.ERROR


def test_a_few_failed_frames_are_ridden_out():
    sky = FakeSky()
    g = make(sky, exposure_retries=2)
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 3)
    sky.fail_next = 2
    ev.wait(lambda f: f.kinds().count("exposure_failed") == 2)
    n = ev.frames()
    ev.wait(lambda f: f.frames() >= n + 3)
    assert g.running and g.state is GuiderState.GUIDING
    g.stop()


def test_dither_requires_guiding():
    with pytest.raises(GuideError):
        make(FakeSky()).dither(3.0)


def test_a_failing_listener_does_not_stop_guiding():
    sky = FakeSky()
    g = make(sky)
    ev = Frames()

    def broken(event):
        raise RuntimeError("listener bug")

    g.add_listener(broken)
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 5)
    g.stop()
    assert g.state is GuiderState.IDLE


@pytest.mark.parametrize("mount_keeps_north", [True, False])
def test_after_a_meridian_flip_the_mirrored_calibration_guides(mount_keeps_north):
    """After the flip West pulses move the star the other way on the sensor; North ones too on some
    mounts (guider.flip_dec: true), not on others (false, the default: INDI's simulators)."""
    sky = FakeSky(drift=(0.2, -0.1))
    g = make(sky, flip_dec=mount_keeps_north)
    cal = g.calibrate()
    sky.west = -sky.west
    if mount_keeps_north:
        sky.north = -sky.north
    g.after_meridian_flip()
    flipped = g.calibration
    assert math.cos(flipped.ra.angle - cal.ra.angle) == pytest.approx(-1.0, abs=1e-9)
    assert math.cos(flipped.dec.angle - cal.dec.angle) == pytest.approx(-1.0 if mount_keeps_north else 1.0, abs=1e-9)
    assert flipped.ra.rate == cal.ra.rate and flipped.step_ms == cal.step_ms
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 80)
    g.stop()
    assert "calibrated" not in ev.kinds() and "calibration_step" not in ev.kinds()  # no second calibration
    assert g.stats.rms_px < 0.6, g.stats.summary()


def test_after_a_meridian_flip_with_recalibrate_the_guider_calibrates_again():
    sky = FakeSky()
    g = make(sky)
    g.calibrate()
    g.after_meridian_flip(recalibrate=True)
    assert g.calibration is None
    ev = Frames()
    g.add_listener(ev)
    g.start()
    run_frames(g, ev, 3)
    g.stop()
    assert "calibrated" in ev.kinds()
