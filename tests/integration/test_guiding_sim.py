"""Guiding on the INDI simulators with drift and periodic error switched on.

One server for the module: the mount points at a star field (DEC 30) and tracks at a custom rate off
sidereal (a steady drift in both axes); the CCD Simulator, used here as the guide camera because it
is the simulator with periodic error, has SIM_PEPERIOD/SIM_PEMAX and SIM_POLAR/SIM_POLARDRIFT on.
The `indisync guide` test runs on the Guide Simulator, the default guide camera.

A second server (Telescope + Guide Simulator only) checks what the mount must be for calibration
(read back from the mount, never trusted from a set) and guiding through the camera's ST4 port.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import threading
import time

import pytest

from indisync.config import load_config
from indisync.devices.guide_port import open_guide_port
from indisync.devices.session import open_devices
from indisync.errors import CalibrationError
from indisync.guiding.guider import Guider, GuiderState
from indisync.guiding.settings import GuiderSettings, SettleSettings
from indisync.sim.mounts import SIDEREAL_ARCSEC_PER_S, DroppedPulses, set_tracking_error
from indisync.sim.indi import IndiServer, get_numbers, set_number, set_switch

pytestmark = pytest.mark.integration

DRIVERS = ["indi_simulator_ccd", "indi_simulator_telescope", "indi_simulator_guide"]
DEC = 30.0
DRIFT_RA, DRIFT_DEC = 0.25, 0.15  # arcsec/s of tracking error
PE_PERIOD, PE_MAX = 40.0, 5.0  # s, arcsec
PHASE = 25.0  # seconds each of unguided and guided
SETTINGS = GuiderSettings(exposure=1.0, calibration_step_ms=1500, pulse_settle=0.1)


@pytest.fixture(scope="module")
def rig():
    with IndiServer(drivers=DRIVERS, time_factor=0.2) as server:
        h, p = server.host, server.port
        cfg = load_config(data={"indi": {"host": h, "port": p, "guide_camera": "CCD Simulator"}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            dev.mount.unpark()  # a goto never unparks on its own
            dev.mount.goto(6.0, DEC)
            set_tracking_error(h, p, DRIFT_RA, DRIFT_DEC)
            set_number(h, p, "CCD Simulator", "SIMULATOR_SETTINGS",
                       {"SIM_PEPERIOD": PE_PERIOD, "SIM_PEMAX": PE_MAX, "SIM_POLAR": 30.0, "SIM_POLARDRIFT": 1.0})
            for camera in ("CCD Simulator", "Guide Simulator"):  # check for finished exposures every 0.1 s, not 1 s
                set_number(h, p, camera, "POLLING_PERIOD", {"PERIOD_MS": 100})
            time.sleep(1.0)
            cal = Guider(dev.guide_camera, dev.mount, SETTINGS).calibrate()
            yield server, dev, cal


def test_calibration_matches_the_mount_guide_rate(rig):
    server, dev, cal = rig
    rates = get_numbers(server.host, server.port, "Telescope Simulator", "GUIDE_RATE")
    scale = cal.pixel_scale
    assert scale == pytest.approx(206.265 * 5.2 / 900, rel=0.01)  # CCD Simulator: 5.2 um at 900 mm
    expected_dec = rates["GUIDE_RATE_NS"] * SIDEREAL_ARCSEC_PER_S / scale / 1000  # px per ms
    expected_ra = rates["GUIDE_RATE_WE"] * SIDEREAL_ARCSEC_PER_S * math.cos(math.radians(DEC)) / scale / 1000
    # drift and periodic error run on during calibration: allow 25 %
    assert cal.dec.rate == pytest.approx(expected_dec, rel=0.25)
    assert cal.ra.rate == pytest.approx(expected_ra, rel=0.25)
    assert cal.orthogonality_error < 15
    assert cal.declination == pytest.approx(DEC, abs=0.1)


def _phase(guider, seconds):
    guider.start()
    time.sleep(seconds)
    guider.stop()
    return guider.stats


def test_guided_rms_is_well_below_unguided_drift(rig):
    server, dev, cal = rig
    unguided = _phase(Guider(dev.guide_camera, DroppedPulses(dev.mount), SETTINGS, calibration=cal), PHASE)
    guided = _phase(Guider(dev.guide_camera, dev.mount, SETTINGS, calibration=cal), PHASE)
    print(f"\nunguided {unguided.summary()}\nguided {guided.summary()}")
    assert unguided.frames >= 10 and guided.frames >= 10
    # 25 s of ~0.25"/s drift plus up to 0.8"/s periodic error walks the star several pixels away
    # (how far depends on where in the PE cycle the phase falls: the peak is the robust figure)
    assert unguided.peak_px > 3.0 and unguided.rms_px > 1.5
    assert guided.rms_px < 0.25 * unguided.peak_px
    assert guided.rms_px < 0.5 * unguided.rms_px
    assert guided.rms_px < 1.2
    assert guided.summary()["rms_arcsec"] == pytest.approx(guided.rms_px * cal.pixel_scale)


def test_dither_settles(rig):
    server, dev, cal = rig
    guider = Guider(dev.guide_camera, dev.mount, SETTINGS, calibration=cal)
    guider.start()
    try:
        settle = SettleSettings(pixels=1.5, time=3.0, timeout=45.0)
        first = guider.wait_settled(settle)
        result = guider.dither(4.0, ra_only=False, settle=settle)
    finally:
        guider.stop()
    print(f"\nstart settle {first}\ndither {result}")
    assert first.settled
    assert result.settled, result
    assert 3.0 <= result.seconds < 45.0
    assert 0 < math.hypot(result.dx, result.dy) <= 4.0 * math.sqrt(2) * 1.3  # skewed axes stretch a little


def test_star_lost_when_noise_drowns_the_stars(rig):
    server, dev, cal = rig
    # 0.25 s frames: the CCD Simulator's noise tops out at 6000 ADU, which its brightest star
    # outshines in 1 s; in a quarter of that, every star drowns.
    guider = Guider(dev.guide_camera, dev.mount, dataclasses.replace(SETTINGS, exposure=0.25), calibration=cal)
    lost, found = threading.Event(), threading.Event()
    # back on the same star ("star_found") or, after reacquire_after_frames, on a new one ("reacquired")
    guider.add_listener(lambda e: lost.set() if e.kind == "star_lost"
                        else found.set() if e.kind in ("star_found", "reacquired") else None)
    guider.start()
    try:
        # guiding on the short frames works while the noise is low (a bounded wait, not a sleep: each
        # frame also waits for its pulses, which the Telescope Simulator ends at its next 250 ms tick)
        _wait(lambda: guider.stats.frames >= 3, 20, "fewer than 3 guided frames")
        assert guider.state in (GuiderState.GUIDING, GuiderState.SETTLING)
        set_number(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS", {"SIM_NOISE": 6000})
        try:
            assert lost.wait(30), "no star_lost event with the noise far above the stars"
            assert guider.state is GuiderState.LOST
            assert guider.running  # still looking, not dead
        finally:
            set_number(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS", {"SIM_NOISE": 10})
        assert found.wait(30), "the star did not come back after the noise went away"
    finally:
        guider.stop()
    assert guider.star_lost_count == 1


def test_guide_command_reports_json(rig, tmp_path):
    server, dev, cal = rig
    config = tmp_path / "indisync.yaml"
    config.write_text(f"indi: {{host: {server.host}, port: {server.port}, guide_camera: Guide Simulator}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "indisync.cli", "guide", "--config", str(config), "--seconds", "20",
         "--dither-every", "6", "--json"],
        capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{result}")
    assert set(result) >= {"rms_px", "rms_arcsec", "dithers", "calibration"}
    assert result["calibration"]["dec"]["rate"] > 0 and result["calibration"]["orthogonality_error_deg"] < 15
    assert result["pixel_scale"] == pytest.approx(206.265 * 2.4 / 900, rel=0.01)  # Guide Simulator
    assert result["dithers"] and all(isinstance(d["settled"], bool) and d["seconds"] > 0 for d in result["dithers"])
    assert result["frames"] > 0 and result["rms_px"] < 2.0
    assert result["rms_arcsec"] == pytest.approx(result["rms_px"] * result["pixel_scale"])
    # PHD2's figures: per axis, total, peak, settling left out, settle time per dither
    assert result["rms_px"] == pytest.approx(math.hypot(result["rms_ra_px"], result["rms_dec_px"]))
    assert result["peak_px"] >= max(result["peak_ra_px"], result["peak_dec_px"])
    assert result["frames_total"] > result["frames"]  # the start's settling frames are not in the RMS
    assert result["start_settle"]["settled"] and result["pulse_via"] == "mount"
    assert len(result["settle_s"]) == len(result["dithers"])


# ---- what the mount must be for calibration; guiding through the camera's ST4 port ----------------

@pytest.fixture(scope="module")
def st4_rig():
    with IndiServer(drivers=["indi_simulator_telescope", "indi_simulator_guide"]) as server:
        cfg = load_config(data={"indi": {"host": server.host, "port": server.port}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            dev.mount.unpark()  # the tests' gotos never unpark on their own
            yield server, cfg, dev


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


def _tracking(server, dev, on: bool) -> None:
    set_switch(server.host, server.port, "Telescope Simulator", "TELESCOPE_TRACK_STATE",
               {"TRACK_ON": on, "TRACK_OFF": not on})
    _wait(lambda: dev.mount.tracking is on, 10, f"the mount did not report tracking {on}")


def test_calibration_near_the_pole_is_refused_with_the_reason(st4_rig):
    server, cfg, dev = st4_rig
    dev.mount.goto(6.0, 89.5)
    assert dev.mount.coordinates[1] == pytest.approx(89.5, abs=0.05)  # read back from the mount
    assert dev.mount.tracking is True
    with pytest.raises(CalibrationError, match=r"mount at Dec 89\.5: RA calibration is impossible near the pole.*"
                                               r"slew to \|Dec\| < 60"):
        Guider(dev.guide_camera, dev.mount, GuiderSettings()).calibrate()


def test_calibration_with_tracking_off_is_refused_with_the_reason(st4_rig):
    server, cfg, dev = st4_rig
    dev.mount.goto(6.0, 30.0)
    _tracking(server, dev, False)
    try:
        with pytest.raises(CalibrationError, match="tracking is off: turn tracking on"):
            Guider(dev.guide_camera, dev.mount, GuiderSettings()).calibrate()
    finally:
        _tracking(server, dev, True)


@pytest.mark.timeout(240)
def test_guiding_through_the_guide_cameras_st4_port(st4_rig):
    server, cfg, dev = st4_rig
    dev.mount.goto(6.0, 30.0)
    assert dev.mount.tracking is True and dev.mount.coordinates[1] == pytest.approx(30.0, abs=0.05)
    port = open_guide_port(dev.client, cfg.indi.guide_camera, cfg.indi.property_timeout)
    settings = GuiderSettings(pulse_via="camera")
    guider = Guider(dev.guide_camera, dev.mount, settings, pulser=port)
    cal = guider.calibrate()
    # The Guide Simulator moves its field 7"/s on both axes at any Dec: East and West must be opposite
    # (before the fix an East pulse after a West one went West: the RA rate came out near 0).
    expected = 7.0 / cal.pixel_scale / 1000
    assert cal.ra.rate == pytest.approx(expected, rel=0.1) and cal.dec.rate == pytest.approx(expected, rel=0.1)
    guider.start()
    try:
        assert guider.wait_settled(SettleSettings(pixels=1.0, time=3, timeout=45)).settled
        guider.reset_stats()
        time.sleep(30)
    finally:
        assert guider.stop() is True
    stats = guider.stats
    print(f"\nST4 guiding: {stats.summary()}")
    assert stats.frames >= 15
    assert stats.rms_px < 0.5 and stats.peak_px < 1.5
