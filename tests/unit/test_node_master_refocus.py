"""The master's refocus and frame paths when its own autofocus outlives the wait (no server):
the late result is never read, the run is asked to stop and stays accounted, and the next
device_lock wait is bounded with a reason instead of hanging the night."""

from __future__ import annotations

import threading
import time

import pytest

from indisync.config import load_config
from indisync.errors import IndisyncError
from indisync.node import master as master_module
from indisync.node.master import MasterNode
from indisync.sequence.plan import expand_batch


class StandInRegistry:
    def live(self, role):
        return []


class StandInClient:
    def close(self):
        pass


class StandInDevices:
    focuser = None
    filter_wheel = None


class LateFocusResult:
    ok = True

    def summary(self):
        return {"status": "ok", "position": 123}


@pytest.fixture
def master(tmp_path, monkeypatch):
    monkeypatch.setattr(master_module, "SLAVE_MARGIN_S", 0.0)
    monkeypatch.setattr(master_module, "DEVICE_LOCK_WAIT_S", 0.5, raising=False)
    cfg = load_config(data={
        "node": {"name": "master", "role": "master"},
        "storage": {"directory": str(tmp_path / "images")},
        "focus": {"timeout": 0.5, "output_dir": str(tmp_path / "focus")},
        "master": {"sequence": {"slots": [{"type": "light", "filter": None, "exposure": 1, "repeat": 2}]}},
    })
    node = MasterNode(cfg)
    node.registry = StandInRegistry()
    node.client = StandInClient()
    node.link.update_state = lambda **fields: None
    node.link.event = lambda *a, **k: None
    node.supervisor.get = lambda: StandInDevices()
    yield node


def test_a_refocus_that_outlives_its_wait_is_failed_aborted_and_never_read_late(master):
    release = threading.Event()
    finished = threading.Event()

    def stuck_autofocus(reason=None, progress=None):
        # a run that ignores its timeout; it stops only when asked to abort (or released)
        while not master.abort_event.is_set() and not release.is_set():
            time.sleep(0.01)
        release.wait(5)  # ... and even then takes a while to give the lock back
        finished.set()
        return LateFocusResult()

    master.autofocus = stuck_autofocus
    started = time.monotonic()
    master.refocus_all("test")
    assert time.monotonic() - started < 5
    reported = master.focus_runs[-1]["nodes"]["master"]
    assert reported["status"] == "failed"
    assert "still running" in (reported.get("reason") or ""), reported
    assert master.abort_event.is_set(), "the runaway autofocus was not asked to stop"
    assert any(t.is_alive() for t in master._stray_focus_threads), "the still-running thread is not accounted"

    # The next frame: the lock is still held by the runaway run; the wait is bounded with a reason.
    frame = expand_batch(master.cfg.master.sequence)[0]
    outcome = {}

    def expose():
        try:
            master.synced_exposure(frame)
        except IndisyncError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=expose, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "the next device_lock wait has no bound"
    assert "busy" in outcome.get("error", ""), outcome

    release.set()  # the late result arrives: what was reported stays as it was
    assert finished.wait(5)
    time.sleep(0.1)
    assert master.focus_runs[-1]["nodes"]["master"] == reported
