"""Keeps a node's INDI devices usable: rebuilds the client when indiserver goes away and comes back.

A node must not die with its indiserver (a driver restart, a USB hiccup on the Pi): it reports the
loss, fails what it was doing, and reconnects in the background; commands meanwhile fail fast with
a reason instead of hanging.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ..devices.settings import IndiConfig
from ..devices.session import Devices, connect_devices
from ..errors import DeviceError, IndisyncError

log = logging.getLogger(__name__)


class DeviceSupervisor:
    def __init__(self, cfg: IndiConfig, need: tuple[str, ...], retry_every: float = 3.0,
                 on_change: Callable[[bool, str | None], None] | None = None):
        self.cfg, self.need, self.retry_every = cfg, need, retry_every
        self.on_change = on_change or (lambda ok, why: None)
        self._devices: Devices | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> Devices:
        """Connect once (errors go to the caller: a bad config must stop start-up), then watch."""
        self._devices = connect_devices(self.cfg, self.need)
        self._thread = threading.Thread(target=self._watch, name="indi-supervisor", daemon=True)
        self._thread.start()
        return self._devices

    def get(self) -> Devices:
        with self._lock:
            devices = self._devices
        if devices is None or devices.client.lost:
            raise DeviceError(
                f"no connection to indiserver at {self.cfg.host}:{self.cfg.port} "
                f"({self.last_error or 'connection lost'}); reconnecting every {self.retry_every:g}s"
            )
        return devices

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            devices, self._devices = self._devices, None
        if devices is not None:
            devices.client.close()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                devices = self._devices
            if devices is not None and not devices.client.lost:
                continue
            if devices is not None:
                self.last_error = "connection lost"
                log.error("lost indiserver at %s:%s; reconnecting", self.cfg.host, self.cfg.port)
                self.on_change(False, self.last_error)
                devices.client.close()
                with self._lock:
                    self._devices = None
            while not self._stop.is_set():
                try:
                    fresh = connect_devices(self.cfg, self.need)
                except IndisyncError as exc:
                    self.last_error = str(exc)
                    self._stop.wait(self.retry_every)
                    continue
                with self._lock:
                    self._devices = fresh
                self.last_error = None
                log.info("reconnected to indiserver at %s:%s", self.cfg.host, self.cfg.port)
                self.on_change(True, None)
                break
