"""The dark library (issue 17) through the real night, on the INDI 1.9.9 simulators: a master (with the
Weather and Dome Simulators) and a slave, each an `indisync run` process with its own indiserver.

The site is chosen from the clock so that it is local midnight now. The night cools to -3 °C, takes
2 s lights, then it rains: the night parks the mount and closes the dome (parked), and with
``darks.when: [rain]`` starts the dark library under the closed dome. What must hold, read back from
the files (never through the code under test):

- every node's darks match the night's lights: EXPTIME 2 s, IMAGETYP 'Dark Frame', SET-TEMP the
  night's setpoint and CCD-TEMP within camera.cooling.tolerance of it, darks.count (3) of them, and a
  bias set (IMAGETYP 'Bias Frame') as well;
- a second request (`indisync darks`) within darks.max_age_days takes none: every set skipped, no new
  file; `indisync stop` then ends the night.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest

from indisync.config import MqttConfig
from indisync.sim.calib_rig import calib_frames, calib_paths, stray_calib_files
from indisync.sim.indi import set_precipitation
from indisync.sim.night import (DOME, LATITUDE, WEATHER, longitude_for_local_hour, prepare_dome, prepare_mount,
                                shutter_closed, target_east_high)
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

SETPOINT, TOLERANCE, EXPOSURE, COUNT = -3.0, 0.5, 2.0, 3
NODES = ("master", "slave1")


def cli(rig, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indisync.cli", *args, "--config",
                           str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=timeout)


def make_rig(tmp_path) -> tuple[SimRig, float, float]:
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    night = {"min_altitude": 30, "cool": True, "park_at_end": True, "warm_at_end": False}
    darks = {"enabled": True, "when": ["rain"], "count": COUNT, "bias": True, "max_age_days": 30, "cool_wait_s": 60}
    cooling = {"setpoint": SETPOINT, "tolerance": TOLERANCE, "timeout": 90}
    rig = SimRig(
        slaves=1, time_factor=1.0, workdir=tmp_path / "rig",
        master_drivers=("indi_simulator_weather", "indi_simulator_dome"),
        node_sections={"camera": {"cooling": cooling}, "darks": darks},
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0}, "night": night,
                         "indi": {"weather": WEATHER, "dome": DOME},
                         "safety": {"safe_for": 600.0, "stale_after": 10.0, "poll": 0.2}},
        master_section={"target": {"name": "DARKS", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": EXPOSURE,
                                                "repeat": 50}]},
                        "refocus": {"after_batch": False}},
        slave_section={"filters": ["Red"], "exposure": EXPOSURE},
    )
    return rig, lon, dec


@pytest.mark.timeout(300)
def test_darks_while_parked_for_rain_match_the_night_and_a_second_request_takes_none(tmp_path):
    rig, lon, dec = make_rig(tmp_path)
    with rig, contextlib.ExitStack() as stack:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec, weather=True)
        prepare_dome(indi)
        wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
        stack.callback(wire.close)

        def wait_for(predicate, timeout, what, step=0.2):
            return wait_until(predicate, timeout, what, step, detail=rig.logs)

        def lights(node):
            return [env.payload for _, env in wire.envelopes("exposure_done", node) if env.payload["status"] == "ok"]

        def states():
            return [env.payload["to"] for _, env in wire.envelopes("night_state", "master")]

        def dark_sets(node):
            return [env.payload for _, env in wire.envelopes("calib_set_done", node)
                    if env.payload.get("kind") in ("dark", "bias")]

        rig.start_slaves()
        rig.start_node("master")
        wait_for(lambda: all(len(lights(n)) >= 2 for n in NODES), 150, "two lights on every node")
        set_precipitation(indi.host, indi.port, 10)
        wait_for(lambda: "parked" in states(), 60, "the night parked for the rain")
        wait_for(lambda: shutter_closed(indi), 30, "the dome closed")
        wait_for(lambda: all({p["kind"] for p in dark_sets(n) if p["status"] == "taken"} == {"dark", "bias"}
                             for n in NODES), 120, "darks and bias taken on every node while parked")
        assert states()[-1] == "parked", states()

        night_exposures = {p["duration"] for n in NODES for p in lights(n)}
        assert night_exposures == {EXPOSURE}, night_exposures
        for node in NODES:
            darks, bias = calib_frames(rig, node, "DARK"), calib_frames(rig, node, "BIAS")
            assert len(darks) == COUNT and len(bias) == COUNT, (node, calib_paths(rig, node), rig.logs())
            for frame in darks:
                assert frame.imagetyp == "Dark Frame" and frame.exposure == pytest.approx(EXPOSURE), frame
                assert frame.set_temp == pytest.approx(SETPOINT), frame
                assert abs(frame.ccd_temp - SETPOINT) <= TOLERANCE, frame
                assert frame.path.name.startswith("DARK_1_2s_"), frame.path
                assert frame.mean < 100, frame  # dark: no sky (the simulator's dark level ~4.5 ADU)
            for frame in bias:
                assert frame.imagetyp == "Bias Frame" and frame.exposure < 0.5, frame
            for p in dark_sets(node):
                assert p["status"] == "taken" and p.get("setpoint") == pytest.approx(SETPOINT), p

        # a second request within max_age takes none
        before = {n: calib_paths(rig, n) for n in NODES}
        done = cli(rig, "darks", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        answer = json.loads(done.stdout)
        for node in NODES:
            sets = answer["nodes"][node]["sets"]
            assert sets and all(s["status"] == "skipped" for s in sets), (node, sets)
            assert calib_paths(rig, node) == before[node]
        assert not stray_calib_files(rig), stray_calib_files(rig)

        set_precipitation(indi.host, indi.port, 0)
        stopped = cli(rig, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert rig.wait_node("master", 60) == 0, rig.logs()
