"""The INDI device supervisor's own logic, with a stand-in connect function (no server): its watcher
survives any exception, close() during a reconnect neither leaks the new client nor leaves the
thread running, and rebuild hooks get the new devices before anyone else."""

from __future__ import annotations

import threading
import time

import pytest

from indisync.config import IndiConfig
from indisync.errors import ConnectionFailed, DeviceError
from indisync.node import supervisor as supervisor_module
from indisync.node.supervisor import DeviceSupervisor


class StandInClient:
    def __init__(self, name: str):
        self.name = name
        self.lost = False
        self.closed = threading.Event()

    def close(self, wait: float = 10.0) -> None:
        self.closed.set()


class StandInDevices:
    def __init__(self, client: StandInClient):
        self.client = client


class ScriptedConnect:
    """Each call runs the next step: an exception to raise, or a name for new devices; a
    threading.Event step blocks the call until it is set, then makes devices."""

    def __init__(self, *steps):
        self.steps = list(steps)
        self.calls = 0
        self.made: list[StandInClient] = []
        self.entered = threading.Event()

    def __call__(self, cfg, need):
        self.calls += 1
        step = self.steps.pop(0) if self.steps else f"client{self.calls}"
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, threading.Event):
            self.entered.set()
            assert step.wait(10), "the test never released the connect"
            step = f"client{self.calls}"
        client = StandInClient(step)
        self.made.append(client)
        return StandInDevices(client)


@pytest.fixture(autouse=True)
def fast_watch(monkeypatch):
    monkeypatch.setattr(supervisor_module, "WATCH_EVERY_S", 0.02)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def make(connect, **kwargs) -> DeviceSupervisor:
    return DeviceSupervisor(IndiConfig(connect_timeout=1.0), ("camera",), retry_every=0.05, connect=connect, **kwargs)


def test_watcher_survives_a_connect_that_raises_a_foreign_exception():
    connect = ScriptedConnect("first", RuntimeError("bindings exploded"), "second")
    changes = []
    sup = make(connect, on_change=lambda ok, why: changes.append((ok, why)))
    first = sup.start()
    try:
        first.client.lost = True  # indiserver went away
        assert wait_until(lambda: connect.calls >= 3), "the supervisor stopped retrying"
        assert wait_until(lambda: sup.generation == 2)
        assert sup.alive, "the watcher thread died on a RuntimeError"
        assert sup.get().client.name == "second"
        assert first.client.closed.is_set()
        assert changes[0][0] is False and changes[-1] == (True, None)
    finally:
        sup.close()


def test_watcher_survives_an_exception_outside_connect():
    connect = ScriptedConnect("first", "second")
    reports = []

    def on_change(ok, why):
        reports.append(ok)
        if len(reports) == 1:
            raise RuntimeError("reporting broke")  # must not take the watcher with it

    sup = make(connect, on_change=on_change)
    devices = sup.start()
    try:
        devices.client.lost = True
        assert wait_until(lambda: sup.generation == 2)
        assert sup.alive
    finally:
        sup.close()


def test_close_during_a_reconnect_closes_the_new_client_and_joins():
    release = threading.Event()
    connect = ScriptedConnect("first", release)
    sup = make(connect)
    first = sup.start()
    first.client.lost = True
    assert connect.entered.wait(5), "the supervisor did not try to reconnect"
    closer = threading.Thread(target=sup.close)
    closer.start()
    time.sleep(0.1)
    assert closer.is_alive(), "close() returned while the watcher was still connecting (it must join)"
    release.set()  # the connect now succeeds, after close() was called
    closer.join(10)
    assert not closer.is_alive()
    assert not sup.alive, "close() left the watcher thread running"
    fresh = connect.made[-1]
    assert fresh.name == "client2"
    assert fresh.closed.is_set(), "the client made during close() leaked"
    with pytest.raises(DeviceError):
        sup.get()


def test_rebuild_hooks_get_the_new_devices_before_get_does():
    connect = ScriptedConnect("first", ConnectionFailed("down"), "second")
    seen = []
    sup = make(connect)
    first = sup.start()

    def hook(devices):
        # get() must not hand out the new devices before the hook has rebuilt on them
        with pytest.raises(DeviceError):
            sup.get()
        seen.append(devices.client.name)

    sup.add_rebuild_hook(hook)
    sup.add_rebuild_hook(lambda devices: 1 / 0)  # a broken hook does not keep the devices away
    try:
        first.client.lost = True
        assert wait_until(lambda: sup.generation == 2)
        assert seen == ["second"]
        assert sup.get().client.name == "second"
        assert sup.alive
    finally:
        sup.close()


def test_a_device_whose_driver_restarted_is_connected_again():
    """A driver stopped and started under the same indiserver comes back with CONNECTION off; the
    supervisor connects it again (the mount's park, the camera's next frame need it)."""
    from types import SimpleNamespace

    from indisync.devices.device import IndiDevice
    from indisync.devices.session import Devices

    class Client:
        lost = False

        def __init__(self):
            self.connected = {"Telescope Simulator": False, "CCD Simulator": True}

        def snapshot(self, device, name):
            return SimpleNamespace(values={"CONNECT": self.connected[device]}, state="Idle")

    client = Client()

    class Device(IndiDevice):
        def connect(self):
            client.connected[self.name] = True
            return self

    devices = Devices(client=client, camera=Device(client, "CCD Simulator"), mount=Device(client, "Telescope Simulator"))
    reports = []
    sup = DeviceSupervisor(IndiConfig(), ("camera",), connect=lambda cfg, need: devices,
                           on_change=lambda ok, why: reports.append((ok, why)))
    sup._devices = devices
    sup._watch_once()
    assert client.connected == {"Telescope Simulator": True, "CCD Simulator": True} and reports == []
