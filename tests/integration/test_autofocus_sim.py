"""`indisync focus` against the real INDI simulators: it must find a focus it was never told about,
and in clouds fail cleanly with the focuser back where it started.

The test (not the code under test) sets the simulator's truth through SIM_FOCUSING.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from indisync.config import IndiConfig
from indisync.devices.session import open_devices
from indisync.sim.indi import get_numbers, set_number

pytestmark = pytest.mark.integration

FOCUS_MAX = 10000.0  # SIM_FOCUS_MAX: the simulator's blur scale, as in the benchmark
SEEING = 3.0


def w5(seeing: float) -> float:
    """Half-width (steps) of the zone where the simulator's FWHM stays within 5 % of its best."""
    return FOCUS_MAX / 20 * math.sqrt(0.05 * seeing / 0.5625)


def focuser_position(server) -> int:
    with open_devices(IndiConfig(host=server.host, port=server.port), need=("focuser",), want=()) as dev:
        return dev.focuser.position


def run_focus(server, tmp_path: Path, timeout: float = 300):
    cmd = [sys.executable, "-m", "indisync.cli", "focus", "--indi", server.address, "--json",
           "--output-dir", str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def prepare(server, truth_offset: float):
    set_number(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS", {"SIM_TIME_FACTOR": 0.1})
    start = focuser_position(server)
    truth = start + truth_offset
    set_number(server.host, server.port, "CCD Simulator", "SIM_FOCUSING",
               {"SIM_FOCUS_POSITION": truth, "SIM_FOCUS_MAX": FOCUS_MAX, "SIM_SEEING": SEEING})
    return start, truth


def test_autofocus_finds_the_simulator_focus(indi_sim, tmp_path):
    start, truth = prepare(indi_sim, 800)
    proc = run_focus(indi_sim, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["reason"] is None
    assert result["start_position"] == start
    assert abs(result["position"] - truth) <= 0.5 * w5(SEEING), result
    assert focuser_position(indi_sim) == result["position"]
    assert result["frames"] == len(result["points"]) + 1
    assert result["model"] in ("parabola", "hyperbola", "v")
    hfrs = [h for _, h, _ in result["points"]]
    assert result["hfr"] <= min(hfrs) * 1.1  # the check frame is as sharp as the sharpest sweep frame
    assert Path(result["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert "frame  1  sweep" in proc.stderr  # progress went to stderr, JSON alone on stdout's last line


def test_autofocus_in_clouds_fails_and_returns_to_start(indi_sim, tmp_path):
    start, _ = prepare(indi_sim, 300)
    # clouds: read noise far above the stars' peaks
    set_number(indi_sim.host, indi_sim.port, "CCD Simulator", "SIMULATOR_SETTINGS", {"SIM_NOISE": 6000})
    proc = run_focus(indi_sim, tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "failed" and result["reason"]
    assert result["position"] == start
    assert focuser_position(indi_sim) == start


@pytest.mark.timeout(280)
def test_autofocus_from_the_simulator_defaults_far_from_focus(indi_sim, tmp_path):
    """README's newcomer path: `indisync focus` against untouched simulators. The CCD Simulator's
    focus (36,700) is 13,300 steps from the focuser's (50,000) on a very shallow curve (SIM_FOCUS_MAX
    100,000, seeing 3.5): the coarse search must find it, within 0.25 w5 in at most 30 frames.
    Only the time factor is changed (2 s frames take 0.02 s); the truth is read back, never set."""
    set_number(indi_sim.host, indi_sim.port, "CCD Simulator", "SIMULATOR_SETTINGS", {"SIM_TIME_FACTOR": 0.01})
    truth = get_numbers(indi_sim.host, indi_sim.port, "CCD Simulator", "SIM_FOCUSING")
    start = focuser_position(indi_sim)
    assert (start, truth["SIM_FOCUS_POSITION"], truth["SIM_FOCUS_MAX"]) == (50000, 36700, 100000)
    width = truth["SIM_FOCUS_MAX"] / 20 * math.sqrt(0.05 * truth["SIM_SEEING"] / 0.5625)  # w5, ~2,800 steps
    proc = run_focus(indi_sim, tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok", result["reason"]
    assert abs(result["position"] - truth["SIM_FOCUS_POSITION"]) <= 0.25 * width, result
    assert result["frames"] <= 30 and result["frames"] == len(result["points"]) + 1
    assert focuser_position(indi_sim) == result["position"]
    assert " search " in proc.stderr  # it got there by the coarse search
