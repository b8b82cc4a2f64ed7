"""A node's camera cooling: the setpoint it asked for, the sensor's temperature over time, and how
long until the setpoint is reached — what the `cool` and `warm` commands and the node's state use.

``CoolingMonitor.sample()`` runs on the node's watch thread about once a second; the `cool` command
waits on the samples it takes. The setpoint lives here, not in the camera object: after indiserver
comes back the camera is a new object (and a restarted driver forgot the setpoint), so the monitor
sends it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..errors import DeviceError, IndisyncError

log = logging.getLogger(__name__)

RATE_WINDOW_S = 30.0  # the eta uses the rate of the last this many seconds of samples
MIN_RATE_C_PER_S = 1e-3  # slower than this (or moving away) is "not approaching": eta unknown


def eta_seconds(samples: list[tuple[float, float]], setpoint: float, tolerance: float) -> float | None:
    """Seconds until the temperature is within ``tolerance`` of ``setpoint``, at the rate of the
    samples (time, temperature) of the last RATE_WINDOW_S; 0 when there already; None when unknown
    (fewer than two samples, or not moving towards the setpoint)."""
    if not samples:
        return None
    t_last, temp_last = samples[-1]
    gap = abs(temp_last - setpoint) - tolerance
    if gap <= 0:
        return 0.0
    window = [(t, v) for t, v in samples if t >= t_last - RATE_WINDOW_S]
    if len(window) < 2 or window[-1][0] - window[0][0] <= 0:
        return None
    (t0, v0), (t1, v1) = window[0], window[-1]
    rate = (v1 - v0) / (t1 - t0)  # deg C per second, signed
    towards = rate if setpoint > temp_last else -rate
    if towards < MIN_RATE_C_PER_S:
        return None
    return gap / towards


@dataclass(frozen=True)
class CoolingStatus:
    setpoint: float
    temperature: float | None
    reached: bool
    eta_s: float | None

    def as_state(self) -> dict:
        return {"setpoint": round(self.setpoint, 2),
                "temperature": None if self.temperature is None else round(self.temperature, 2),
                "reached": self.reached,
                "eta_s": None if self.eta_s is None else round(self.eta_s, 1)}


class CoolingMonitor:
    """``get_camera()`` returns the node's current camera (or raises DeviceError when there is none)."""

    def __init__(self, get_camera: Callable[[], object]):
        self._get_camera = get_camera
        self._cond = threading.Condition()
        # Held while a setpoint goes to the camera: the watch thread's re-send must never overtake a new
        # setpoint on its way (it would see the camera's new value differ from ours and send the old one).
        self._send_lock = threading.Lock()
        self._setpoint: float | None = None
        self._tolerance = 1.0
        self._generation = 0  # bumps on every new setpoint: a waiting `cool` sees it was superseded
        self._samples: deque[tuple[float, float]] = deque(maxlen=600)
        self.temperature: float | None = None
        self.status: CoolingStatus | None = None

    @property
    def setpoint(self) -> float | None:
        return self._setpoint

    def set_setpoint(self, setpoint: float, tolerance: float) -> int:
        """Send ``setpoint`` to the camera now; returns the generation a waiter passes to ``wait``."""
        with self._send_lock:
            camera = self._get_camera()
            camera.set_temperature(setpoint)
            with self._cond:
                self._setpoint, self._tolerance = float(setpoint), float(tolerance)
                self._generation += 1
                self._samples.clear()
                self._cond.notify_all()
                return self._generation

    def sample(self, now: float | None = None) -> tuple[float | None, CoolingStatus | None]:
        """Read the sensor once (a snapshot, no I/O), re-send a lost setpoint, update the status."""
        now = time.monotonic() if now is None else now
        try:
            camera = self._get_camera()
        except DeviceError:
            return self.temperature, self.status  # no devices now: keep the last values
        temperature = camera.temperature if camera is not None else None
        with self._send_lock:
            setpoint = self._setpoint
            if camera is not None and setpoint is not None and camera.setpoint != setpoint and temperature is not None:
                try:
                    log.info("sending the cooling setpoint %g C again (the camera was reconnected)", setpoint)
                    camera.set_temperature(setpoint)
                except DeviceError as exc:
                    log.warning("could not send the cooling setpoint again: %s", exc)
        with self._cond:
            self.temperature = temperature
            if temperature is not None:
                self._samples.append((now, temperature))
            if self._setpoint is None:
                self.status = None
            else:
                reached = temperature is not None and abs(temperature - self._setpoint) <= self._tolerance
                self.status = CoolingStatus(self._setpoint, temperature, reached,
                                            eta_seconds(list(self._samples), self._setpoint, self._tolerance))
            self._cond.notify_all()
            return self.temperature, self.status

    def wait(self, generation: int, timeout: float, stop: threading.Event,
             progress: Callable[[CoolingStatus], None] | None = None, progress_every: float = 2.0) -> CoolingStatus:
        """Wait until the sampled status says reached; raises IndisyncError on timeout, on stop, or when a
        newer setpoint replaced this one. Samples come from the watch thread."""
        deadline = time.monotonic() + timeout
        next_progress = 0.0
        with self._cond:
            while True:
                if self._generation != generation:
                    raise IndisyncError(f"superseded: a new setpoint ({self._setpoint:g} C) was sent meanwhile")
                status = self.status
                if status is not None and status.reached:
                    return status
                now = time.monotonic()
                if stop.is_set():
                    raise IndisyncError("the node is stopping")
                if now >= deadline:
                    temp = "unknown" if status is None or status.temperature is None else f"{status.temperature:.1f} C"
                    raise IndisyncError(f"cooling to {self._setpoint:g} C not reached within {timeout:g} s: "
                                        f"the sensor is at {temp}. Check the cooler, or raise camera.cooling.timeout")
                if progress is not None and status is not None and now >= next_progress:
                    next_progress = now + progress_every
                    self._cond.release()
                    try:
                        progress(status)
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(min(0.5, deadline - now))
