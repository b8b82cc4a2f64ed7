"""The INDI device layer against real INDI simulators (no mocks)."""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
import weakref

import numpy as np
import pytest
import sep

from indisync.config import IndiConfig
from indisync.devices import client as client_module
from indisync.devices.session import open_devices
from indisync.errors import ConnectionFailed, DeviceError, UnknownFilter
from indisync.sim.indi import crash_ccd_driver, free_port

pytestmark = pytest.mark.integration

SIMULATOR_FILTERS = ["Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance"]


def count_stars_with_sep(data: np.ndarray) -> int:
    """An extractor independent of ours: SEP at 5 sigma over its own background."""
    image = data.astype(np.float64)
    background = sep.Background(image)
    return len(sep.extract(image - background, 5.0, err=background.globalrms, minarea=5))


def test_light_frame_has_stars_and_header(indi_config):
    with open_devices(indi_config, need=("camera", "focuser")) as dev:
        hdu = dev.camera.expose(1.0)
    assert hdu.data.shape == (1024, 1280)
    assert hdu.header["EXPTIME"] == 1.0
    assert hdu.header["INSTRUME"] == "CCD Simulator"
    assert hdu.header["XBINNING"] == 1
    assert len(hdu.header["DATE-OBS"].split(".")[-1]) == 3  # milliseconds
    stars = count_stars_with_sep(hdu.data)
    assert stars >= 20, f"only {stars} stars in a 1 s frame"


def test_binning_changes_frame_size(indi_config):
    with open_devices(indi_config) as dev:
        hdu = dev.camera.expose(0.5, binning=2)
    assert hdu.data.shape == (512, 640)
    assert hdu.header["XBINNING"] == 2 and hdu.header["YBINNING"] == 2


def test_wheel_names_and_selection(indi_config):
    with open_devices(indi_config, need=("filter_wheel",)) as dev:
        wheel = dev.filter_wheel
        assert wheel.names == SIMULATOR_FILTERS
        wheel.select("OIII")
        assert wheel.current == "OIII"
        with pytest.raises(UnknownFilter) as err:
            wheel.select("Purple")
        assert "Purple" in str(err.value) and "8 Luminance" in str(err.value)
        assert wheel.current == "OIII"


def test_focuser_moves_and_reports(indi_config):
    with open_devices(indi_config, need=("focuser",)) as dev:
        focuser = dev.focuser
        assert focuser.max_position == 100000
        assert focuser.move_to(41234) == 41234
        assert focuser.position == 41234
        assert focuser.move_to(40000) == 40000
        with pytest.raises(DeviceError, match="outside its range"):
            focuser.move_to(focuser.max_position + 1)


def test_mount_coordinates_and_pulse(indi_config):
    with open_devices(indi_config, need=("mount",)) as dev:
        ra, dec = dev.mount.coordinates
        assert 0 <= ra < 24 and -90 <= dec <= 90
        started = time.monotonic()
        dev.mount.pulse_guide("N", 300)
        dev.mount.pulse_guide("W", 300)
        assert time.monotonic() - started < 10
        with pytest.raises(DeviceError, match="direction"):
            dev.mount.pulse_guide("X", 100)


def test_works_when_devices_are_already_connected(indi_config):
    with open_devices(indi_config, need=("camera", "focuser")):
        pass
    with open_devices(indi_config, need=("camera", "focuser")) as dev:  # connected by the first session
        assert dev.focuser.position >= 0
        assert dev.camera.expose(0.2).data is not None


def test_driver_crash_mid_exposure_is_a_clear_error(indi_sim, indi_config):
    with open_devices(indi_config) as dev:
        threading.Timer(1.0, crash_ccd_driver, args=(indi_sim.host, indi_sim.port)).start()
        started = time.monotonic()
        with pytest.raises(DeviceError, match="vanished|crash|lost"):
            dev.camera.expose(30.0)
        assert time.monotonic() - started < 15


def test_server_gone_mid_session_errors_within_timeout(indi_sim, indi_config):
    cfg = dataclasses.replace(indi_config, move_timeout=20)
    with open_devices(cfg) as dev:
        threading.Timer(1.0, indi_sim.kill).start()
        started = time.monotonic()
        with pytest.raises(DeviceError):
            dev.camera.expose(30.0)
        assert time.monotonic() - started < cfg.property_timeout + 5


def test_no_server_fails_fast_naming_the_address():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}"):
        with open_devices(IndiConfig(host="127.0.0.1", port=port, connect_timeout=5)):
            pass
    assert time.monotonic() - started < 15


def test_missing_needed_device_lists_what_is_there(indi_sim):
    cfg = IndiConfig(host=indi_sim.host, port=indi_sim.port, camera="No Such Camera", connect_timeout=2)
    with pytest.raises(DeviceError, match="No Such Camera.*CCD Simulator"):
        with open_devices(cfg):
            pass


def test_repeated_sessions_leak_no_file_descriptors(indi_config):
    """A node reconnects all night: each session must give back every descriptor it took."""

    def open_descriptors(settle_to: int | None = None) -> int:
        # A closed client's socket thread may still be ending for a moment; a leak never settles.
        deadline = time.monotonic() + 3.0
        while True:
            gc.collect()
            count = len(os.listdir("/proc/self/fd"))
            if settle_to is None or count <= settle_to or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    def one_session() -> None:
        with open_devices(indi_config, need=("focuser",), want=("focuser",)) as dev:
            assert dev.focuser.position >= 0

    one_session()  # the first session loads what stays loaded
    baseline = open_descriptors()
    counts = []
    for _ in range(8):
        one_session()
        counts.append(open_descriptors(settle_to=baseline))
    assert max(counts) <= baseline, (baseline, counts)


def test_client_closed_during_a_callback_is_freed_only_after_its_socket_thread_ends(indi_config):
    """libindi's disconnect waits only 2 s for the socket thread. A client dropped while a callback was
    still running used to be freed by that callback's last reference, on its own thread: the process
    aborted, or a later callback touched freed memory (the CI segfault)."""
    in_callback = threading.Event()

    class SlowClient(client_module.IndiClient):
        slowed = False

        def newProperty(self, prop):
            if not SlowClient.slowed:
                SlowClient.slowed = True
                in_callback.set()
                time.sleep(3.0)  # longer than libindi's 2 s wait on disconnect
            super().newProperty(prop)

    client = SlowClient.connect(indi_config.host, indi_config.port, timeout=5)
    assert in_callback.wait(10)
    client.close(wait=0.1)  # returns while the callback still sleeps
    held = weakref.ref(client)
    del client
    gc.collect()
    assert held() is not None, "dropped while its socket thread was inside a callback"
    deadline = time.monotonic() + 15
    while held() is not None and time.monotonic() < deadline:
        client_module.release_finished_clients()
        gc.collect()
        time.sleep(0.1)
    assert held() is None, "never let go after its socket thread ended"
