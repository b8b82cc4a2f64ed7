"""Sky flats at dusk through the real night (issue 17), on the INDI 1.9.9 simulators: a master and two
slaves, each an `indisync run` process with its own indiserver, a private mosquitto.

The site's longitude is chosen from the clock so that the sun is setting through -4° now (inside the
default flats window -2..-10°), whatever the date and hour. Every node's CCD Simulator has the
simulated twilight (indisync.sim.calib_coupling): a sky that halves in brightness every 3 minutes
(the issue's "darkening x2 every 3 min"), time factor 1, dimmer behind R/G (+5), B (+7) and so much
dimmer behind H_Alpha (+40, a factor 16) that it needs ~9 s. A night log of two nights ago holds
lights of master Luminance + Red, slave1 H_Alpha + Green, slave2 Blue, so those are the flats needed.
What must hold, read back from the files (never through the code under test):

- the night goes waiting_dark -> dusk_flats -> (flats_done) and on; every needed broadband filter has
  flats.count (5) frames on its node, each with a mean ADU inside target ± tolerance (0.4 ± 0.1 of
  65535), IMAGETYP 'Flat Field', FILTER and EXPTIME in the header; the ramp keeps up: each node's
  exposures grow as the sky darkens, and few frames are discarded;
- the unreachable band (H_Alpha needs ~9 s, flats.max_exposure is 3 s) fails that set with a reason
  naming max_exposure, and slave1 goes on to its Green flats;
- no stray file under calib/; every node's sky coupling alive and without errors.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import pytest

from indisync.config import MqttConfig
from indisync.sim.calib_coupling import DEFAULT_FILTER_OFFSETS
from indisync.sim.calib_rig import adu_band, calib_frames, dusk_rig, night_dir, seed_lights, stray_calib_files
from indisync.sim.night import prepare_mount
from indisync.sim.waiting import wait_until
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

COUNT = 5
LIGHTS = {"master": ["Luminance", "Red"], "slave1": ["H_Alpha", "Green"], "slave2": ["Blue"]}
REACHABLE = {"master": ["Red", "Luminance"], "slave1": ["Green"], "slave2": ["Blue"]}  # dusk order


def cli(rig, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indisync.cli", *args, "--config",
                           str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=timeout)


def night_states(wire) -> list[str]:
    return [env.payload["to"] for _, env in wire.envelopes("night_state", "master")]


def set_done(wire, node=None) -> list[dict]:
    return [env.payload for _, env in wire.envelopes("calib_set_done", node) if env.payload.get("kind") == "flat"]


@pytest.mark.timeout(300)
def test_dusk_flats_master_and_two_slaves_in_band_with_the_ramp_keeping_up(tmp_path):
    # H_Alpha 40 dimmer than the sky: ~9 s for the band, beyond flats.max_exposure (3 s)
    rig, lon = dusk_rig(tmp_path / "rig", slaves=2, filter_offsets={**DEFAULT_FILTER_OFFSETS, "h_alpha": 40.0})
    with rig, contextlib.ExitStack() as stack:
        prepare_mount(rig.nodes["master"].indi, lon, 45.0)
        seed_lights(night_dir(rig), LIGHTS, exposure=120.0)
        wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
        stack.callback(wire.close)
        rig.start_slaves()
        rig.start_node("master")

        def wait_for(predicate, timeout, what):
            return wait_until(predicate, timeout, what, 0.2, detail=rig.logs)

        wait_for(lambda: "dusk_flats" in night_states(wire), 120, "the night entering dusk_flats")
        started = time.monotonic()
        wait_for(lambda: (lambda s: "dusk_flats" in s and s[-1] != "dusk_flats")(night_states(wire)), 200,
                 "the night leaving dusk_flats (flats_done)")
        took = time.monotonic() - started
        flats_done = [env.payload for _, env in wire.envelopes("night_state", "master")
                      if env.payload.get("from") == "dusk_flats"]
        print(f"\ndusk flats took {took:.0f} s; left dusk_flats: {flats_done}")
        done = cli(rig, "stop")
        assert done.returncode == 0, done.stdout + done.stderr
        assert rig.wait_node("master", 90) == 0, rig.logs()

        low, high = adu_band()
        for node, filters in REACHABLE.items():
            frames = calib_frames(rig, node, "FLAT")
            by_filter = {f: [x for x in frames if x.filter == f] for f in filters}
            for name, kept in by_filter.items():
                assert len(kept) == COUNT, (node, name, [x.path.name for x in frames], rig.logs())
                for frame in kept:
                    assert low <= frame.mean <= high, (node, frame)
                    assert frame.imagetyp == "Flat Field" and 0.1 <= frame.exposure <= 3.0, frame
                    assert frame.path.name.startswith(f"FLAT_{name}_1_"), frame.path
            assert {x.filter for x in frames} == set(filters), (node, {x.filter for x in frames})
            # the ramp keeps up with a darkening sky: a filter's later frames are no shorter
            for name, kept in by_filter.items():
                exposures = [x.exposure for x in sorted(kept, key=lambda x: x.path.stat().st_mtime)]
                assert exposures[-1] >= exposures[0] * 0.98, (node, name, exposures)
            results = {p.get("filter"): p for p in set_done(wire, node)}
            for name in filters:
                assert results[name]["status"] == "ok" and results[name]["kept"] == COUNT, results[name]
                # test frame + count + few discarded
                assert results[name]["taken"] <= COUNT + 4, results[name]
        # the unreachable band: H_Alpha fails with the setting named, and slave1 still did Green
        ha = {p.get("filter"): p for p in set_done(wire, "slave1")}["H_Alpha"]
        assert ha["status"] == "failed" and "max_exposure" in (ha.get("reason") or ""), ha
        assert not calib_frames(rig, "slave1", "FLAT") or all(x.filter != "H_Alpha"
                                                               for x in calib_frames(rig, "slave1", "FLAT"))
        assert not stray_calib_files(rig), stray_calib_files(rig)
        for name, sky in rig.skies.items():
            assert sky.alive and not sky.errors, (name, sky.errors)
        states = night_states(wire)
        assert states.index("dusk_flats") < len(states) - 1, states
