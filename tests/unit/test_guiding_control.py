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
    c = GuideController(GuiderSettings(aggressiveness=1.0, dec_aggressiveness=1.0, hysteresis=0.0, min_move=0.1))
    # star 2 px along West (+x) of the lock -> East pulse of 2/0.01 = 200 ms; 1 px along North -> South 200 ms
    assert c.pulses(2.0, 1.0, CAL) == [Pulse("E", 200), Pulse("S", 200)]
    assert c.pulses(-0.5, -0.5, CAL) == [Pulse("W", 50), Pulse("N", 100)]
    assert c.pulses(0.05, -0.05, CAL) == []


def test_pulse_limits():
    s = GuiderSettings(aggressiveness=1.0, hysteresis=0.0, min_move=0.0, min_pulse_ms=30, max_pulse_ms=400)
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
