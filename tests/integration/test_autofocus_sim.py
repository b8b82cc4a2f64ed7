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
from indisync.sim.indi import set_number

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
