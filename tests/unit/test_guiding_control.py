"""Per-axis corrections: aggressiveness, hysteresis, min move, pulse limits, Dec modes, signs."""

import math

import pytest

from indisync.guiding.calibration import AxisCalibration, Calibration
from indisync.guiding.control import AxisController, GuideController, Pulse
from indisync.guiding.settings import GuiderSettings

# West moves the star +x at 0.01 px/ms, North moves it +y at 0.005 px/ms
CAL = Calibration(ra=AxisCalibration(0.0, 0.01, 8, 16), dec=AxisCalibration(math.pi / 2, 0.005, 8, 8), step_ms=500)


def test_axis_aggressiveness_and_min_move():
    ax = AxisController(aggressiveness=0.5, min_move=0.2)
    assert ax.correction(2.0) == pytest.approx(1.0)
    assert ax.correction(0.1) == 0.0
    assert ax.correction(-0.19) == 0.0
    assert ax.correction(-1.0) == pytest.approx(-0.5)


def test_hysteresis_blends_previous_correction():
    ax = AxisController(aggressiveness=1.0, min_move=0.0, hysteresis=0.25)
    first = ax.correction(2.0)
    assert first == pytest.approx(1.5)  # 0.75*2 + 0.25*0
    assert ax.correction(2.0) == pytest.approx(0.75 * 2 + 0.25 * 1.5)
    ax.reset()
    assert ax.correction(2.0) == pytest.approx(1.5)


def test_pulse_directions_and_lengths():
    c = GuideController(GuiderSettings(aggressiveness=1.0, dec_aggressiveness=1.0, hysteresis=0.0, min_move=0.1,
                                       drift_gain=0.0))
    # star 2 px along West (+x) of the lock -> East pulse of 2/0.01 = 200 ms; 1 px along North -> South 200 ms
    assert c.pulses(2.0, 1.0, CAL) == [Pulse("E", 200), Pulse("S", 200)]
    assert c.pulses(-0.5, -0.5, CAL) == [Pulse("W", 50), Pulse("N", 100)]
    assert c.pulses(0.05, -0.05, CAL) == []


def test_pulse_limits():
    s = GuiderSettings(aggressiveness=1.0, hysteresis=0.0, min_move=0.0, min_pulse_ms=30, max_pulse_ms=400,
                       drift_gain=0.0)
    c = GuideController(s)
    assert c.pulses(50.0, 0.0, CAL) == [Pulse("E", 400)]
    assert c.pulses(0.2, 0.0, CAL) == []  # 20 ms < min_pulse_ms


@pytest.mark.parametrize("mode,expected", [
    ("auto", [Pulse("S", 200), Pulse("N", 200)]),
    ("north", [Pulse("N", 200)]),
    ("south", [Pulse("S", 200)]),
    ("off", []),
])
def test_dec_modes(mode, expected):
    c = GuideController(GuiderSettings(dec_aggressiveness=1.0, min_move=0.0, dec_mode=mode))
    got = c.pulses(0.0, 1.0, CAL) + c.pulses(0.0, -1.0, CAL)
    assert got == expected


def _guide_a_drift(settings, drift_px_per_frame, frames=120, seeing=0.0, seed=0):
    """A star that drifts along RA by a fixed amount each frame, guided by ``settings``: the offsets
    the guider measures (its last 60 frames: after any start-up transient)."""
    import random
    rng = random.Random(seed)
    c = GuideController(settings)
    true, seen = 0.0, []
    for _ in range(frames):
        measured = true + rng.gauss(0.0, seeing)
        seen.append(measured)
        for p in c.pulses(measured, 0.0, CAL):
            true += (-1 if p.direction == "E" else 1) * p.ms * CAL.ra.rate
        true += drift_px_per_frame
    tail = seen[-60:]
    return sum(tail) / len(tail), math.sqrt(sum(v * v for v in tail) / len(tail))


@pytest.mark.parametrize("drift", [0.32, -0.32, 0.1])
def test_a_steady_drift_is_cancelled_not_trailed(drift):
    # 0.32 px per frame: the Guide Simulator's periodic error (0.23 px/s) at one frame per 1.4 s.
    # PHD2's plain hysteresis guider (drift_gain 0, as before this fix) trails it by ~drift/aggressiveness:
    mean_p, rms_p = _guide_a_drift(GuiderSettings(drift_gain=0.0), drift)
    assert abs(mean_p) > 0.8 * abs(drift) / 0.7
    # with the default drift term the offset goes to zero
    mean_i, rms_i = _guide_a_drift(GuiderSettings(), drift)
    assert abs(mean_i) < 0.05 and rms_i < 0.1 < rms_p


def test_the_drift_term_adds_little_noise_and_no_windup():
    # seeing noise only, no drift: the drift term must not make it worse than the plain guider by much
    _, plain = _guide_a_drift(GuiderSettings(drift_gain=0.0), 0.0, seeing=0.3, frames=400)
    _, with_drift = _guide_a_drift(GuiderSettings(), 0.0, seeing=0.3, frames=400)
    assert with_drift < 1.25 * plain
    # a star that cannot be brought back (pulses do nothing): the drift term is clamped at one max pulse
    c = GuideController(GuiderSettings(max_pulse_ms=500))
    for _ in range(1000):
        c.pulses(5.0, 0.0, CAL)
    assert c.ra.drift == pytest.approx(500 * CAL.ra.rate)
    c.reset(keep_drift=True)
    assert c.ra.drift == pytest.approx(500 * CAL.ra.rate)  # a dither keeps what the sky does
    c.reset()
    assert c.ra.drift == 0.0  # a new lock starts afresh
