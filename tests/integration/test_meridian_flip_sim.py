"""The meridian flip on the real simulators and broker (master + slave node processes).

The site's longitude puts local midnight now (deep night at latitude 45); the target is placed a
minute or two of hour angle east of the meridian (by indisync's own sidereal time, JNow), high up
at declination 45. The Telescope Simulator is given the same site (read back) and lands on the
pier's west side; its TELESCOPE_PIER_SIDE follows the hour angle of a goto, so the flip slew past
the meridian brings it down on the east side. Short frames at time factor 0.1 (planned with their
nominal durations, so the limits hold with room to spare). The master guides (Guide Simulator, no
dithering); which mirroring of the calibration is right is measured by the third test.

- the night flips once: no frame aborted, none started that would end past after_meridian_min +
  max_wait_min, pier side west before and east after (read from the server), re-centred by plate
  solve (night.center), guiding
  again on the mirrored calibration (no second calibration, the star kept), the slave's filter
  rotation unbroken, flip_started/flip_done on MQTT, phase flipping in the state;
- a flip that cannot change the pier side (the config's site is 1 degree east of the mount's, so
  our hour angle runs 4 minutes ahead of the mount's: the flip slew lands east of the meridian
  again, on the west side): the night parks and ends with an error that names the check;
- the guider calibrated west of the pier and again east of it: the default mirroring
  (guider.flip_dec: false) predicts the second.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from indisync.astro.coords import j2000_to_jnow
from indisync.config import IndiConfig, MqttConfig
from indisync.devices.session import open_devices
from indisync.night.meridian import hour_angle_hours
from indisync.protocol import messages
from indisync.sim.night import LATITUDE, longitude_for_local_hour, mount_parked, pier_side, prepare_mount, \
    target_at_hour_angle
from indisync.sim.astrometry_index import ensure_index
from indisync.sim.rig import SimRig
from indisync.sim.indi import get_numbers
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

FILTERS = ["Red", "Green", "Blue"]
EXPOSURE = 10.0  # nominal seconds (1 s at time factor 0.1); planned as 10 s + 5 s readout margin


def events(wire, kind=None, node=None):
    return wire.envelopes(kind, node)


def states(wire, node="master"):
    return [messages.decode(m.payload).payload for m in wire.messages(f"indisync/{node}/state")]


def night_states(wire):
    return [env.payload["to"] for _, env in events(wire, "night_state", "master")]


def frames(rig, node):
    return sorted((rig.images / node).rglob("*.fits"), key=lambda p: int(re.search(r"_(\d+)\.fits$", p.name).group(1)))


def filter_of(path):
    return next(f for f in FILTERS + ["Luminance"] if f"_{f}_" in path.name)


def wait_for(predicate, timeout, what, rig=None, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout:g} s: {what}" + (f"\n{rig.logs()}" if rig else ""))


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_rig(tmp_path, site_lon, ra, dec, flip, guider=None, center=False):
    acquire = {}
    if center:  # plate-solved centring after every slew, the flip's too (night.center)
        index_dir = ensure_index(ra, dec, cache_dir=tmp_path / "index")
        acquire = {"index_dirs": [str(index_dir)], "exposure": 5.0, "settle": 0.5, "tolerance_arcsec": 10,
                   "attempts": 4}
    return SimRig(
        slaves=1, time_factor=0.1, workdir=tmp_path / "rig", guider_section=guider, acquire_section=acquire,
        master_sections={"site": {"latitude": LATITUDE, "longitude": site_lon, "elevation": 0},
                         "night": {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False,
                                   "center": center},
                         "flip": flip},
        master_section={"target": {"name": "FLIP", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": EXPOSURE,
                                                "repeat": 100}]},
                        "refocus": {"after_batch": False}, "dither": {"every_frames": 0}},
        slave_section={"filters": FILTERS, "exposure": EXPOSURE},
    )


def read_site(indi):
    got = get_numbers(indi.host, indi.port, "Telescope Simulator", "GEOGRAPHIC_COORD")
    return got["LAT"], (got["LONG"] + 180.0) % 360.0 - 180.0


def stop(rig):
    return subprocess.run([sys.executable, "-m", "indisync.cli", "stop", "--config",
                           str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(300)
def test_the_night_flips_once_at_the_meridian(tmp_path):
    lon = longitude_for_local_hour(0.0)
    flip = {"after_meridian_min": 0.25, "max_wait_min": 0.25, "recalibrate": False}
    limit_h = (flip["after_meridian_min"] + flip["max_wait_min"]) / 60.0
    ra, dec = target_at_hour_angle(lon, -1.9 / 60.0)  # 1.9 min east now; ~1 min when the first frame starts
    with make_rig(tmp_path, lon, ra, dec, flip, guider={"exposure": 1.0}, center=True) as rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec)
        slave_indi = rig.nodes["slave1"].indi  # the slave OTA rides on the same mount: point its simulator too
        prepare_mount(slave_indi, lon, dec)
        with open_devices(IndiConfig(host=slave_indi.host, port=slave_indi.port), need=("mount",),
                          want=("mount",)) as dev:
            dev.mount.unpark()  # a slew never unparks on its own
            dev.mount.slew_j2000(ra, dec, timeout=120)
            dev.mount.set_tracking(True)
        lat_back, lon_back = read_site(indi)
        assert abs(lat_back - LATITUDE) < 1e-4 and abs(lon_back - lon) < 1e-4, (lat_back, lon_back)
        wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
        try:
            rig.start_slaves()
            rig.start_node("master")
            wait_for(lambda: len(frames(rig, "master")) >= 1, 120, "the first master frame", rig)
            before = pier_side(indi)
            assert before == "west", before  # east of the meridian: the tube on the pier's west side
            flipped = wait_for(lambda: events(wire, "flip_done", "master"), 150, "flip_done", rig)
            after = pier_side(indi)
            assert after == "east", after
            done = flipped[0][1].payload
            assert done["status"] == "ok" and done["pier_side_before"] == "west" and done["pier_side_after"] == "east"
            n_after = len(frames(rig, "master"))
            wait_for(lambda: len(frames(rig, "master")) >= n_after + 2, 60, "two frames after the flip", rig)
            assert pier_side(indi) == "east"
            result = stop(rig)
            assert result.returncode == 0, result.stderr
            assert rig.wait_node("master", 60) == 0, rig.logs()

            # exactly one flip, re-centred after it, then imaging again
            seq = night_states(wire)
            assert seq.count("flipping") == 1, seq
            i = seq.index("flipping")
            assert seq[i + 1:i + 4] == ["centering", "starting_guider", "imaging"], seq
            # guiding resumed after the flip on the mirrored calibration: calibrated before it, not after
            flip_t = events(wire, "flip_started", "master")[0][0]
            guide = [(t, (messages.decode(m.payload).payload.get("guiding") or {}).get("state"))
                     for t, m in list(wire.received) if m.topic == "indisync/master/state"]
            assert any(g == "calibrating" for t, g in guide if t < flip_t), guide
            assert not any(g == "calibrating" for t, g in guide if t > flip_t), guide
            assert any(g == "guiding" for t, g in guide if t > flip_t), guide
            assert not any(g in ("lost", "error") for t, g in guide if t > flip_t), guide
            assert "did not settle" not in rig.nodes["master"].log_text()
            # re-centred by plate solve after the flip
            centred = [(t, e.payload) for t, e in events(wire, "center_done", "master")]
            assert any(t > flip_t and p["ok"] for t, p in centred), centred
            assert len(events(wire, "flip_started", "master")) == 1 and len(flipped) == 1
            assert any(s.get("phase") == "flipping" for s in states(wire)), "phase flipping never published"
            assert any((s.get("night") or {}).get("state") == "flipping" for s in states(wire))
            # no frame aborted; none started before the flip that would end past the limit
            done_events = events(wire, "exposure_done")
            assert done_events and all(e.payload["status"] == "ok" for _, e in done_events), \
                [e.payload for _, e in done_events if e.payload["status"] != "ok"]
            started = events(wire, "exposure_started")
            pre = [e for t, e in started if t < flip_t]
            post = [e for t, e in started if t > flip_t]
            assert pre and post
            ra_now = j2000_to_jnow(ra, dec)[0]
            for env in pre:  # the target's hour angle at each frame's nominal end
                end = when(env.payload["start"]) + timedelta(seconds=env.payload["duration"])
                ha_end = hour_angle_hours(ra_now, lon, end.timestamp())
                assert ha_end <= limit_h + 1e-4, (env.payload, ha_end * 60)
            # the flip's own figures
            assert done["slew_s"] > 0 and done["total_s"] >= done["slew_s"], done
            # the slave's rotation went on where it was
            rotation = [filter_of(p) for p in frames(rig, "slave1")]
            assert len(rotation) >= 4 and rotation == [FILTERS[i % 3] for i in range(len(rotation))], rotation
            assert mount_parked(indi)
            log = rig.nodes["master"].log_text()
            assert "meridian flip done" in log, log[-3000:]
            print(f"flip: {json.dumps(done)}")
        finally:
            wire.close()


@pytest.mark.timeout(240)
def test_a_flip_that_does_not_change_the_pier_side_parks_and_ends_with_a_clear_error(tmp_path):
    mount_lon = longitude_for_local_hour(0.0)
    site_lon = mount_lon + 1.0  # our hour angle runs 4 min ahead of the mount's own
    flip = {"after_meridian_min": 0.25, "max_wait_min": 1.0}
    ra, dec = target_at_hour_angle(site_lon, -0.6 / 60.0)  # 0.6 min east by our clock, 4.6 min by the mount's
    with make_rig(tmp_path, site_lon, ra, dec, flip) as rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, mount_lon, dec)
        assert abs(read_site(indi)[1] - mount_lon) < 1e-4
        wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
        try:
            rig.start_slaves()
            rig.start_node("master")
            assert rig.wait_node("master", 180) == 0, rig.logs()
            seq = night_states(wire)
            assert "flipping" in seq and seq[-1] == "done", seq
            assert seq[seq.index("flipping") + 1] == "parking", seq
            reasons = [e.payload["reason"] for _, e in events(wire, "night_state", "master") if e.payload["to"] == "parking"]
            assert reasons and "meridian flip failed: pier side stayed west after the flip slew" in reasons[0], reasons
            errors = [e.payload["message"] for _, e in events(wire, "error", "master")]
            assert any("meridian flip failed" in m and "GEOGRAPHIC_COORD" in m for m in errors), errors
            failed = events(wire, "flip_done", "master")
            assert len(failed) == 1 and failed[0][1].payload["status"] == "failed"
            assert mount_parked(indi)
            # no frame after the failed flip
            flip_t = events(wire, "flip_started", "master")[0][0]
            assert not [t for t, _ in events(wire, "exposure_started") if t > flip_t]
        finally:
            wire.close()


@pytest.mark.timeout(240)
def test_the_mirrored_calibration_matches_one_taken_afresh_after_the_flip():
    """Guider calibration on the Guide Simulator west of the pier, and again east of it (the site
    moved so the same target is an hour west of the meridian; read back): the default mirroring
    (guider.flip_dec: false) predicts the second within a few degrees on both axes."""
    import math

    from indisync.config import load_config
    from indisync.devices.session import open_devices
    from indisync.guiding.guider import Guider
    from indisync.guiding.settings import GuiderSettings
    from indisync.night.meridian import gmst_deg
    from indisync.sim.indi import IndiServer, set_number

    ra, dec = 90.0, 30.0
    settings = GuiderSettings(exposure=1.0, calibration_step_ms=1500, pulse_settle=0.1)

    def longitude_for(ha_hours):
        ra_now = j2000_to_jnow(ra, dec)[0]
        return ((ra_now + ha_hours * 15.0 - gmst_deg(time.time() + 5.0)) + 540.0) % 360.0 - 180.0

    def turn(a, b):  # degrees from angle a to angle b (radians), -180..180
        return (math.degrees(b - a) + 180.0) % 360.0 - 180.0

    with IndiServer(drivers=["indi_simulator_telescope", "indi_simulator_guide"], time_factor=0.2) as server:
        cfg = load_config(data={"indi": {"host": server.host, "port": server.port, "guide_camera": "Guide Simulator"}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            set_number(server.host, server.port, "Guide Simulator", "POLLING_PERIOD", {"PERIOD_MS": 100})
            dev.mount.unpark()  # a slew never unparks on its own
            cals = {}
            for ha in (-1.0, 1.0):
                dev.mount.set_site(45.0, longitude_for(ha), 0.0)  # reads it back
                dev.mount.slew_j2000(ra, dec, 120)
                wait_for(lambda: dev.mount.pier_side in ("east", "west"), 5, "TELESCOPE_PIER_SIDE")
                time.sleep(1.0)
                cals[dev.mount.pier_side] = Guider(dev.guide_camera, dev.mount, settings).calibrate()
    assert set(cals) == {"west", "east"}, cals
    mirrored = cals["west"].mirrored(dec=settings.flip_dec)
    assert abs(turn(mirrored.ra.angle, cals["east"].ra.angle)) < 5, (cals, mirrored)
    assert abs(turn(mirrored.dec.angle, cals["east"].dec.angle)) < 5, (cals, mirrored)
    assert abs(turn(cals["west"].ra.angle, cals["east"].ra.angle)) > 170  # the flip did turn RA
