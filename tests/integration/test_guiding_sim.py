"""Guiding on our own sky (indisync.sim.sky: "Sky Mount" + "Sky Guider" under a real indiserver).

INDI 1.9.9's simulators could not judge guiding below ~0.5 px (the Telescope Simulator's 0.1 s
deadband on EQUATORIAL_EOD_COORD, the Guide Simulator's whole-pixel stars); the sky renders stars
at sub-pixel positions from a known error and publishes that error, so these tests judge the
guider against the TRUE error, not only against its own centroids.

One server for the module: the mount points at Dec 30 on the "good" sky (seeing 1.5", periodic
error +-8" over 480 s, Dec backlash) with a strong polar drift added in both axes (0.25"/s in RA,
0.15"/s in Dec), so that 30 s unguided walk the star several pixels. A second server checks what the mount must be for
calibration (read back from the mount, never trusted from a set) and guiding through the guide
camera's ST4 port.
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
from indisync.sim.indi import IndiServer, PropertyWatch, get_numbers, set_number, set_switch
from indisync.sim.sky.model import SIDEREAL_ARCSEC_PER_S
from indisync.sim.sky.truth import truth_stats

pytestmark = pytest.mark.integration

MOUNT, GUIDER = "Sky Mount", "Sky Guider"
DEC = 30.0
DRIFT_RA, DRIFT_DEC = 15.0, 9.0  # arcsec per minute (0.25 and 0.15 arcsec/s)
PHASE = 30.0  # seconds of guiding
SETTINGS = GuiderSettings(exposure=1.0, calibration_step_ms=1000, pulse_settle=0.1)


def _start(server) -> dict:
    h, p = server.host, server.port
    set_number(h, p, MOUNT, "SKY_SLEW", {"RATE": 30.0})
    set_switch(h, p, MOUNT, "SKY_PRESET", {"GOOD": True})  # seeing 1.5", 0.35" of wander, Dec backlash
    set_number(h, p, MOUNT, "SKY_DRIFT", {"RA": DRIFT_RA, "DEC": DRIFT_DEC})
    cfg = load_config(data={"indi": {"host": h, "port": p, "mount": MOUNT, "guide_camera": GUIDER,
                                     "camera": "Sky Camera"}})
    return cfg


def _goto(dev, ra: float, dec: float) -> None:
    dev.mount.unpark()  # a goto never unparks on its own
    dev.mount.goto(ra, dec)
    _wait(lambda: abs(dev.mount.coordinates[1] - dec) < 1e-6 and dev.mount.tracking, 20, f"the mount at Dec {dec}")


@pytest.fixture(scope="module")
def rig():
    with IndiServer(drivers=["indi_sky_sim"]) as server:
        cfg = _start(server)
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            _goto(dev, 6.0, DEC)
            cal = Guider(dev.guide_camera, dev.mount, SETTINGS).calibrate()
            yield server, cfg, dev, cal


def _expected_rates(server, scale: float) -> tuple[float, float]:
    """(RA, Dec) px per ms at the mount's guide rate, at Dec 30."""
    rates = get_numbers(server.host, server.port, MOUNT, "GUIDE_RATE")
    ra = rates["GUIDE_RATE_WE"] * SIDEREAL_ARCSEC_PER_S * math.cos(math.radians(DEC)) / scale / 1000
    return ra, rates["GUIDE_RATE_NS"] * SIDEREAL_ARCSEC_PER_S / scale / 1000


def test_calibration_matches_the_mount_guide_rate(rig):
    server, cfg, dev, cal = rig
    scale = cal.pixel_scale
    assert scale == pytest.approx(206.265 * 3.75 / 600, rel=0.001)  # the Sky Guider: 3.75 um at 600 mm
    ra, dec = _expected_rates(server, scale)
    # drift and periodic error run on during calibration (RA's out-and-back cancels them): 10 %
    assert cal.ra.rate == pytest.approx(ra, rel=0.1)
    assert cal.dec.rate == pytest.approx(dec, rel=0.1)
    assert cal.orthogonality_error < 10  # the North leg alone carries the drift: a few degrees
    assert cal.declination == pytest.approx(DEC, abs=0.01)


def test_guided_true_error_is_well_below_the_same_sky_unguided(rig):
    """The quick check of guiding quality in CI: judged on the sky's true error."""
    server, cfg, dev, cal = rig
    guider = Guider(dev.guide_camera, dev.mount, SETTINGS, calibration=cal)
    with PropertyWatch(server.host, server.port, MOUNT, ("SKY_TRUE_ERROR",)) as watch:
        guider.start()
        try:
            assert guider.wait_settled(SettleSettings(pixels=1.5, time=2.0, timeout=30)).settled
            guider.reset_stats()
            t0 = time.monotonic()
            time.sleep(PHASE)
            t1 = time.monotonic()
        finally:
            guider.stop()
        records = watch.updates("SKY_TRUE_ERROR", since=t0)
    guided = truth_stats([(t, float(v["RA"]), float(v["DEC"])) for t, _, _, v, _ in records], [(t0, t1)], cal.pixel_scale)
    unguided = truth_stats([(t, float(v["UNGUIDED_RA"]), float(v["UNGUIDED_DEC"])) for t, _, _, v, _ in records],
                           [(t0, t1)], cal.pixel_scale)
    centroid = guider.stats
    print(f"\ntrue error guided {guided}\nunguided {unguided}\ncentroid {centroid.summary()}")
    assert guided["samples"] >= 0.8 * PHASE / 0.1 and centroid.frames >= 12
    # 30 s of ~0.3"/s drift walk the star ~7 px away (RMS about its mean: a ramp's length / sqrt(12);
    # the periodic error adds to the RA drift or takes from it, depending on its phase)
    assert unguided["rms_px"] > 1.0
    assert guided["rms_px"] < 0.25 * unguided["rms_px"]
    assert guided["rms_px"] < 0.4 and guided["peak_px"] < 1.2
    # what the guider sees (centroids: the true error plus seeing) agrees with the truth in size
    assert centroid.rms_px < 0.6
    assert centroid.summary()["rms_arcsec"] == pytest.approx(centroid.rms_px * cal.pixel_scale)


def test_dither_settles(rig):
    server, cfg, dev, cal = rig
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
    assert 3.0 <= result.seconds < 30.0
    assert 0 < math.hypot(result.dx, result.dy) <= 4.0 * math.sqrt(2) * 1.05


def test_star_lost_when_clouds_hide_the_stars(rig):
    server, cfg, dev, cal = rig
    guider = Guider(dev.guide_camera, dev.mount, SETTINGS, calibration=cal)
    lost, found = threading.Event(), threading.Event()
    # back on the same star ("star_found") or, after reacquire_after_frames, on a new one ("reacquired")
    guider.add_listener(lambda e: lost.set() if e.kind == "star_lost"
                        else found.set() if e.kind in ("star_found", "reacquired") else None)
    guider.start()
    try:
        _wait(lambda: guider.stats.frames >= 3, 20, "fewer than 3 guided frames")
        assert guider.state in (GuiderState.GUIDING, GuiderState.SETTLING)
        set_number(server.host, server.port, GUIDER, "SKY_CAMERA_FIELD", {"TRANSPARENCY": 0.0})
        try:
            assert get_numbers(server.host, server.port, GUIDER, "SKY_CAMERA_FIELD")["TRANSPARENCY"] == 0.0
            assert lost.wait(30), "no star_lost event under full cloud"
            assert guider.state is GuiderState.LOST
            assert guider.running  # still looking, not dead
        finally:
            set_number(server.host, server.port, GUIDER, "SKY_CAMERA_FIELD", {"TRANSPARENCY": 1.0})
        assert found.wait(30), "the star did not come back after the clouds went away"
    finally:
        guider.stop()
    assert guider.star_lost_count == 1


def test_guide_command_reports_json(rig, tmp_path):
    server, cfg, dev, cal = rig
    config = tmp_path / "indisync.yaml"
    config.write_text(f"indi: {{host: {server.host}, port: {server.port}, mount: {MOUNT}, "
                      f"guide_camera: {GUIDER}}}\nguider: {{calibration_step_ms: 1000}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "indisync.cli", "guide", "--config", str(config), "--seconds", "20",
         "--dither-every", "6", "--json"],
        capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{result}")
    assert set(result) >= {"rms_px", "rms_arcsec", "dithers", "calibration"}
    assert result["calibration"]["dec"]["rate"] > 0 and result["calibration"]["orthogonality_error_deg"] < 10
    assert result["pixel_scale"] == pytest.approx(206.265 * 3.75 / 600, rel=0.001)
    assert result["dithers"] and all(isinstance(d["settled"], bool) and d["seconds"] > 0 for d in result["dithers"])
    assert result["frames"] > 0 and result["rms_px"] < 1.0
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
    with IndiServer(drivers=["indi_sky_sim"]) as server:
        cfg = _start(server)
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
    set_switch(server.host, server.port, MOUNT, "TELESCOPE_TRACK_STATE", {"TRACK_ON": on, "TRACK_OFF": not on})
    _wait(lambda: dev.mount.tracking is on, 10, f"the mount did not report tracking {on}")


def test_calibration_near_the_pole_is_refused_with_the_reason(st4_rig):
    server, cfg, dev = st4_rig
    _goto(dev, 6.0, 89.5)
    assert dev.mount.coordinates[1] == pytest.approx(89.5, abs=0.05)  # read back from the mount
    assert dev.mount.tracking is True
    with pytest.raises(CalibrationError, match=r"mount at Dec 89\.5: RA calibration is impossible near the pole.*"
                                               r"slew to \|Dec\| < 60"):
        Guider(dev.guide_camera, dev.mount, GuiderSettings()).calibrate()


def test_calibration_with_tracking_off_is_refused_with_the_reason(st4_rig):
    server, cfg, dev = st4_rig
    _goto(dev, 6.0, 30.0)
    _tracking(server, dev, False)
    try:
        with pytest.raises(CalibrationError, match="tracking is off: turn tracking on"):
            Guider(dev.guide_camera, dev.mount, GuiderSettings()).calibrate()
    finally:
        _tracking(server, dev, True)


@pytest.mark.timeout(240)
def test_guiding_through_the_guide_cameras_st4_port(st4_rig):
    server, cfg, dev = st4_rig
    _goto(dev, 6.0, 30.0)
    port = open_guide_port(dev.client, cfg.indi.guide_camera, cfg.indi.property_timeout)
    settings = dataclasses.replace(SETTINGS, pulse_via="camera")
    guider = Guider(dev.guide_camera, dev.mount, settings, pulser=port)
    cal = guider.calibrate()
    # East and West must be opposite (an East pulse after a West one once went West: the RA rate came out near 0)
    ra, dec = _expected_rates(server, cal.pixel_scale)
    assert cal.ra.rate == pytest.approx(ra, rel=0.1) and cal.dec.rate == pytest.approx(dec, rel=0.1)
    with PropertyWatch(server.host, server.port, MOUNT, ("SKY_TRUE_ERROR",)) as watch:
        guider.start()
        try:
            assert guider.wait_settled(SettleSettings(pixels=1.0, time=3, timeout=45)).settled
            guider.reset_stats()
            t0 = time.monotonic()
            time.sleep(PHASE)
            t1 = time.monotonic()
        finally:
            assert guider.stop() is True
        records = watch.updates("SKY_TRUE_ERROR", since=t0)
    truth = truth_stats([(t, float(v["RA"]), float(v["DEC"])) for t, _, _, v, _ in records], [(t0, t1)], cal.pixel_scale)
    stats = guider.stats
    print(f"\nST4 guiding: centroid {stats.summary()}\ntrue error {truth}")
    assert stats.frames >= 12
    assert stats.rms_px < 0.6 and stats.peak_px < 1.5
    assert truth["rms_px"] < 0.4 and truth["peak_px"] < 1.2
