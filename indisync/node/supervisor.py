"""Keeps a node's INDI devices usable: rebuilds the client when indiserver goes away and comes back,
and connects a device again whose driver restarted (it comes back disconnected, e.g. indiserver -r
or a driver that was stopped and started: its CONNECTION says off).

A node must not die with its indiserver (a driver restart, a USB hiccup on the Pi): it reports the
loss, fails what it was doing, and reconnects in the background; commands meanwhile fail fast with
a reason instead of hanging.

The supervisor owns the devices' lifetime. Anything built on top of one set of devices (the
master's guider, for one) registers a rebuild hook with ``add_rebuild_hook``; after a reconnect the
hooks get the new devices before anyone else can, so nothing keeps talking to a dead client.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

from ..devices.settings import IndiConfig
from ..devices.device import IndiDevice
from ..devices.session import Devices, connect_devices
from ..errors import DeviceError, IndisyncError

log = logging.getLogger(__name__)

WATCH_EVERY_S = 0.5  # how often the watcher looks at the connection
CLOSE_GRACE_S = 5.0  # beyond a connect attempt's own bound, how long close() waits for the watcher

ConnectFn = Callable[[IndiConfig, tuple[str, ...]], Devices]
RebuildHook = Callable[[Devices], None]


class DeviceSupervisor:
    def __init__(self, cfg: IndiConfig, need: tuple[str, ...], retry_every: float = 3.0,
                 on_change: Callable[[bool, str | None], None] | None = None,
                 connect: ConnectFn = connect_devices):
        self.cfg, self.need, self.retry_every = cfg, need, retry_every
        self.on_change = on_change or (lambda ok, why: None)
        self._connect = connect
        self._devices: Devices | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hooks: list[RebuildHook] = []
        self.last_error: str | None = None
        self.generation = 0  # bumps with every (re)connect: who holds devices can tell they are stale
        self.reconnects = 0

    def start(self) -> Devices:
        """Connect once (errors go to the caller: a bad config must stop start-up), then watch."""
        devices = self._connect(self.cfg, self.need)
        with self._lock:
            self._devices = devices
            self.generation += 1
        self._thread = threading.Thread(target=self._watch, name="indi-supervisor", daemon=True)
        self._thread.start()
        return devices

    def add_rebuild_hook(self, hook: RebuildHook) -> None:
        """``hook(devices)`` runs on the supervisor's thread after every reconnect, before the new
        devices are handed to anyone else. It must be quick; an exception in it is logged and
        reported, and does not stop the supervisor."""
        self._hooks.append(hook)

    def get(self) -> Devices:
        with self._lock:
            devices = self._devices
        if devices is None or devices.client.lost:
            raise DeviceError(
                f"no connection to indiserver at {self.cfg.host}:{self.cfg.port} "
                f"({self.last_error or 'connection lost'}); reconnecting every {self.retry_every:g}s"
            )
        return devices

    @property
    def alive(self) -> bool:
        """Whether the watcher thread runs (it should, from start() until close())."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop watching, close the devices, and wait (bounded) for the watcher to end. A connect
        that is under way when close() is called is closed by the watcher as soon as it returns."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            limit = self._connect_bound() + CLOSE_GRACE_S
            thread.join(limit)
            if thread.is_alive():
                log.error("the INDI supervisor did not stop within %gs (a connect to %s:%s is hanging); "
                          "its client is closed when the connect returns", limit, self.cfg.host, self.cfg.port)
        with self._lock:
            devices, self._devices = self._devices, None
        if devices is not None:
            devices.client.close()

    def _connect_bound(self) -> float:
        # connect_devices waits connect_timeout for the server, then up to that again per device.
        return self.cfg.connect_timeout * (1 + len(self.need)) + 3.0 * 5

    # ---- the watcher --------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Runs until close(). Any exception (not only ours: a RuntimeError from the bindings, a bug)
        is logged and reported, and the loop goes on: a dead watcher would leave the node deaf to
        its indiserver for the rest of the night."""
        while not self._stop.wait(WATCH_EVERY_S):
            try:
                self._watch_once()
            except Exception as exc:  # noqa: BLE001 - see the docstring: never die
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("INDI supervisor: unexpected error; going on")
                self._report(False, self.last_error)
                self._stop.wait(self.retry_every)

    def _watch_once(self) -> None:
        with self._lock:
            devices = self._devices
        if devices is not None and not devices.client.lost:
            self._connect_restarted(devices)
            return
        if devices is not None:
            self.last_error = "connection lost"
            log.error("lost indiserver at %s:%s; reconnecting", self.cfg.host, self.cfg.port)
            with self._lock:
                self._devices = None
            self._report(False, self.last_error)
            devices.client.close()
        while not self._stop.is_set():
            try:
                fresh = self._connect(self.cfg, self.need)
            except Exception as exc:  # noqa: BLE001 - IndisyncError or not: try again later
                self.last_error = str(exc) if isinstance(exc, IndisyncError) else f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, IndisyncError):
                    log.warning("connecting to indiserver at %s:%s raised %s; retrying in %gs",
                                self.cfg.host, self.cfg.port, self.last_error, self.retry_every)
                self._stop.wait(self.retry_every)
                continue
            if self._stop.is_set():  # close() came while we were connecting: do not leak the client
                fresh.client.close()
                return
            self._run_hooks(fresh)
            with self._lock:
                if self._stop.is_set():
                    leaked, fresh = fresh, None
                else:
                    self._devices = fresh
                    self.generation += 1
                    self.reconnects += 1
                    leaked = None
            if leaked is not None:
                leaked.client.close()
                return
            self.last_error = None
            log.info("reconnected to indiserver at %s:%s", self.cfg.host, self.cfg.port)
            self._report(True, None)
            return

    def _connect_restarted(self, devices: Devices) -> None:
        """A device of ours whose driver restarted under the same indiserver shows CONNECTION off:
        connect it again (bounded by property_timeout); said once per restart."""
        if not dataclasses.is_dataclass(devices):
            return
        for role in dataclasses.fields(devices):
            device = getattr(devices, role.name)
            if not isinstance(device, IndiDevice):
                continue
            snap = devices.client.snapshot(device.name, "CONNECTION")
            if snap is None or snap.values.get("CONNECT") or snap.state == "Busy":
                continue
            log.warning("%s is disconnected (its driver restarted?): connecting it again", device.name)
            try:
                device.connect()
            except IndisyncError as exc:
                self.last_error = f"{device.name}: {exc}"
                log.error("could not connect %s again: %s", device.name, exc)
                self._report(False, self.last_error)
                continue
            log.info("%s connected again", device.name)

    def _run_hooks(self, devices: Devices) -> None:
        for hook in list(self._hooks):
            try:
                hook(devices)
            except Exception as exc:  # noqa: BLE001 - one broken hook must not keep the devices away
                log.exception("rebuilding on the new INDI devices failed in %r", hook)
                self._report(False, f"rebuild after reconnect failed: {exc}")

    def _report(self, ok: bool, why: str | None) -> None:
        try:
            self.on_change(ok, why)
        except Exception:  # noqa: BLE001 - reporting must never stop the supervisor
            log.exception("could not report the INDI connection change")
