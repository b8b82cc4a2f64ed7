"""Our sky driver (indisync.sim.sky) under a real indiserver 1.9.9, through our own device classes.

What INDI 1.9.9's simulators cannot do and this one must: a star that moves by a third of a pixel
moves its centroid by a third of a pixel (the Guide Simulator rounds to whole pixels), and the
mount's EQUATORIAL_EOD_COORD goes out every poll and follows a pulse far below the Telescope
Simulator's 0.1 s-of-time deadband. Also: pulses move the star by rate x duration on both paths
(mount and the camera's ST4 port), park and tracking work, and every parameter reads back.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from indisync.config import load_config
from indisync.devices.guide_port import open_guide_port
from indisync.devices.session import open_devices
from indisync.guiding.star import find_stars, measure_star
from indisync.sim.indi import (IndiServer, PropertyWatch, get_numbers, get_switches, set_number, set_switch)
from indisync.sim.sky.model import SIDEREAL_ARCSEC_PER_S

pytestmark = pytest.mark.integration

MOUNT, GUIDER = "Sky Mount", "Sky Guider"
DEC = 30.0


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s")


@pytest.fixture(scope="module")
def sky():
    with IndiServer(drivers=["indi_sky_sim"]) as server:
        h, p = server.host, server.port
        set_number(h, p, MOUNT, "SKY_SLEW", {"RATE": 30.0})
        set_switch(h, p, MOUNT, "SKY_PRESET", {"CALM": True})  # no error at all unless a test asks
        cfg = load_config(data={"indi": {"host": h, "port": p, "mount": MOUNT, "guide_camera": GUIDER,
                                         "camera": "Sky Camera"}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            dev.mount.unpark()
            dev.mount.goto(6.0, DEC)
            _wait(lambda: abs(dev.mount.coordinates[1] - DEC) < 1e-6 and dev.mount.tracking, 20, "at Dec 30, tracking")
            yield server, cfg, dev


def _bright_stars(image, n=5):
    stars = find_stars(image, min_snr=20, radius=15)
    return sorted(stars, key=lambda s: -s.flux)[:n]


def _shift(before, after, refs):
    """Mean centroid displacement (dx, dy) of the reference stars between two frames."""
    d = []
    for s in refs:
        a = measure_star(before, s.x, s.y, 10, min_snr=10)
        b = measure_star(after, s.x, s.y, 10, min_snr=10)
        d.append((b.x - a.x, b.y - a.y))
    return np.mean(np.asarray(d), axis=0)


def _true_shift(h0, h1):
    return h1["TRUEDX"] - h0["TRUEDX"], h1["TRUEDY"] - h0["TRUEDY"]


@pytest.mark.timeout(120)
def test_a_third_of_a_pixel_is_measurable(sky):
    server, cfg, dev = sky
    f0 = dev.guide_camera.expose(1.0)
    scale = f0.header["SCALE"]
    ra_rate = 0.5 * SIDEREAL_ARCSEC_PER_S * math.cos(math.radians(DEC))  # arcsec/s on the sky at guide rate
    ms = 0.3 * scale / ra_rate * 1000.0
    dev.mount.pulse_guide("W", int(round(ms)))
    f1 = dev.guide_camera.expose(1.0)
    true_dx, true_dy = _true_shift(f0.header, f1.header)
    assert math.hypot(true_dx, true_dy) == pytest.approx(0.3, abs=0.01)
    dx, dy = _shift(f0.data, f1.data, _bright_stars(f0.data))
    print(f"\ntrue shift ({true_dx:.3f}, {true_dy:.3f}) px, centroids ({dx:.3f}, {dy:.3f}) px")
    assert math.hypot(dx - true_dx, dy - true_dy) < 0.05


@pytest.mark.timeout(120)
def test_eod_coords_every_poll_without_deadband(sky):
    server, cfg, dev = sky
    with PropertyWatch(server.host, server.port, MOUNT, ("EQUATORIAL_EOD_COORD",)) as watch:
        t0 = time.monotonic()
        time.sleep(2.0)
        quiet = watch.updates("EQUATORIAL_EOD_COORD", since=t0 + 0.3)
        assert len(quiet) >= 12  # every 0.1 s poll, though nothing moved
        ra0 = float(quiet[-1][3]["RA"])
        dev.mount.pulse_guide("W", 100)  # 0.05 s of time: half INDI 1.9.9's deadband
        time.sleep(0.5)
        ra1 = float(watch.updates("EQUATORIAL_EOD_COORD")[-1][3]["RA"])
    assert (ra0 - ra1) * 3600.0 == pytest.approx(0.05, rel=0.02)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["mount", "st4"])
def test_pulses_move_the_star_by_rate_times_duration(sky, path):
    server, cfg, dev = sky
    pulser = open_guide_port(dev.client, GUIDER, cfg.indi.property_timeout) if path == "st4" else dev.mount
    rates = get_numbers(server.host, server.port, MOUNT, "GUIDE_RATE")
    f0 = dev.guide_camera.expose(1.0)
    scale = f0.header["SCALE"]
    refs = _bright_stars(f0.data)
    before = get_numbers(server.host, server.port, MOUNT, "SKY_TRUE_ERROR")
    pulser.pulse_guide("N", 1000)
    f1 = dev.guide_camera.expose(1.0)
    after = get_numbers(server.host, server.port, MOUNT, "SKY_TRUE_ERROR")
    expected_px = rates["GUIDE_RATE_NS"] * SIDEREAL_ARCSEC_PER_S * 1.0 / scale
    assert (after["GUIDE_DEC"] - before["GUIDE_DEC"]) / scale == pytest.approx(expected_px, rel=0.01)
    dx, dy = _shift(f0.data, f1.data, refs)
    assert math.hypot(dx, dy) == pytest.approx(expected_px, rel=0.03)
    pulser.pulse_guide("E", 1500)
    f2 = dev.guide_camera.expose(1.0)
    expected_px = rates["GUIDE_RATE_WE"] * SIDEREAL_ARCSEC_PER_S * 1.5 * math.cos(math.radians(DEC)) / scale
    dx2, dy2 = _shift(f1.data, f2.data, refs)
    assert math.hypot(dx2, dy2) == pytest.approx(expected_px, rel=0.03)
    assert abs(math.degrees(math.atan2(dy, dx) - math.atan2(dy2, dx2))) % 180 == pytest.approx(90, abs=2)
    pulser.pulse_guide("S", 1000)
    pulser.pulse_guide("W", 1500)


@pytest.mark.timeout(120)
def test_parameters_read_back(sky):
    server, cfg, dev = sky
    h, p = server.host, server.port
    try:
        for prop, values in {"SKY_PE": {"AMPLITUDE": 7.5, "PERIOD": 300.0, "H2": 1.25, "H3": 0.5},
                             "SKY_DRIFT": {"RA": 0.4, "DEC": -0.8},
                             "SKY_SEEING": {"FWHM": 2.2, "WANDER": 0.45, "TAU": 0.25},
                             "SKY_WIND": {"RATE": 2.0, "AMPLITUDE": 1.5, "DURATION": 2.5},
                             "SKY_BACKLASH": {"DEC": 4.0}}.items():
            set_number(h, p, MOUNT, prop, values)
            assert get_numbers(h, p, MOUNT, prop) == pytest.approx(values), prop
        set_number(h, p, GUIDER, "SKY_CAMERA_NOISE", {"READ_NOISE": 2.5, "SKY_BACKGROUND": 30.0})
        got = get_numbers(h, p, GUIDER, "SKY_CAMERA_NOISE")
        assert (got["READ_NOISE"], got["SKY_BACKGROUND"]) == (2.5, 30.0)
        # a value out of range is refused and the old one kept
        set_number(h, p, MOUNT, "SKY_PE", {"PERIOD": 0.0})
        assert get_numbers(h, p, MOUNT, "SKY_PE")["PERIOD"] == 300.0
        set_switch(h, p, MOUNT, "SKY_PRESET", {"GOOD": True})
        assert get_switches(h, p, MOUNT, "SKY_PRESET")["GOOD"]
        good = get_numbers(h, p, MOUNT, "SKY_SEEING")
        assert good["FWHM"] == 1.5 and get_numbers(h, p, MOUNT, "SKY_PE")["AMPLITUDE"] == 8.0
        # the true error moves with the periodic error now, and says what it is made of
        e0 = get_numbers(h, p, MOUNT, "SKY_TRUE_ERROR")
        time.sleep(1.0)
        e1 = get_numbers(h, p, MOUNT, "SKY_TRUE_ERROR")
        assert e1["TIME"] > e0["TIME"] and e1["PE"] != e0["PE"]
        assert e1["RA"] == pytest.approx(e1["PE"] + e1["DRIFT_RA"] + e1["GUST_RA"] + e1["GUIDE_RA"], abs=1e-6)
    finally:
        set_switch(h, p, MOUNT, "SKY_PRESET", {"CALM": True})
        set_number(h, p, GUIDER, "SKY_CAMERA_NOISE", {"READ_NOISE": 3.0, "SKY_BACKGROUND": 20.0})


@pytest.mark.timeout(120)
def test_tracking_off_lets_the_sky_run_and_park_parks(sky):
    server, cfg, dev = sky
    m = dev.mount
    try:
        m.set_tracking(False)
        ra0, t0 = m.coordinates[0], time.monotonic()
        time.sleep(2.0)
        ra1, t1 = m.coordinates[0], time.monotonic()
        # the mount stands in hour angle: the RA it points at runs at the sidereal rate
        assert (ra1 - ra0) * 3600.0 == pytest.approx((t1 - t0) * 1.0027379, abs=0.25)
        m.set_tracking(True)
        assert m.tracking is True
        m.park(timeout=30)
        assert m.parked is True and m.tracking is False
        assert m.coordinates[1] == pytest.approx(90.0)
        with pytest.raises(Exception, match="parked"):
            m.goto(6.0, DEC)
    finally:
        m.unpark()
        m.goto(6.0, DEC)
        _wait(lambda: abs(m.coordinates[1] - DEC) < 1e-6 and m.tracking, 20, "back at Dec 30, tracking")
    assert m.pier_side == "west"  # RA 6 h is east of the meridian (the sky's clock starts at LST 3 h)


@pytest.mark.timeout(120)
def test_the_main_camera_sees_the_same_sky(sky):
    """"Sky Camera" (1000 mm, 4.63 um) shares the mount and its error with the guider: a pulse moves both."""
    from indisync.devices.camera import Camera

    server, cfg, dev = sky
    cam = Camera(dev.client, "Sky Camera", cfg.indi.property_timeout, cfg.indi.readout_timeout).connect()
    f0 = cam.expose(1.0, binning=2)
    assert f0.data.shape == (600, 800)
    assert f0.header["SCALE"] == pytest.approx(206.264806 * 4.63 * 2 / 1000, rel=1e-6)
    dev.mount.pulse_guide("S", 500)
    f1 = cam.expose(1.0, binning=2)
    true_dx, true_dy = _true_shift(f0.header, f1.header)
    expected = 0.5 * SIDEREAL_ARCSEC_PER_S * 0.5 / f0.header["SCALE"]
    assert math.hypot(true_dx, true_dy) == pytest.approx(expected, rel=0.01)
    dx, dy = _shift(f0.data, f1.data, _bright_stars(f0.data))
    assert math.hypot(dx - true_dx, dy - true_dy) < 0.05
    dev.mount.pulse_guide("N", 500)
