"""The device layer's part of "actions never outlive their state; a device helper never unparks on
its own initiative", against a stand-in for IndiClient (no server): a cancelled request is never
sent, a cancelled wait ends within a few tenths of a second, a slew never unparks and stops its own
goto when cancelled, and a dome without DOME_PARK does not wait a whole move timeout for it.

The stand-in borrows IndiClient's own waiting methods (wait_until wakes only every 0.5 s when
nothing changes), so the cancel's promptness is measured against the real waits.
"""

from __future__ import annotations

import threading
import time

import pytest

from indisync.devices import props
from indisync.devices.client import IndiClient, PropertySnapshot
from indisync.devices.dome import Dome
from indisync.devices.mount import Mount
from indisync.errors import ActionCancelled, DeviceError, PropertyTimeout

DEV = "Fake Device"


class FakeClient:
    """The parts of IndiClient the props helpers use; ``driver`` answers each request (or not)."""

    wait_until = IndiClient.wait_until
    wait_device = IndiClient.wait_device
    wait_property = IndiClient.wait_property
    generation = IndiClient.generation
    snapshot = IndiClient.snapshot
    properties = IndiClient.properties
    devices = IndiClient.devices
    check_alive = IndiClient.check_alive

    def __init__(self, driver=None):
        self._cond = threading.Condition()
        self._props: dict[tuple[str, str], PropertySnapshot] = {}
        self._devices: set[str] = set()
        self._generation = 0
        self._connected, self._lost = True, False
        self.address = "fake:7624"
        self.messages: list[tuple[str, str]] = []
        self.sent: list[tuple[str, dict]] = []
        self.driver = driver  # (client, name, values) -> None, called on a thread of its own

    def define(self, device, name, kind, values, state="Idle", rule=None):
        with self._cond:
            self._generation += 1
            self._devices.add(device)
            self._props[(device, name)] = PropertySnapshot(device, name, kind, state, dict(values), {},
                                                           self._generation, rule)
            self._cond.notify_all()

    def update(self, device, name, state, **values):
        with self._cond:
            old = self._props[(device, name)]
            self._generation += 1
            self._props[(device, name)] = PropertySnapshot(device, name, old.kind, state, {**old.values, **values},
                                                           old.limits, self._generation, old.rule)
            self._cond.notify_all()

    def send(self, vec):
        name = vec.getName()
        kind = self._props[(vec.getDeviceName(), name)].kind
        values = {e.getName(): (e.getValue() if kind == "number" else e.getState() == 1) for e in vec}
        self.sent.append((name, values))
        if self.driver is not None:
            threading.Thread(target=self.driver, args=(self, vec.getDeviceName(), name, values), daemon=True).start()


def stays_busy(client, device, name, values):
    """A driver that takes the request and works on it for longer than any test waits."""
    client.update(device, name, "Busy", **values)


def answers_ok(client, device, name, values):
    time.sleep(0.05)
    client.update(device, name, "Ok", **values)


def cancel_after(seconds: float) -> threading.Event:
    event = threading.Event()
    timer = threading.Timer(seconds, event.set)
    timer.daemon = True
    timer.start()
    return event


def set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


# ---- props: set before sending ----------------------------------------------------------------
def test_a_request_cancelled_before_it_is_sent_is_never_sent():
    client = FakeClient(answers_ok)
    client.define(DEV, "FOCUS_POS", "number", {"POS": 0.0})
    client.define(DEV, "SHUTTER", "switch", {"OPEN": False, "CLOSE": True}, rule="OneOfMany")
    with pytest.raises(ActionCancelled, match=f"{DEV}.FOCUS_POS not sent"):
        props.set_number(client, DEV, "FOCUS_POS", {"POS": 100.0}, 5.0, cancel=set_event())
    with pytest.raises(ActionCancelled):
        props.set_switch(client, DEV, "SHUTTER", ["OPEN"], 5.0, cancel=set_event())
    with pytest.raises(ActionCancelled):
        props.switch_to(client, DEV, "SHUTTER", "OPEN", 5.0, cancel=set_event())
    with pytest.raises(ActionCancelled):
        props._send(client, DEV, "FOCUS_POS", "number", {"POS": 1.0}, 5.0, wait=True, cancel=set_event())
    assert client.sent == []


# ---- props: set while waiting -----------------------------------------------------------------
@pytest.mark.timeout(20)
@pytest.mark.parametrize("call", ["set_number", "set_switch", "switch_to", "wait_answer"])
def test_a_wait_cancelled_meanwhile_ends_within_a_few_tenths(call):
    client = FakeClient(stays_busy)
    client.define(DEV, "FOCUS_POS", "number", {"POS": 0.0})
    client.define(DEV, "SHUTTER", "switch", {"OPEN": False, "CLOSE": True}, rule="OneOfMany")
    cancel = cancel_after(0.4)
    started = time.monotonic()
    with pytest.raises(ActionCancelled, match=f"cancelled while waiting for {DEV}.(FOCUS_POS|SHUTTER)"):
        if call == "set_number":
            props.set_number(client, DEV, "FOCUS_POS", {"POS": 100.0}, 60.0, cancel=cancel)
        elif call == "set_switch":
            props.set_switch(client, DEV, "SHUTTER", ["OPEN"], 60.0, cancel=cancel)
        elif call == "switch_to":  # stays Busy and never shows OPEN on
            client.driver = lambda c, d, n, v: c.update(d, n, "Busy")
            props.switch_to(client, DEV, "SHUTTER", "OPEN", 60.0, cancel=cancel)
        else:
            props.wait_answer(client, DEV, "FOCUS_POS", client.generation(), 60.0, cancel=cancel)
    assert cancel.is_set()
    assert time.monotonic() - started < 0.4 + 0.3
    assert len(client.sent) == (0 if call == "wait_answer" else 1)  # sent once, not undone here


def test_without_cancel_the_helpers_answer_and_time_out_as_before():
    client = FakeClient(answers_ok)
    client.define(DEV, "FOCUS_POS", "number", {"POS": 0.0})
    answer = props.set_number(client, DEV, "FOCUS_POS", {"POS": 100.0}, 5.0)
    assert answer.state == "Ok" and answer.values["POS"] == 100.0
    never = threading.Event()  # given but never set: the same answer
    assert props.set_number(client, DEV, "FOCUS_POS", {"POS": 50.0}, 5.0, cancel=never).values["POS"] == 50.0
    client.driver = stays_busy
    for cancel in (None, never):
        started = time.monotonic()
        with pytest.raises(PropertyTimeout, match=r"did not finish within 0.6s \(state Busy\)"):
            props.set_number(client, DEV, "FOCUS_POS", {"POS": 10.0}, 0.6, cancel=cancel)
        assert 0.6 <= time.monotonic() - started < 1.5


# ---- mount ------------------------------------------------------------------------------------
MOUNT = "Fake Mount"


def fake_mount(parked: bool, driver) -> tuple[FakeClient, Mount]:
    client = FakeClient(driver)
    client.define(MOUNT, "TELESCOPE_PARK", "switch", {"PARK": parked, "UNPARK": not parked}, "Ok", "OneOfMany")
    client.define(MOUNT, "EQUATORIAL_EOD_COORD", "number", {"RA": 6.0, "DEC": 30.0}, "Ok")
    client.define(MOUNT, "ON_COORD_SET", "switch", {"TRACK": True, "SLEW": False, "SYNC": False}, "Ok", "OneOfMany")
    client.define(MOUNT, "TELESCOPE_TRACK_STATE", "switch", {"TRACK_ON": True, "TRACK_OFF": False}, "Busy",
                  "OneOfMany")
    client.define(MOUNT, "TELESCOPE_ABORT_MOTION", "switch", {"ABORT": False}, "Idle", "AtMostOne")
    return client, Mount(client, MOUNT, property_timeout=5.0, move_timeout=120.0)


def slow_goto(client, device, name, values):
    """A goto that takes a minute; an abort stops it at once."""
    if name == "EQUATORIAL_EOD_COORD":
        client.update(device, name, "Busy")
    elif name == "TELESCOPE_ABORT_MOTION":
        client.update(device, "EQUATORIAL_EOD_COORD", "Idle")
        client.update(device, name, "Ok")
    else:
        answers_ok(client, device, name, values)


def test_a_slew_on_a_parked_mount_is_refused_and_never_unparks():
    client, mount = fake_mount(parked=True, driver=slow_goto)
    with pytest.raises(DeviceError, match="is parked: unpark it first .*mount.unpark()"):
        mount.slew_j2000(100.0, 20.0, timeout=60)
    with pytest.raises(DeviceError, match="is parked: unpark it first"):
        mount.goto(6.0, 30.0)
    assert client.sent == []
    assert mount.parked is True


def test_a_slew_cancelled_before_it_starts_sends_nothing():
    client, mount = fake_mount(parked=False, driver=slow_goto)
    with pytest.raises(ActionCancelled):
        mount.slew_j2000(100.0, 20.0, timeout=60, cancel=set_event())
    assert client.sent == []


@pytest.mark.timeout(20)
def test_a_slew_cancelled_mid_way_aborts_its_goto_and_leaves_the_park_alone():
    client, mount = fake_mount(parked=False, driver=slow_goto)
    cancel = cancel_after(0.4)
    started = time.monotonic()
    with pytest.raises(ActionCancelled, match="cancelled after .* motion aborted"):
        mount.slew_j2000(100.0, 20.0, timeout=60, cancel=cancel)
    assert time.monotonic() - started < 0.4 + 0.3 + 0.5  # the abort's own answer comes at once here
    assert [name for name, _ in client.sent] == ["EQUATORIAL_EOD_COORD", "TELESCOPE_ABORT_MOTION"]
    assert "TELESCOPE_PARK" not in [name for name, _ in client.sent]


def test_unpark_passes_the_cancel_through():
    client, mount = fake_mount(parked=True, driver=stays_busy)
    with pytest.raises(ActionCancelled):
        mount.unpark(cancel=set_event())
    assert client.sent == []


# ---- dome -------------------------------------------------------------------------------------
DOME = "Fake Roof"


@pytest.mark.timeout(30)
def test_a_dome_without_dome_park_neither_unparks_nor_parks_for_a_whole_move_timeout():
    client = FakeClient(answers_ok)
    client.define(DOME, "DOME_SHUTTER", "switch", {"SHUTTER_OPEN": False, "SHUTTER_CLOSE": True}, "Ok", "OneOfMany")
    roof = Dome(client, DOME, property_timeout=10.0, move_timeout=120.0)
    started = time.monotonic()
    roof.unpark(timeout=120)
    assert time.monotonic() - started < 5.0
    started = time.monotonic()
    roof.park()
    assert time.monotonic() - started < 5.0
    assert client.sent == [] and roof.parked is None
    roof.open_shutter(timeout=5)  # the shutter is what matters, and it still works
    assert roof.shutter_open is True


def test_dome_open_and_unpark_take_a_cancel():
    client = FakeClient(answers_ok)
    client.define(DOME, "DOME_SHUTTER", "switch", {"SHUTTER_OPEN": False, "SHUTTER_CLOSE": True}, "Ok", "OneOfMany")
    client.define(DOME, "DOME_PARK", "switch", {"PARK": True, "UNPARK": False}, "Ok", "OneOfMany")
    dome = Dome(client, DOME, property_timeout=5.0, move_timeout=60.0)
    with pytest.raises(ActionCancelled):
        dome.unpark(cancel=set_event())
    with pytest.raises(ActionCancelled):
        dome.open_shutter(cancel=set_event())
    assert client.sent == []
    dome.unpark(timeout=5)
    dome.open_shutter(timeout=5)
    assert dome.parked is False and dome.shutter_open is True
