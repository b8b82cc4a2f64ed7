"""Frames graded on the real CCD simulator: bad seeing and a noisy sky are rejected, each with its
reason in the FITS header; good frames are not. Every simulator setting is read back."""


import pytest
from astropy.io import fits

from indisync.config import IndiConfig, StorageConfig, load_config
from indisync.devices.session import open_devices
from indisync.node.imaging import FrameRequest, take_frame
from indisync.record.grading import FrameGrader
from indisync.sim.indi import IndiServer, get_numbers, set_number

pytestmark = pytest.mark.integration

CCD = "CCD Simulator"


@pytest.fixture
def sky():
    server = IndiServer(drivers=("indi_simulator_ccd", "indi_simulator_focus", "indi_simulator_telescope"))
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def _set(server, prop, values):
    set_number(server.host, server.port, CCD, prop, values)
    now = get_numbers(server.host, server.port, CCD, prop)
    assert all(abs(now[k] - v) < 1e-6 for k, v in values.items()), f"{prop}: asked {values}, simulator has {now}"


@pytest.mark.timeout(180)
def test_bad_seeing_and_noise_are_rejected_with_reason(sky, tmp_path):
    cfg = load_config(data={"node": {"name": "ota1"}, "grading": {"min_history": 3, "window": 5}})
    cfg = cfg.replace(storage=StorageConfig(directory=str(tmp_path)))
    grader = FrameGrader(cfg.grading)
    with open_devices(IndiConfig(host=sky.host, port=sky.port, filter_wheel=None, mount=None, guide_camera=None),
                      need=("camera", "focuser"), want=("camera", "focuser")) as dev:
        focus = dev.focuser.position

        def seeing(value):
            _set(sky, "SIM_FOCUSING", {"SIM_FOCUS_POSITION": focus, "SIM_FOCUS_MAX": 10000, "SIM_SEEING": value})
            # The simulator recomputes its star size only when the focuser moves: nudge it.
            dev.focuser.move_to(focus + 1)
            dev.focuser.move_to(focus)

        def frame(n):
            record = take_frame(dev, cfg, FrameRequest(duration=1.0, filter_name=None, seq_index=n),
                                grader=lambda f, h, s: (grader.grade(f, h, s), None))
            header = fits.getheader(record.path)
            assert header["GRADE"] == record.grade.status and header["GRADERSN"] == record.grade.reason[:68]
            return record

        seeing(3.0)
        _set(sky, "SIMULATOR_SETTINGS", {"SIM_NOISE": 10})
        good = [frame(n) for n in range(1, 4)]
        assert all(r.grade.accepted for r in good), [r.grade for r in good]
        seeing(6.0)
        blurred = frame(4)
        assert not blurred.grade.accepted and blurred.grade.reason.startswith("hfr "), blurred
        assert blurred.path.exists()  # rejected frames are kept
        seeing(3.0)
        assert frame(5).grade.accepted
        _set(sky, "SIMULATOR_SETTINGS", {"SIM_NOISE": 60})
        noisy = frame(6)
        assert not noisy.grade.accepted and noisy.grade.reason.startswith("stars "), noisy
        _set(sky, "SIMULATOR_SETTINGS", {"SIM_NOISE": 10})
        assert frame(7).grade.accepted
    assert len(list(tmp_path.glob("*.fits"))) == 7
