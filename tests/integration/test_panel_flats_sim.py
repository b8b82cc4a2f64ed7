"""Panel flats on demand (issue 17, `indisync flats --panel`) on the INDI 1.9.9 simulators: a master
with a Light Panel Simulator (indi.light_panel) and a slave without one, each an `indisync run`
process with its own indiserver; the site at local noon, so the night waits for dark (the mount
parked: calibration is allowed).

The CCD Simulator's flats are lit by the panel (indisync.sim.calib_coupling: flux proportional to
FLAT_LIGHT_INTENSITY, dimmer behind R). A night log of two nights ago holds the master's Luminance and
Red lights and the slave's Green. What must hold, read back from the files and the panel:

- the first run trains the panel's brightness per filter by a short search ("search"), then takes
  flats.count frames in band (mean ADU 0.4 ± 0.1 of 65535); the reply says the slave has no panel
  and the panel served the master; the panel is off afterwards (read back);
- after that the master needs no flats (`indisync flats --plan`; the slave still does); another
  night's lights ask for them again, and the second run re-uses the trained brightness ("reused": no
  search) and its frames are in band;
- a rig without any light panel: `indisync flats --panel` fails (exit 1) naming indi.light_panel.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from indisync.config import MqttConfig
from indisync.sim.calib_coupling import PANEL_DEVICE
from indisync.sim.calib_rig import adu_band, calib_frames, flats_section, night_dir, seed_lights, stray_calib_files
from indisync.sim.indi import get_switches
from indisync.sim.night import LATITUDE, longitude_for_local_hour, prepare_mount, target_east_high
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

COUNT = 3
FILTERS = ["Red", "Luminance"]


def cli(rig, *args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indisync.cli", *args, "--config",
                           str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=timeout)


def make_rig(tmp_path, slaves: int, light_panels) -> tuple[SimRig, float, float]:
    lon = longitude_for_local_hour(12.0)
    ra, dec = target_east_high(lon)
    flats = flats_section(None, count=COUNT, panel=True, panel_exposure=1.0, max_exposure=10.0)
    night = {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False}
    rig = SimRig(
        slaves=slaves, time_factor=1.0, workdir=tmp_path / "rig", light_panels=light_panels,
        node_sections={"flats": flats},
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0}, "night": night,
                         "flats": flats},
        master_section={"target": {"name": "PANEL", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 2.0,
                                                "repeat": 5}]},
                        "refocus": {"after_batch": False}},
        slave_section={"filters": ["Green"], "exposure": 2.0},
    )
    return rig, lon, dec


def start_master_waiting_dark(rig) -> None:
    """Start the master and wait until its night waits for dark (the sun up: the mount parked)."""
    wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/master/#")
    try:
        rig.start_node("master")
        wait_until(lambda: [e for _, e in wire.envelopes("night_state", "master") if e.payload["to"] == "waiting_dark"],
                   60, "the master's night waiting for dark", 0.2, detail=rig.logs)
    finally:
        wire.close()


def panel_on(rig, node="master") -> bool:
    indi = rig.nodes[node].indi
    return get_switches(indi.host, indi.port, PANEL_DEVICE, "FLAT_LIGHT_CONTROL")["FLAT_LIGHT_ON"]


@pytest.mark.timeout(300)
def test_panel_flats_train_once_then_reuse(tmp_path):
    rig, lon, dec = make_rig(tmp_path, slaves=1, light_panels=("master",))
    with rig:
        prepare_mount(rig.nodes["master"].indi, lon, dec, park=True)
        seed_lights(night_dir(rig), {"master": FILTERS, "slave1": ["Green"]}, exposure=120.0)
        rig.start_slaves()
        start_master_waiting_dark(rig)
        low, high = adu_band()

        first = cli(rig, "flats", "--panel", "--json")
        assert first.returncode == 0, first.stdout + first.stderr + rig.logs()
        answer = json.loads(first.stdout)
        assert "master" in (answer["reason"] or ""), answer
        assert answer["nodes"]["slave1"]["status"] == "no_panel", answer["nodes"]["slave1"]
        mine = answer["nodes"]["master"]
        assert mine["status"] == "ok", (mine, rig.logs())
        sets = {s["filter"]: s for s in mine["sets"]}
        assert set(sets) == set(FILTERS), sets
        for name in FILTERS:
            s = sets[name]
            assert s["status"] == "ok" and s["kept"] == COUNT and s["trained"] == "search", s
            assert 0 < s["brightness"] <= 255, s
        assert not panel_on(rig), "the panel must be off after the run (read back)"
        frames = calib_frames(rig, "master", "FLAT")
        for name in FILTERS:
            kept = [f for f in frames if f.filter == name]
            assert len(kept) == COUNT, (name, [f.path.name for f in frames])
            assert all(low <= f.mean <= high and f.imagetyp == "Flat Field" for f in kept), kept
        assert not calib_frames(rig, "slave1", "FLAT")

        # another night's lights (after these flats) ask for the same sets again
        needed = json.loads(cli(rig, "flats", "--plan", "--json").stdout)["sets"]
        assert [r["node"] for r in needed] == ["slave1"], needed  # the master's flats are done; no panel there
        seed_lights(night_dir(rig), {"master": FILTERS}, exposure=120.0, days_ago=0.0)
        second = cli(rig, "flats", "--panel", "--json")
        assert second.returncode == 0, second.stdout + second.stderr + rig.logs()
        again = {s["filter"]: s for s in json.loads(second.stdout)["nodes"]["master"]["sets"]}
        for name in FILTERS:
            s = again[name]
            assert s["status"] == "ok" and s["trained"] == "reused", s
            assert s["brightness"] == pytest.approx(sets[name]["brightness"]), (s, sets[name])
            # no search: only the count (a frame drifting out of band is re-scaled, at most one more)
            assert s["taken"] <= COUNT + 1, s
        frames2 = calib_frames(rig, "master", "FLAT")
        new = [f for f in frames2 if f.path not in {g.path for g in frames}]
        assert len(new) == COUNT * len(FILTERS), [f.path.name for f in new]
        assert all(low <= f.mean <= high for f in new), new
        assert not panel_on(rig)
        assert not stray_calib_files(rig)
        sky = rig.skies["master"]
        assert sky.alive and not sky.errors, sky.errors


@pytest.mark.timeout(120)
def test_panel_flats_without_a_panel_is_a_clear_error(tmp_path):
    rig, lon, dec = make_rig(tmp_path, slaves=0, light_panels=())
    with rig:
        prepare_mount(rig.nodes["master"].indi, lon, dec, park=True)
        seed_lights(night_dir(rig), {"master": ["Luminance"]}, exposure=120.0)
        start_master_waiting_dark(rig)
        done = cli(rig, "flats", "--panel", timeout=90)
        text = done.stdout + done.stderr
        assert done.returncode == 1, text + rig.logs()
        assert "no light panel" in text and "indi.light_panel" in text, text
        assert not calib_frames(rig, "master", "FLAT")
