"""One night-running harness for unit tests: the real executor (indisync.night.executor) on a rig
(usually tests/fakes/rig.py's), its loop on a thread of its own, the night's window relative to now."""

from __future__ import annotations

import threading
import time

from indisync.night import executor as executor_module
from indisync.night.executor import NightExecutor


class NightRun:
    """``window``: the night's (start, end) in seconds from now (``self.now``, for a subclass's other
    intervals). ``stop()`` ends the loop; what it raised is kept in ``error``."""

    def __init__(self, monkeypatch, rig, window=(-10.0, 3600.0), tick: float = 0.02):
        self.rig = rig
        self.now = now = time.time()
        monkeypatch.setattr(executor_module, "night_window",
                            lambda cfg, devices, at, report=None: (now + window[0], now + window[1], None))
        self.executor = NightExecutor(rig, tick=tick)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.executor.run()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def states(self):
        return [t["to"] for t in self.executor.timeline]

    @property
    def state(self):
        return self.executor.snapshot.state if self.executor.snapshot else None

    def wait(self, predicate, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.005)
        raise AssertionError(f"{what} not within {timeout} s; states {self.states()}, errors {self.rig.report.errors}")

    def stop(self):
        self.rig.stop_event.set()
        self.thread.join(5)
