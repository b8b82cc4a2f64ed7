"""A node's `flats` and `darks` handlers on the real INDI 1.9.9 simulators (CCD, wheel, telescope:
the CCD Simulator draws FLAT frames only with a telescope connected; Light Panel Simulator), driven
directly (no MQTT): every figure is read back from the files written or from the simulators.

- the light panel device: on/off and brightness, read back from the simulator; the camera's gain,
  offset and full scale (CCD_BITSPERPIXEL);
- an unreachable band (min_exposure = max_exposure, far too short): that set fails with the reason
  and the next set still runs;
- darks and bias at the setpoint, then skipped the second time within max_age.

Sky flats in band and panel flats trained once then re-used are shown end to end, through the night
and `indisync flats --panel` on a simulated rig (test_flats_sim.py, test_panel_flats_sim.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from indisync.config import IndiConfig, load_config
from indisync.devices.session import open_devices
from indisync.node.slave import SlaveNode
from indisync.protocol import messages
from indisync.protocol.commands import Command
from indisync.protocol.messages import now_iso
from indisync.sim.indi import IndiServer, get_numbers, get_switches, set_ccd_settings

pytestmark = pytest.mark.integration
PANEL = "Light Panel Simulator"
DRIVERS = ("indi_simulator_ccd", "indi_simulator_wheel", "indi_simulator_telescope", "indi_simulator_lightpanel")
FULL = 65535.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with IndiServer(drivers=DRIVERS, time_factor=1.0, workdir=tmp_path_factory.mktemp("indi")) as srv:
        yield srv


@pytest.fixture
def node(server, tmp_path):
    made = []

    def make(**sections) -> SlaveNode:
        data = {"node": {"name": "ota1", "role": "slave"}, "storage": {"directory": str(tmp_path / "store")},
                "indi": {"host": server.host, "port": server.port, "focuser": None, "guide_camera": None,
                         "light_panel": PANEL, "connect_timeout": 10},
                "slave": {"filters": ["Red"], "exposure": 2},
                "flats": {"count": 3, "min_exposure": 0.05, "max_exposure": 5.0}, **sections}
        n = SlaveNode(load_config(data=data))
        n.events, n.invalid = [], []

        def event(event_type, **fields):
            try:  # as the wire checks it (a refused report is only logged by the node)
                messages.make(event_type, "ota1", fields)
            except Exception as exc:  # noqa: BLE001
                n.invalid.append(f"{event_type}: {exc}")
            n.events.append((event_type, fields))

        n.link.event = event
        n.link.update_state = lambda **fields: None
        n.supervisor.start()
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()
        n.supervisor.close()
        n._calib_library.close()
    assert [bad for n in made for bad in n.invalid] == []  # every event passed the wire's schema


def run(node, name, **args):
    handler = node.cmd_flats if name == "flats" else node.cmd_darks
    return handler(Command(id=f"{name}-{len(node.events)}", name=name, sender="test", args=args, ts=now_iso()),
                   lambda *a, **k: None)


def calib_files(node, prefix: str) -> list[Path]:
    return sorted(p for p in (Path(node.cfg.storage.directory) / "calib").rglob(f"{prefix}*.fits"))


def mean_of(path: Path) -> float:
    return float(np.mean(fits.getdata(path), dtype=np.float64))


@pytest.mark.timeout(60)
def test_the_light_panel_turns_on_and_off_and_takes_its_brightness(server):
    cfg = IndiConfig(host=server.host, port=server.port, camera="CCD Simulator", filter_wheel=None, focuser=None,
                     guide_camera=None, mount=None, light_panel=PANEL)
    with open_devices(cfg, need=("light_panel",), want=("light_panel",)) as dev:
        panel = dev.light_panel
        assert panel.dimmable and panel.brightness_range == (0.0, 255.0)
        assert panel.set_brightness(120) == 120.0
        assert get_numbers(server.host, server.port, PANEL, "FLAT_LIGHT_INTENSITY")["FLAT_LIGHT_INTENSITY_VALUE"] \
            == 120.0
        panel.turn_on()
        assert panel.is_on and get_switches(server.host, server.port, PANEL, "FLAT_LIGHT_CONTROL")["FLAT_LIGHT_ON"]
        panel.turn_off()
        assert panel.is_on is False
        assert get_switches(server.host, server.port, PANEL, "FLAT_LIGHT_CONTROL")["FLAT_LIGHT_OFF"]


@pytest.mark.timeout(60)
def test_the_cameras_gain_offset_and_full_scale(server):
    cfg = IndiConfig(host=server.host, port=server.port, camera="CCD Simulator", filter_wheel=None, focuser=None,
                     guide_camera=None, mount=None)
    with open_devices(cfg, need=("camera",), want=("camera",)) as dev:
        camera = dev.camera
        for prop in ("CCD_INFO", "CCD_GAIN", "CCD_OFFSET"):  # read from what the driver has sent: let it arrive
            dev.client.wait_property(camera.name, prop, 10.0)
        assert camera.full_scale == FULL and camera.min_exposure == pytest.approx(0.01)  # CCD_BITSPERPIXEL 16
        assert camera.gain == 90.0 and camera.offset == 0.0
        assert camera.set_gain(50) == 50.0
        assert get_numbers(server.host, server.port, "CCD Simulator", "CCD_GAIN")["GAIN"] == 50.0
        assert camera.set_gain(90) == 90.0


@pytest.mark.timeout(180)
def test_an_unreachable_band_fails_that_set_with_the_reason_and_the_next_set_still_runs(server, node):
    assert set_ccd_settings(server.host, server.port, SIM_SKYGLOW=60.0)["SIM_SKYGLOW"] == 60.0
    ota = node()
    result = run(ota, "flats", mode="sky", direction="dusk", min_exposure=0.05, max_exposure=0.05,
                 sets=[{"filter": "Red"}, {"filter": "Green"}])
    assert result.status == "failed"
    for s in result.sets:  # 0.05 s gives ~800 ADU, far below the band: both tried, both fail saying why
        assert s["status"] == "failed" and s["taken"] >= 1 and s["kept"] == 0
        assert "too dark" in s["reason"] and "flats.max_exposure 0.05 s" in s["reason"]
    assert calib_files(ota, "FLAT_") == []


@pytest.mark.timeout(180)
def test_darks_at_the_setpoint_then_skipped_within_max_age(server, node):
    sensor = get_numbers(server.host, server.port, "CCD Simulator", "CCD_TEMPERATURE")["CCD_TEMPERATURE_VALUE"]
    setpoint = round(sensor)  # the simulator's cooler reaches it at once: no minutes of cooling in a test
    ota = node(camera={"cooling": {"setpoint": setpoint, "tolerance": 1.0}}, darks={"count": 2, "cool_wait_s": 60})
    sets = [{"kind": "dark", "exposure": 0.5}, {"kind": "bias", "exposure": 0}]
    first = run(ota, "darks", sets=sets, covered=True)
    assert first.status == "ok", first.reason
    assert [(s["kind"], s["status"], s["count"]) for s in first.sets] == [("dark", "taken", 2), ("bias", "taken", 2)]
    darks, biases = calib_files(ota, "DARK_1_0.5s_"), calib_files(ota, "BIAS_1_0s_")
    assert len(darks) == 2 and len(biases) == 2
    header = fits.getheader(darks[0])
    assert header["IMAGETYP"] == "Dark Frame" and header["EXPTIME"] == 0.5 and header["SET-TEMP"] == setpoint
    assert abs(header["CCD-TEMP"] - setpoint) <= 1.0
    assert fits.getheader(biases[0])["IMAGETYP"] == "Bias Frame" and fits.getheader(biases[0])["EXPTIME"] == 0.01
    assert mean_of(darks[0]) < 100  # a dark frame: the simulator's bias level, no sky
    second = run(ota, "darks", sets=sets, covered=True)
    assert [s["status"] for s in second.sets] == ["skipped", "skipped"] and second.status == "ok"
    assert len(calib_files(ota, "")) == 4  # nothing more taken
