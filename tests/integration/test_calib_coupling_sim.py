"""The simulator rig's twilight sky and light panel (indisync.sim.calib_coupling.SkyCoupling) on the
real INDI 1.9.9 simulators: what the calibration tests stand on, checked from FLAT frames' pixels.

- a dusk that halves every 20 s gives flats whose mean ADU halves every 20 s (the frames' times);
- the wheel's filter dims it by its offset (R: +5, half a halving);
- the Light Panel Simulator ON lights the flats from its intensity (255 -> 45; half the intensity,
  half the ADU), and OFF gives the sky back;
- outside the twilight SIM_SKYGLOW is restored to the night's 19.5 (read back), and a LIGHT frame
  then has its dark night sky;
- through the ExposureGate (as the sim rig's nodes connect), a frame started the moment the panel or
  the wheel read back has the new light, every time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from indisync.config import IndiConfig
from indisync.devices.session import open_devices
from indisync.sim.calib_coupling import SkyCoupling, Twilight, flat_rate
from indisync.sim.calib_gate import ExposureGate
from indisync.sim.indi import IndiServer, get_numbers, get_switches, set_number, set_switch

pytestmark = pytest.mark.integration
PANEL = "Light Panel Simulator"
DRIVERS = ("indi_simulator_ccd", "indi_simulator_telescope", "indi_simulator_wheel", "indi_simulator_lightpanel")


def _flat(camera, seconds: float) -> tuple[float, float]:
    """(mean ADU, epoch s at its start) of one FLAT frame: the simulator draws it with the
    SIM_SKYGLOW of the exposure's start (measured)."""
    start = time.time()
    hdu = camera.expose(seconds, frame_type="flat")
    return float(np.mean(hdu.data, dtype=np.float64)), start


def _connect_panel(srv) -> None:
    set_switch(srv.host, srv.port, PANEL, "CONNECTION", {"CONNECT": True})
    deadline = time.monotonic() + 10
    while not get_switches(srv.host, srv.port, PANEL, "CONNECTION")["CONNECT"]:
        assert time.monotonic() < deadline, "the Light Panel Simulator did not connect"
        time.sleep(0.2)


def _panel(srv, on: bool, intensity: float | None = None) -> None:
    if intensity is not None:
        set_number(srv.host, srv.port, PANEL, "FLAT_LIGHT_INTENSITY", {"FLAT_LIGHT_INTENSITY_VALUE": intensity})
        assert get_numbers(srv.host, srv.port, PANEL, "FLAT_LIGHT_INTENSITY")["FLAT_LIGHT_INTENSITY_VALUE"] \
            == pytest.approx(intensity)
    set_switch(srv.host, srv.port, PANEL, "FLAT_LIGHT_CONTROL", {"FLAT_LIGHT_ON": on, "FLAT_LIGHT_OFF": not on})
    assert get_switches(srv.host, srv.port, PANEL, "FLAT_LIGHT_CONTROL")["FLAT_LIGHT_ON"] is on


@pytest.mark.timeout(150)
def test_the_twilight_and_the_panel_light_the_flats(tmp_path):
    with IndiServer(drivers=DRIVERS, time_factor=1.0, workdir=tmp_path / "indi") as srv:
        cfg = IndiConfig(host=srv.host, port=srv.port, camera="CCD Simulator", filter_wheel="Filter Simulator",
                         focuser=None, guide_camera=None, mount="Telescope Simulator", connect_timeout=10)
        # the CCD Simulator draws flats only with a telescope connected on its server
        with open_devices(cfg, need=("camera", "mount", "filter_wheel")) as dev, \
                SkyCoupling(srv.host, srv.port) as sky:
            _connect_panel(srv)
            camera, wheel = dev.camera, dev.wheel
            clear = next(n for n in wheel.names if n.lower() in ("l", "lum", "luminance", "clear"))
            wheel.select(clear)
            assert sky.wait_skyglow(lambda v: abs(v - 19.5) < 0.05, 10, "the night's 19.5") == pytest.approx(19.5)

            # a dusk halving every 20 s, from 50 (a 1 s flat ~32,000 ADU)
            dusk = Twilight.now("dusk", m0=50.0, halving_s=20.0)
            sky.set_twilight(dusk)
            sky.wait_settled(10)
            first, t1 = _flat(camera, 0.5)
            assert first == pytest.approx(0.5 * dusk.rate(t1), rel=0.15), (first, sky.skyglow)
            time.sleep(max(0.0, t1 + 20.0 - time.time()))
            second, t2 = _flat(camera, 0.5)
            expected = 2.0 ** (-(t2 - t1) / 20.0)
            assert second / first == pytest.approx(expected, rel=0.12), (first, second, t2 - t1)
            assert 0.4 < second / first < 0.6

            # the wheel's filter dims the sky: R is +5 (a factor 2**-0.5)
            red = next(n for n in wheel.names if n.lower() in ("r", "red"))
            wheel.select(red)
            sky.wait_settled(10)
            assert sky.filter_name == red and sky.source == "twilight"
            third, t3 = _flat(camera, 0.5)
            assert third == pytest.approx(0.5 * dusk.rate(t3, 5.0), rel=0.15), (third, sky.skyglow)

            # the panel ON lights the flats from its intensity, OFF gives the sky back
            wheel.select(clear)
            _panel(srv, True, 250)
            got = sky.wait_skyglow(lambda v: abs(v - (45.0 - 10 * np.log2(250 / 255))) < 0.05, 10, "the panel's 250")
            assert sky.source == "panel"
            bright, _ = _flat(camera, 0.5)
            assert bright == pytest.approx(0.5 * flat_rate(got), rel=0.15)
            _panel(srv, True, 120)
            sky.wait_skyglow(lambda v: abs(v - (45.0 - 10 * np.log2(120 / 255))) < 0.05, 10, "the panel's 120")
            dim, _ = _flat(camera, 0.5)
            assert dim / bright == pytest.approx(120 / 250, rel=0.12), (bright, dim)
            _panel(srv, False)
            sky.wait_skyglow(lambda v: v > 55.0, 10, "the dusk sky again")
            assert sky.source == "twilight"

            # outside twilight: the night's value restored (read back), and a LIGHT frame is dark
            sky.set_twilight(None)
            sky.wait_skyglow(lambda v: abs(v - 19.5) < 0.05, 10, "the night's 19.5")
            assert get_numbers(srv.host, srv.port, "CCD Simulator", "SIMULATOR_SETTINGS")["SIM_SKYGLOW"] \
                == pytest.approx(19.5)
            light = camera.expose(0.5, frame_type="light")
            assert float(np.median(light.data)) < 2000, "a light frame after twilight should have a dark sky"
            assert sky.alive and not sky.errors, sky.errors
            assert sky.sets >= 5


@pytest.mark.timeout(120)
def test_through_the_gate_every_frame_has_the_light_of_its_start(tmp_path):
    """A node that exposes the moment its panel or wheel reads back (as the nodes do) gets the new light
    in every frame through the ExposureGate; without it the coupling loses that race now and then."""
    import random

    with IndiServer(drivers=DRIVERS, time_factor=1.0, workdir=tmp_path / "indi") as srv, \
            SkyCoupling(srv.host, srv.port, Twilight.now("dusk", m0=50.0, halving_s=60.0)) as sky, \
            ExposureGate(sky, srv.host, srv.port) as gate:
        cfg = IndiConfig(host=gate.host, port=gate.port, camera="CCD Simulator", filter_wheel="Filter Simulator",
                         focuser=None, guide_camera=None, mount="Telescope Simulator", light_panel=PANEL,
                         connect_timeout=10)
        rng = random.Random(3)
        with open_devices(cfg, need=("camera", "mount", "filter_wheel", "light_panel")) as dev:
            camera, wheel, panel = dev.camera, dev.wheel, dev.light_panel
            wheel.select("Luminance")
            panel.set_brightness(0)
            panel.turn_on()
            wrong = []
            for i in range(16):
                if i % 4 == 0:
                    wheel.select(rng.choice(["Luminance", "Red", "Blue"]))
                got = panel.set_brightness(rng.choice(range(10, 256, 10)))
                mean, _ = _flat(camera, 0.1)
                want = 0.1 * flat_rate(45.0 - 10 * np.log2(got / 255) + {"Luminance": 0, "Red": 5, "Blue": 7}[
                    wheel.current])
                if abs(mean / want - 1) > 0.08:
                    wrong.append((i, wheel.current, got, round(mean), round(want)))
            assert not wrong, wrong
            panel.turn_off()
            # the twilight again, right after a filter change
            for name in ("Red", "Luminance", "Blue"):
                wheel.select(name)
                mean, start = _flat(camera, 0.2)
                want = 0.2 * sky.twilight.rate(start, {"Luminance": 0, "Red": 5, "Blue": 7}[name])
                assert mean == pytest.approx(want, rel=0.08), (name, mean, want)
            assert gate.exposures >= 19 and not gate.errors and not sky.errors, (gate.errors, sky.errors)
