"""The autofocus routine over fake devices driven by an optical model of the INDI CCD simulator.

The fakes are real in the sense that matters: the camera's frame depends only on where the focuser
actually is, and the routine sees focus only through ``measure``.
"""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from indisync.focus.fit import FocusPoint
from indisync.focus.interfaces import FocusCamera, FocusFocuser
from indisync.focus.routine import plan_extension, plan_sweep, run_autofocus
from indisync.focus.settings import FocusSettings

SCALE = 5.2 / 900 * 206.3  # arcsec per pixel of the simulator


def w5(seeing, fmax=10000.0):
    """Half-width (steps) of the zone where FWHM <= 1.05 x best, for the simulator's model."""
    return fmax / 20 * math.sqrt(0.05 * seeing / 0.5625)


class FakeFocuser:
    def __init__(self, position, lo=0, hi=100000, fail_on_move=None):
        self._position = position
        self.min_position, self.max_position = lo, hi
        self.moves = []  # (from, to)
        self.fail_on_move = fail_on_move  # raise on this move number (1-based), once

    @property
    def position(self):
        return self._position

    def move_to(self, position):
        self.moves.append((self._position, position))
        if self.fail_on_move is not None and len(self.moves) == self.fail_on_move:
            self._position = (self._position + position) // 2  # stopped half way
            raise TimeoutError("focuser move timed out")
        if not self.min_position <= position <= self.max_position:
            raise ValueError(f"move to {position} outside {self.min_position}..{self.max_position}")
        self._position = position
        return position


@dataclass
class Frame:
    position: int
    arrived_moving_up: bool


class FakeCamera:
    def __init__(self, focuser):
        self.focuser = focuser
        self.frames = []

    def expose(self, seconds, binning=1):
        moves = self.focuser.moves
        up = bool(moves) and moves[-1][1] > moves[-1][0]
        frame = Frame(self.focuser.position, up)
        self.frames.append(frame)
        return frame


@dataclass
class Measurement:
    star_count: int
    median_hfr: float
    hfr_spread: float


def _sim_hfr(position, focus, seeing, fmax):
    """The INDI CCD simulator's focus law (FWHM in arcsec, as HFR in px)."""
    return (0.5625 * (20.0 * (position - focus) / fmax) ** 2 + seeing) / 2 / SCALE


class SkyModel:
    """Median HFR of ~40 stars with the simulator's focus law and 2 % frame noise; knobs for trouble."""

    def __init__(self, focus, seeing=3.0, noise=0.02, stars=40, seed=0):
        self.focus, self.seeing, self.noise, self.stars = focus, seeing, noise, stars
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def hfr(self, position):
        fwhm = 0.5625 * (20.0 * (position - self.focus) / 10000.0) ** 2 + self.seeing
        return fwhm / 2 / SCALE

    def __call__(self, frame):
        self.calls += 1
        if self.stars == 0:
            return Measurement(0, math.nan, math.nan)
        h = self.hfr(frame.position) * (1 + self.noise * self.rng.standard_normal())
        return Measurement(self.stars, h, 0.15 * h)


def settings(**kw):
    kw.setdefault("output_dir", None)
    return FocusSettings(**kw)


def rig(start, focus, **sky):
    focuser = FakeFocuser(start)
    return FakeCamera(focuser), focuser, SkyModel(focus, **sky)


def test_fakes_satisfy_the_interfaces():
    cam, foc, _ = rig(0, 0)
    assert isinstance(cam, FocusCamera) and isinstance(foc, FocusFocuser)


def test_focus_found_from_a_nearby_start():
    cam, foc, sky = rig(50000, 50600)
    events = []
    r = run_autofocus(cam, foc, sky, settings(), progress=events.append)
    assert r.ok, r.reason
    assert abs(r.position - 50600) < 0.25 * w5(3.0)
    assert foc.position == r.position
    assert r.frames == 10 and len(r.points) == 9 and r.extensions == 0
    assert r.hfr == pytest.approx(sky.hfr(50600), rel=0.1)
    assert [e.phase for e in events] == ["sweep"] * 9 + ["check", "done"]
    assert [e.frame for e in events[:10]] == list(range(1, 11))
    summary = r.summary()
    assert summary["status"] == "ok" and summary["reason"] is None
    assert summary["start_position"] == 50000 and len(summary["points"]) == 9
    json.dumps(summary)


def test_every_frame_is_taken_after_moving_up_and_backlash_is_taken_out():
    cam, foc, sky = rig(30000, 29500)
    r = run_autofocus(cam, foc, sky, settings(backlash=150))
    assert r.ok, r.reason
    assert all(f.arrived_moving_up for f in cam.frames)
    # the check move goes down: it must overshoot below the target first
    target = r.position
    assert (foc.moves[-2][1], foc.moves[-1][1]) == (target - 150, target)


def test_approach_down_is_honoured():
    cam, foc, sky = rig(30000, 30300)
    r = run_autofocus(cam, foc, sky, settings(approach="down"))
    assert r.ok, r.reason
    assert not any(f.arrived_moving_up for f in cam.frames)


def test_defaults_meet_the_accuracy_targets_in_simulation():
    """Starts 200-1500 steps from focus, seeing 2-5": median |error| <= 0.25 w5, 95 % <= 0.5 w5,
    typically 9 sweep frames + 1 check frame. Guards the default step/points/extension choice."""
    rng = np.random.default_rng(42)
    errors, frames = [], []
    for k in range(60):
        seeing = rng.uniform(2, 5)
        offset = rng.uniform(200, 1500) * rng.choice([-1, 1])
        cam, foc, sky = rig(40000, int(40000 + offset), seeing=seeing, seed=k)
        r = run_autofocus(cam, foc, sky, settings())
        assert r.ok, (offset, r.reason)
        errors.append(abs(r.position - sky.focus) / w5(seeing))
        frames.append(r.frames)
    assert np.median(errors) <= 0.25
    assert np.percentile(errors, 95) <= 0.5
    assert np.median(frames) == 10


def test_clouds_fail_early_and_return_to_start():
    cam, foc, sky = rig(42000, 42300, stars=0)
    events = []
    r = run_autofocus(cam, foc, sky, settings(), progress=events.append)
    assert r.status == "failed" and "too few stars" in r.reason
    assert foc.position == 42000 and r.position == 42000 and r.restored
    # 9 points, 5 needed: after 5 starless frames success is impossible; the 6th was already exposed
    # while the 5th was measured (the pipeline), so 6 frames were taken
    assert r.frames == 6
    assert events[-1].phase == "failed" and events[-1].message == r.reason
    assert r.summary()["hfr"] is None


def test_flat_curve_fails_without_wandering():
    cam, foc, sky = rig(42000, 42000)
    sky.hfr = lambda position: 2.0  # focus makes no difference: not a V
    r = run_autofocus(cam, foc, sky, settings())
    assert r.status == "failed"
    assert "no trusted fit" in r.reason or "HFR stopped changing" in r.reason, r.reason
    # a flat sweep may be a V too shallow for the step: it is widened (x2, x4), at most
    # max_extensions times, reusing the positions already taken; noise that looks like a slope starts a
    # coarse search, which gives up after 3 level frames
    assert r.frames <= 9 + 4 + 4 + 3 and r.extensions == 0
    # bounded: the widest sweep (±6400) plus a search of 3 strides from its step (≤ 1600·(2+4+8))
    assert max(abs(to - 42000) for _, to in foc.moves) <= 6400 + 1600 * 14
    assert foc.position == 42000


def test_minimum_beyond_the_edge_extends_then_succeeds():
    cam, foc, sky = rig(40000, 41900)
    events = []
    r = run_autofocus(cam, foc, sky, settings(), progress=events.append)
    assert r.ok, r.reason
    assert r.extensions >= 1 and "extend" in [e.phase for e in events]
    assert max(p.position for p in r.points) > 41600
    assert abs(r.position - 41900) < 0.5 * w5(3.0)
    assert all(f.arrived_moving_up for f in cam.frames)


def test_minimum_beyond_the_extensions_is_found_by_the_coarse_search():
    """Today's extension limit no longer ends the run: the coarse search walks on and brackets focus."""
    cam, foc, sky = rig(40000, 48000)
    events = []
    r = run_autofocus(cam, foc, sky, settings(max_extensions=2, extension_points=3), progress=events.append)
    assert r.ok, r.reason
    assert abs(r.position - 48000) < 0.25 * w5(3.0)
    assert "search" in [e.phase for e in events] and r.frames <= 30
    assert all(f.arrived_moving_up for f in cam.frames)


def test_max_frames_bounds_the_search_and_restores():
    cam, foc, sky = rig(40000, 70000, seeing=3.5)
    sky.hfr = lambda position: _sim_hfr(position, 70000, 3.5, 100000.0)
    r = run_autofocus(cam, foc, sky, settings(max_frames=14))
    assert r.status == "failed" and "focus.max_frames=14" in r.reason
    assert r.frames <= 14
    assert foc.position == 40000 and r.restored


def test_minimum_at_the_focuser_limit_fails():
    focuser = FakeFocuser(1000, lo=0, hi=100000)
    sky = SkyModel(-3000)
    r = run_autofocus(FakeCamera(focuser), focuser, sky, settings())
    assert r.status == "failed" and "end of the focuser's travel" in r.reason
    assert focuser.position == 1000
    assert min(to for _, to in focuser.moves) >= 0


def test_focus_near_the_focuser_limit_is_accepted_after_the_check():
    focuser = FakeFocuser(1000, lo=0, hi=100000)
    sky = SkyModel(150)
    r = run_autofocus(FakeCamera(focuser), focuser, sky, settings())
    assert r.ok, r.reason
    assert abs(r.position - 150) < 0.5 * w5(3.0) and focuser.position == r.position
    assert min(to for _, to in focuser.moves) == 0


def test_failure_before_any_move_does_not_move():
    cam, foc, sky = rig(40000, 40000)
    r = run_autofocus(cam, foc, sky, settings(), should_stop=lambda: True)
    assert r.status == "failed" and r.frames == 0 and foc.moves == []


def test_device_error_mid_sweep_restores_the_start():
    focuser = FakeFocuser(40000, fail_on_move=5)
    sky = SkyModel(40200)
    r = run_autofocus(FakeCamera(focuser), focuser, sky, settings())
    assert r.status == "failed" and "TimeoutError" in r.reason
    assert focuser.position == 40000 and r.restored


def test_restore_failure_is_reported():
    class Stuck(FakeFocuser):
        def move_to(self, position):
            if len(self.moves) >= 3:
                self.moves.append((self._position, position))
                raise ConnectionError("lost the focuser")
            return super().move_to(position)

    focuser = Stuck(40000)
    r = run_autofocus(FakeCamera(focuser), focuser, SkyModel(40000), settings())
    assert r.status == "failed" and not r.restored
    assert "could not return to the start position 40000" in r.reason


def test_camera_and_measure_errors_restore():
    cam, foc, sky = rig(40000, 40000)

    def broken(frame):
        if sky.calls >= 3:
            raise RuntimeError("no image data")
        return sky(frame)

    r = run_autofocus(cam, foc, broken, settings())
    assert r.status == "failed" and "no image data" in r.reason
    assert foc.position == 40000


def test_timeout_fails_and_restores():
    cam, foc, sky = rig(40000, 40000)
    now = [0.0]

    def clock():
        return now[0]

    def measure(frame):
        now[0] += 30.0  # each frame costs 30 s
        return sky(frame)

    r = run_autofocus(cam, foc, measure, settings(timeout=100), clock=clock)
    assert r.status == "failed" and "timed out" in r.reason
    assert r.frames == 4 and foc.position == 40000


def test_stop_request_restores():
    cam, foc, sky = rig(40000, 40000)
    r = run_autofocus(cam, foc, sky, settings(), should_stop=lambda: sky.calls >= 2)
    assert r.status == "failed" and r.reason == "stopped on request"
    assert foc.position == 40000


def test_keyboard_interrupt_restores_then_propagates():
    cam, foc, sky = rig(40000, 40000)

    def measure(frame):
        if sky.calls >= 2:
            raise KeyboardInterrupt
        return sky(frame)

    with pytest.raises(KeyboardInterrupt):
        run_autofocus(cam, foc, measure, settings())
    assert foc.position == 40000


def test_check_frame_disagreeing_with_the_fit_fails():
    cam, foc, sky = rig(40000, 40100)

    def measure(frame):
        m = sky(frame)
        if sky.calls == 10:  # the check frame: seeing suddenly doubled
            return Measurement(m.star_count, m.median_hfr * 2, m.hfr_spread)
        return m

    r = run_autofocus(cam, foc, measure, settings())
    assert r.status == "failed" and "check frame HFR" in r.reason
    assert foc.position == 40000 and r.frames == 10


def test_broken_progress_callback_does_not_break_focus():
    cam, foc, sky = rig(40000, 40300)

    def progress(event):
        raise RuntimeError("mqtt down")

    assert run_autofocus(cam, foc, sky, settings(), progress=progress).ok


def test_sweep_planning_respects_limits_and_direction():
    s = settings()
    assert plan_sweep(5000, s, 0, 100000) == list(range(3400, 6601, 400))
    assert plan_sweep(500, s, 0, 100000) == list(range(0, 3201, 400))
    assert plan_sweep(99900, s, 0, 100000) == list(range(96800, 100001, 400))
    assert plan_sweep(500, s, 0, 2000) == [0, 400, 800, 1200, 1600, 2000]
    assert plan_sweep(5000, settings(approach="down"), 0, 100000) == list(range(6600, 3399, -400))
    pts = [FocusPoint(p, 1.0, 0.1, 10) for p in range(3400, 6601, 400)]
    assert plan_extension(pts, "high", s, 0, 7500) == [7000, 7400]
    assert plan_extension(pts, "low", s, 0, 100000) == [2600, 3000]
    assert plan_extension(pts, "low", settings(extension_points=3, approach="down"), 0, 100000) == [3000, 2600, 2200]


def test_record_png_and_json(tmp_path):
    cam, foc, sky = rig(40000, 40300)
    r = run_autofocus(cam, foc, sky, settings(output_dir=str(tmp_path)), metadata={"node": "ota1", "filter": "L"})
    assert r.ok
    assert r.plot.endswith(".png") and r.record.endswith(".json")
    with open(r.plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    record = json.loads(open(r.record).read())
    assert record["status"] == "ok" and record["position"] == r.position
    assert record["metadata"] == {"node": "ota1", "filter": "L"}
    assert record["fit"]["chosen"] == r.model
    assert len(record["sweep"]) == 9 and record["check"]["position"] == r.position
    assert "ota1_L_" in r.plot


def test_record_of_a_failed_run(tmp_path):
    cam, foc, sky = rig(40000, 40000, stars=0)
    r = run_autofocus(cam, foc, sky, settings(output_dir=str(tmp_path)))
    assert r.status == "failed" and r.plot and r.record
    record = json.loads(open(r.record).read())
    assert record["status"] == "failed" and record["reason"] == r.reason and record["restored"] is True


# ------------------------------------------------------------------------- far from focus (issue 18)

class FarSky(SkyModel):
    """The simulator's defaults (SIM_FOCUS_MAX 100000, seeing 3.5: a very shallow curve), and stars
    too blurred to measure (fewer than min_stars) where the FWHM passes ``blur_limit`` arcsec."""

    def __init__(self, focus, seeing=3.5, fmax=100000.0, blur_limit=None, **kw):
        super().__init__(focus, seeing=seeing, **kw)
        self.fmax, self.blur_limit = fmax, blur_limit

    def hfr(self, position):
        return _sim_hfr(position, self.focus, self.seeing, self.fmax)

    def __call__(self, frame):
        if self.blur_limit is not None and self.hfr(frame.position) * 2 * SCALE > self.blur_limit:
            self.calls += 1
            return Measurement(2, math.nan, math.nan)  # a donut or two: too few stars
        return super().__call__(frame)


def test_far_start_with_the_simulator_defaults_meets_the_goal():
    """From the simulator's defaults (focuser 50000, focus 36700, 13,300 steps off): within 0.25 w5
    of the truth in at most 30 frames, on every one of 20 noisy skies."""
    width = w5(3.5, 100000.0)  # ~2,800 steps
    for seed in range(20):
        focuser = FakeFocuser(50000)
        cam, sky = FakeCamera(focuser), FarSky(36700, seed=seed)
        events = []
        r = run_autofocus(cam, focuser, sky, settings(), progress=events.append)
        assert r.ok, (seed, r.reason)
        assert abs(r.position - 36700) <= 0.25 * width, (seed, r.position)
        assert r.frames <= 30 and focuser.position == r.position
        assert "search" in [e.phase for e in events]
        assert all(f.arrived_moving_up for f in cam.frames)
        assert [e.frame for e in events if e.phase not in ("done", "failed")] == list(range(1, r.frames + 1))


def test_far_start_from_the_other_side():
    focuser = FakeFocuser(23000)
    r = run_autofocus(FakeCamera(focuser), focuser, FarSky(36700, seed=3), settings())
    assert r.ok, r.reason
    assert abs(r.position - 36700) <= 0.25 * w5(3.5, 100000.0) and r.frames <= 30


def test_frames_too_blurred_to_measure_count_as_far():
    """Start where the low end of the sweep has too few stars: the walk goes the way HFR falls (up);
    the walk's first frame past focus is too blurred again, and that brackets the minimum. (Five or
    more starless frames at the start of a sweep still end the run as clouds: focus.fit.min_points.)"""
    sky = FarSky(46000, fmax=10000.0, seeing=3.0, blur_limit=12.0)
    d_blur = 10000 / 20 * math.sqrt((12.0 - 3.0) / 0.5625)  # 2000 steps from focus
    start = 46000 - int(d_blur) + 700  # the sweep's 3 lowest frames beyond the blur limit
    focuser = FakeFocuser(start)
    events = []
    r = run_autofocus(FakeCamera(focuser), focuser, sky, settings(), progress=events.append)
    assert r.ok, r.reason
    sweep = [e for e in events if e.phase == "sweep"][:9]
    assert any(e.hfr is None for e in sweep)  # the start really was in the blurred zone
    assert abs(r.position - 46000) <= 0.5 * w5(3.0)
    assert r.frames <= 30


def test_walk_stops_at_the_focuser_limit():
    focuser = FakeFocuser(9000, lo=0, hi=100000)
    sky = FarSky(-20000, seeing=3.5)
    r = run_autofocus(FakeCamera(focuser), focuser, sky, settings())
    assert r.status == "failed" and "end of the focuser's travel (0..100000)" in r.reason
    assert min(to for _, to in focuser.moves) == 0  # walked to the limit, never beyond
    assert focuser.position == 9000 and r.frames <= 30


def test_shallow_curve_at_focus_is_widened_not_failed():
    """At focus on the simulator's shallow default curve a 400-step sweep can be too flat to trust: the
    run sweeps wider instead of failing (a newcomer's second `indisync focus`)."""
    ok = 0
    for seed in range(10):
        focuser = FakeFocuser(36700)
        # 0.4 % per-frame noise: the simulator's median HFR of ~130 stars (1.45-1.49 px over such a sweep)
        r = run_autofocus(FakeCamera(focuser), focuser, FarSky(36700, seed=seed, noise=0.004), settings())
        assert r.ok, (seed, r.reason)
        assert abs(r.position - 36700) <= 0.25 * w5(3.5, 100000.0)
        ok += r.frames <= 30
    assert ok == 10


# ------------------------------------------------------------------------- the pipeline (issue 18)

class Overlap:
    """Camera + measure that record whether frame n's measurement ran while frame n+1 was exposed."""

    def __init__(self, focuser, sky):
        import threading

        self.focuser, self.sky = focuser, sky
        self.started = []  # one Event per frame: set when its exposure starts
        self.overlapped = []
        self.lock = threading.Lock()
        self.events = threading

    def expose(self, seconds, binning=1):
        with self.lock:
            self.started.append(self.events.Event())
            self.started[-1].set()
        return Frame(self.focuser.position, True)

    def measure(self, frame):
        with self.lock:
            n = len(self.started)  # frame n (1-based) is being measured
            nxt = None
        # wait (bounded) for the next exposure to start: it does only if the run overlaps
        import time

        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.started) > n:
                    nxt = True
                    break
            time.sleep(0.005)
        self.overlapped.append(bool(nxt))
        return self.sky(frame)


def test_measurement_overlaps_the_next_move_and_exposure():
    focuser = FakeFocuser(50000)
    sky = SkyModel(50300)
    o = Overlap(focuser, sky)
    r = run_autofocus(o, focuser, o.measure, settings())
    assert r.ok, r.reason and r.frames == 10
    # frames 1-8 of the sweep were measured while the next one was exposed; frame 9 (the fit needs it)
    # and the check frame could not be
    assert o.overlapped == [True] * 8 + [False, False]


def test_each_point_has_the_position_its_frame_was_taken_at():
    cam, foc, sky = rig(50000, 36700, seeing=3.5)
    sky.hfr = lambda position: _sim_hfr(position, 36700, 3.5, 100000.0)
    r = run_autofocus(cam, foc, sky, settings())
    assert r.ok, r.reason
    taken = [f.position for f in cam.frames]
    assert [p.position for p in r.points] == taken[:-1] and r.check.position == taken[-1]
    for p in r.points:  # the HFR belongs to that position (2 % noise)
        assert p.hfr == pytest.approx(sky.hfr(p.position), rel=0.1)


def test_stop_while_a_frame_is_measured_restores():
    import threading

    cam, foc, sky = rig(40000, 40000)
    release = threading.Event()
    stop = threading.Event()

    def slow(frame):
        if sky.calls == 2:
            stop.set()
            release.wait(5)  # bounded: the run must not wait for this
        return sky(frame)

    r = run_autofocus(cam, foc, slow, settings(), should_stop=stop.is_set)
    release.set()
    assert r.status == "failed" and r.reason == "stopped on request"
    assert foc.position == 40000 and r.restored
