"""Issue 18: a slave's HFR is measured in a niced worker process, not in a thread of the node.

A measurement running beside the next ``expose`` command held the node's GIL and a core at the
command's priority (start skew p99 26 ms with one slave, 221 ms with eight). These tests start the
real worker (``indisync.node.hfr_worker``) or a stand-in that crashes or hangs on purpose
(``tests.fakes.hfr_worker``); no servers.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from indisync.analysis.synthetic import noisy_frame, random_stars, render_stars
from indisync.config import load_config
from indisync.errors import ConfigError
from indisync.node.imaging import FrameRequest, measure_hfr, take_frame
from indisync.node.measuring import FrameMeasurer, MeasureJob, worker_niceness
from tests.fakes.hfr_worker import FAKE_HFR, FAKE_STARS
from tests.unit.test_frame_path import Devices

pytestmark = pytest.mark.timeout(120)

FAKE = "tests.fakes.hfr_worker"


def config(tmp_path, **slave):
    slave.setdefault("measure_after_reply", 0)  # at once, unless a test is about when
    return load_config(data={"storage": {"directory": str(tmp_path)}, "node": {"name": "slave1"}, "slave": slave})


@pytest.fixture
def cfg(tmp_path):
    return config(tmp_path)


def star_frame(shape=(512, 640), stars=40) -> np.ndarray:
    rng = np.random.default_rng(7)
    return noisy_frame(render_stars(shape, random_stars(rng, shape, stars, sigma=2.0)), rng).astype(np.uint16)


class Results:
    """on_result that records every result and can wait for a number of them."""

    def __init__(self):
        self.items = []
        self.threads = set()
        self._cond = threading.Condition()

    def __call__(self, result):
        with self._cond:
            self.items.append(result)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 60.0) -> list:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= n, timeout), f"{len(self.items)} of {n} results"
            return list(self.items)


@pytest.fixture
def measurer_factory(cfg):
    made = []

    def make(config=None, **kwargs):
        results = Results()
        measurer = FrameMeasurer(config or cfg, results, **kwargs)
        made.append(measurer)
        return measurer, results

    yield make
    for measurer in made:
        measurer.close(timeout=5)


def wait_for_worker(measurer, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while measurer.worker_pid is None:
        assert time.monotonic() < deadline, "the HFR worker did not come up"
        time.sleep(0.02)
    return measurer.worker_pid


def gone(pid: int, timeout: float = 10.0) -> bool:
    """The process has ended (a zombie not yet reaped by its parent counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_the_worker_is_another_process_at_a_lower_priority(measurer_factory):
    measurer, _ = measurer_factory()
    measurer.start()  # the slave starts it with the node, before the first frame
    pid = wait_for_worker(measurer)
    assert pid != os.getpid()
    assert worker_niceness(pid) == min(19, os.nice(0) + 10)  # slave.measure_nice's default


def test_a_frame_is_measured_from_its_file_with_the_figures_of_an_inline_measurement(cfg, measurer_factory):
    image = star_frame()
    record = take_frame(Devices(image), cfg, FrameRequest(duration=10, filter_name="Red"), measure_inline=False)
    inline_hfr, inline_stars = measure_hfr(record.image, cfg)
    assert inline_stars and inline_stars > 10
    measurer, results = measurer_factory()
    assert measurer.submit(MeasureJob(None, "e-1", record.path.name, "Red", path=str(record.path)))
    assert measurer.submit(MeasureJob(image, "e-2", "pixels.fits", "Red"))  # or handed its pixels
    by_file = {r.job.file: r for r in results.wait(2)}
    for result in by_file.values():
        assert (result.hfr, result.stars) == (inline_hfr, inline_stars)
        assert result.error is None and not result.inline and result.seconds > 0
    assert results.threads == {"hfr-feeder"}


def test_measuring_costs_the_node_process_no_cpu(measurer_factory):
    """The regression itself: in a thread, the measurement was this process's CPU (and its GIL)."""
    image = star_frame((1024, 1280), stars=150)
    measurer, results = measurer_factory()
    measurer.submit(MeasureJob(image, "warm-up", "w.fits", None))  # the worker starts, imports numpy/scipy once
    results.wait(1)
    before = time.process_time()
    for i in range(3):
        measurer.submit(MeasureJob(image, f"e-{i}", f"f{i}.fits", None))
        results.wait(2 + i)
    spent_here = time.process_time() - before
    measured = sum(r.seconds for r in results.items[1:])
    print(f"\n3 measurements: {measured:.3f} s in the worker, {spent_here:.3f} s CPU in this process")
    assert spent_here < 0.25 * measured


def test_a_worker_that_died_is_started_again_and_the_frame_is_measured(measurer_factory):
    measurer, results = measurer_factory(worker_module=FAKE)
    measurer.start()
    first = wait_for_worker(measurer)
    os.kill(first, signal.SIGKILL)
    assert gone(first)
    measurer.submit(MeasureJob(None, "e-1", "a.fits", "Red", path="a.fits"))
    (result,) = results.wait(1)
    assert (result.hfr, result.stars, result.error) == (FAKE_HFR, FAKE_STARS, None)
    assert measurer.worker_pid != first and measurer.restarts == 1


def test_a_frame_that_kills_the_worker_twice_is_reported_not_lost(measurer_factory):
    measurer, results = measurer_factory(worker_module=FAKE)
    measurer.submit(MeasureJob(None, "e-1", "die.fits", "Red", path="die.fits"))
    measurer.submit(MeasureJob(None, "e-2", "next.fits", "Red", path="next.fits"))
    bad, good = results.wait(2)
    assert bad.job.exposure_id == "e-1" and bad.hfr is None and bad.stars is None
    assert "died" in bad.error and "exit code 3" in bad.error
    assert good.job.exposure_id == "e-2" and (good.hfr, good.error) == (FAKE_HFR, None)  # a new worker goes on


def test_a_hung_worker_is_killed_within_the_timeout_and_the_next_frame_gets_a_new_one(measurer_factory):
    measurer, results = measurer_factory(worker_module=FAKE, timeout=1.0)
    measurer.start()
    hung = wait_for_worker(measurer)
    started = time.monotonic()
    measurer.submit(MeasureJob(None, "e-1", "hang.fits", None, path="hang.fits"))
    measurer.submit(MeasureJob(None, "e-2", "ok.fits", None, path="ok.fits"))
    first, second = results.wait(2)
    assert first.hfr is None and "within 1 s" in first.error
    assert time.monotonic() - started < 15
    assert gone(hung)
    assert (second.hfr, second.error) == (FAKE_HFR, None) and measurer.worker_pid != hung


def test_a_late_result_still_lands_and_close_waits_for_it(measurer_factory):
    measurer, results = measurer_factory(worker_module=FAKE)
    measurer.submit(MeasureJob(None, "e-1", "slow.fits", None, path="slow.fits"))
    measurer.close(timeout=30)
    assert [(r.job.exposure_id, r.hfr) for r in results.items] == [("e-1", FAKE_HFR)]


def test_frames_left_at_shutdown_are_reported_as_not_measured(measurer_factory):
    measurer, results = measurer_factory(worker_module=FAKE, capacity=4)
    for i in range(3):
        measurer.submit(MeasureJob(None, f"e-{i}", f"hang{i}.fits", None, path=f"hang{i}.fits"))
    started = time.monotonic()
    measurer.close(timeout=0.5)
    assert time.monotonic() - started < 15
    assert sorted(r.job.exposure_id for r in results.items) == ["e-0", "e-1", "e-2"]
    assert all(r.hfr is None and r.error for r in results.items)
    assert any("stopped" in r.error for r in results.items)


def test_a_worker_that_cannot_start_is_reported_and_tried_again(cfg, measurer_factory):
    measurer, results = measurer_factory(worker_module="tests.fakes.no_such_worker", start_timeout=10)
    measurer.submit(MeasureJob(None, "e-1", "a.fits", None, path="a.fits"))
    (result,) = results.wait(1)
    assert result.hfr is None and "died" in result.error


def test_after_a_reply_measuring_waits_for_the_next_exposure_to_start(tmp_path, measurer_factory):
    """The master's next command follows a slave's reply: the worker must not be busy then. The
    frame is measured once the next exposure has started (plus measure_after_start)."""
    measurer, results = measurer_factory(config(tmp_path, measure_after_reply=30, measure_after_start=0.3),
                                         worker_module=FAKE)
    measurer.start()
    wait_for_worker(measurer)
    measurer.submit(MeasureJob(None, "e-1", "a.fits", None, path="a.fits"))
    time.sleep(1.0)
    assert results.items == []  # the next command may come any moment: not measuring
    started = time.monotonic()
    measurer.exposure_starting()  # the next exposure's shutter opens now
    results.wait(1, timeout=10)
    assert 0.25 <= time.monotonic() - started < 5


def test_a_scheduled_start_holds_measuring_until_after_it(tmp_path, measurer_factory):
    measurer, results = measurer_factory(config(tmp_path, measure_after_reply=30, measure_after_start=0.2),
                                         worker_module=FAKE)
    measurer.submit(MeasureJob(None, "e-1", "a.fits", None, path="a.fits"))
    started = time.monotonic()
    measurer.exposure_starting(time.time() + 1.0)  # master.start_lead: the shutters open in 1 s
    results.wait(1, timeout=10)
    assert 1.15 <= time.monotonic() - started < 6


def test_a_frame_with_no_next_exposure_is_measured_after_the_quiet_time(tmp_path, measurer_factory):
    measurer, results = measurer_factory(config(tmp_path, measure_after_reply=1.0), worker_module=FAKE)
    started = time.monotonic()
    measurer.submit(MeasureJob(None, "e-1", "last.fits", None, path="last.fits"))
    results.wait(1, timeout=15)
    assert 0.95 <= time.monotonic() - started < 10


def test_close_measures_what_waits_at_once(tmp_path, measurer_factory):
    measurer, results = measurer_factory(config(tmp_path, measure_after_reply=60), worker_module=FAKE)
    measurer.submit(MeasureJob(None, "e-1", "last.fits", None, path="last.fits"))
    started = time.monotonic()
    measurer.close(timeout=30)
    assert [r.job.exposure_id for r in results.items] == ["e-1"] and time.monotonic() - started < 20


def test_measure_priority_and_timeout_are_checked_in_config():
    cfg = load_config(data={"slave": {"measure_nice": 19, "measure_timeout": 60}})
    assert (cfg.slave.measure_nice, cfg.slave.measure_timeout) == (19, 60)
    with pytest.raises(ConfigError, match="measure_nice"):
        load_config(data={"slave": {"measure_nice": 25}})
    with pytest.raises(ConfigError, match="measure_timeout"):
        load_config(data={"slave": {"measure_timeout": 0}})
    with pytest.raises(ConfigError, match="measure_after_reply"):
        load_config(data={"slave": {"measure_after_reply": -1}})
