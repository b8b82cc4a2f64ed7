"""Issue 13: a frame's header says what was true during the exposure, and HFR is measured after.

The stand-in devices here are plain objects with the attributes take_frame reads; the slave's
pre-move (wheel to the next filter, focuser to that filter's offset) is played by ``on_exposed``
moving them at once, which is what the real pre-move thread does when it wins the race against
the header (it runs while the frame is measured, and measuring takes far longer than a move).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from indisync.analysis.synthetic import noisy_frame, random_stars, render_stars
from indisync.config import load_config
from indisync.node.imaging import FrameRequest, take_frame
from indisync.node.measuring import FrameMeasurer, MeasureJob


class Wheel:
    def __init__(self, current):
        self.current = current

    def select(self, name):
        self.current = name


class Focuser:
    def __init__(self, position, temperature):
        self.position = position
        self.temperature = temperature


class Camera:
    def __init__(self, image):
        self.image = image

    def expose(self, seconds, binning, frame_type):
        hdu = fits.PrimaryHDU(self.image.copy())
        hdu.header["DATE-OBS"] = "2026-12-03T01:02:03.456"
        hdu.header["EXPTIME"] = seconds
        return hdu


class Devices:
    def __init__(self, image):
        self.camera = Camera(image)
        self.filter_wheel = Wheel("Red")
        self.focuser = Focuser(5000, 11.5)


def star_frame(shape=(256, 256)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return noisy_frame(render_stars(shape, random_stars(rng, shape, 20, sigma=2.0)), rng)


@pytest.fixture
def cfg(tmp_path):
    # measure at once: when the HFR worker measures (after a reply, at an exposure's start) is tested in test_hfr_worker
    return load_config(data={"storage": {"directory": str(tmp_path)}, "node": {"name": "slave1"},
                             "slave": {"measure_after_reply": 0}})


def premove(devices):
    def move():  # the next filter, and its focus offset
        devices.filter_wheel.select("Green")
        devices.focuser.position = 5150
        devices.focuser.temperature = 9.0

    return move


def test_header_has_the_focuser_position_of_the_exposure_not_of_the_pre_move(cfg):
    devices = Devices(np.full((64, 64), 1000, dtype=np.uint16))
    record = take_frame(devices, cfg, FrameRequest(duration=10, filter_name="Red"), on_exposed=premove(devices))
    header = fits.getheader(record.path)
    assert devices.focuser.position == 5150  # the pre-move did run before the header was written
    assert header["FILTER"] == "Red"
    assert header["FOCUSPOS"] == 5000
    assert header["FOCTEMP"] == 11.5
    assert header["DATE-OBS"] == "2026-12-03T01:02:03.456"
    assert record.context.focus_position == 5000 and record.context.date_obs == "2026-12-03T01:02:03.456"


def test_deferred_measurement_writes_the_frame_first_and_hands_on_the_pixels(cfg):
    image = np.full((64, 64), 1000, dtype=np.uint16)
    devices = Devices(image)
    record = take_frame(devices, cfg, FrameRequest(duration=10, filter_name="Red"), measure_inline=False)
    header = fits.getheader(record.path)
    assert "HFR" not in header and "NSTARS" not in header  # measured later, and files are never rewritten
    assert record.hfr is None and record.image is not None and record.image.dtype == np.uint16
    inline = take_frame(devices, cfg, FrameRequest(duration=10, filter_name="Red"))
    assert inline.image is None and fits.getheader(inline.path)["NSTARS"] == 0


def test_dark_frames_are_not_measured(cfg):
    devices = Devices(np.full((64, 64), 1000, dtype=np.uint16))
    record = take_frame(devices, cfg, FrameRequest(duration=10, filter_name="Red", frame_type="dark"),
                        measure_inline=False)
    assert record.image is None


def test_worker_measures_after_submit_returns_and_reports_each_frame(cfg):
    results, gate = [], threading.Event()

    def on_result(result):
        gate.wait(10)  # hold the worker: submit must not wait for it
        results.append(result)

    measurer = FrameMeasurer(cfg, on_result, capacity=2)
    image = star_frame()
    started = time.monotonic()
    assert measurer.submit(MeasureJob(image, "e-1", "f1.fits", "Red"))
    assert time.monotonic() - started < 1.0
    assert results == []  # nothing measured by the time submit returned... (the worker is held)
    gate.set()
    assert measurer.wait_idle(30)
    assert [r.job.exposure_id for r in results] == ["e-1"]
    assert results[0].stars and results[0].stars > 0 and results[0].hfr > 0 and not results[0].inline
    assert results[0].job.image is None  # the pixels are let go once measured
    measurer.close()


def test_full_queue_measures_inline_never_drops(cfg):
    results, gate = [], threading.Event()

    def on_result(result):
        if not result.inline:
            gate.wait(10)
        results.append(result)

    measurer = FrameMeasurer(cfg, on_result, capacity=1)
    image = np.full((64, 64), 1000, dtype=np.uint16)
    queued = [measurer.submit(MeasureJob(image, f"e-{i}", f"f{i}.fits", None)) for i in range(4)]
    # the worker holds one, the queue one more; the other two are measured by the caller
    assert queued.count(False) >= 2 and measurer.inline_count == queued.count(False)
    gate.set()
    assert measurer.wait_idle(30)
    assert sorted(r.job.exposure_id for r in results) == ["e-0", "e-1", "e-2", "e-3"]
    measurer.close()


def test_a_failing_report_does_not_stop_the_worker(cfg):
    seen = []

    def on_result(result):
        seen.append(result.job.exposure_id)
        if result.job.exposure_id == "bad":
            raise RuntimeError("broker gone")

    measurer = FrameMeasurer(cfg, on_result)
    image = np.full((64, 64), 1000, dtype=np.uint16)
    measurer.submit(MeasureJob(image, "bad", "a.fits", None))
    assert measurer.wait_idle(30)
    measurer.submit(MeasureJob(image, "good", "b.fits", None))
    assert measurer.wait_idle(30)
    assert seen == ["bad", "good"]
    measurer.close()


def test_a_scheduled_start_opens_the_shutter_at_that_time(cfg):
    from indisync.node import imaging

    devices = Devices(np.full((16, 16), 1000, dtype=np.uint16))
    opened = []
    devices.camera.expose = lambda *a: (opened.append(time.time()), Camera.expose(devices.camera, *a))[1]
    start_at = time.time() + 0.3
    take_frame(devices, cfg, FrameRequest(duration=1, filter_name="Red", start_at=start_at))
    assert start_at <= opened[0] < start_at + 0.1
    started = time.monotonic()
    imaging.wait_for_start(time.time() - 5)  # already past: at once
    assert time.monotonic() - started < 0.05


def test_start_lead_is_bounded_in_config():
    from indisync.errors import ConfigError

    assert load_config(data={"master": {"start_lead": 0.3}}).master.start_lead == 0.3
    with pytest.raises(ConfigError, match="start_lead"):
        load_config(data={"master": {"start_lead": 60}})


def test_wire_start_time_is_read_as_epoch_seconds():
    from indisync.node.slave import _epoch

    assert _epoch("1970-01-01T00:00:01.500Z") == 1.5
    assert _epoch(None) is None
