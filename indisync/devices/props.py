"""Set a number, switch or text property and wait for the driver's answer.

The answer is the first update of that property after our request that is no longer Busy: Ok or
Idle is success, Alert is failure (with the device's last message), no answer within the timeout is
failure, and so is the property or the device vanishing meanwhile (a crashed driver). Nothing here
waits forever.

Every setter takes an optional ``cancel``: anything with ``is_set() -> bool`` (a threading.Event, the
night's state token). Set before the request goes out, nothing is sent; set while we wait for the
property or the answer, the wait ends within CANCEL_POLL_S. Either way ActionCancelled is raised. A
request already sent is not undone here: the device class knows what stops it (a mount aborts).
Without ``cancel`` the waits are exactly the plain ones.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Protocol

import PyIndi

from ..errors import ActionCancelled, DeviceError, PropertyAlert, PropertyTimeout
from .client import IndiClient, PropertySnapshot

CANCEL_POLL_S = 0.1  # how often a cancellable wait looks at its cancel flag


class Cancel(Protocol):
    """What a cancellable call is given: a threading.Event does, and so does a state's token."""

    def is_set(self) -> bool: ...


def check_cancel(cancel: Cancel | None, what: str) -> None:
    """Raise ActionCancelled when ``cancel`` is set; ``what`` is the request that is not sent."""
    if cancel is not None and cancel.is_set():
        raise ActionCancelled(f"{what} not sent: the action was cancelled")


def _wait(client: IndiClient, predicate: Callable[[], Any], timeout: float, what: str,
          cancel: Cancel | None) -> Any:
    """client.wait_until, looking at ``cancel`` at least every CANCEL_POLL_S (wait_until itself
    sleeps up to 0.5 s between checks when nothing changes, so it is called in slices)."""
    if cancel is None:
        return client.wait_until(predicate, timeout, what)
    deadline = time.monotonic() + timeout
    while True:
        if cancel.is_set():
            raise ActionCancelled(f"cancelled while waiting for {what}")
        remaining = deadline - time.monotonic()
        try:
            return client.wait_until(predicate, max(0.0, min(CANCEL_POLL_S, remaining)), what)
        except PropertyTimeout:
            if cancel.is_set():
                raise ActionCancelled(f"cancelled while waiting for {what}") from None
            if time.monotonic() >= deadline:
                raise PropertyTimeout(f"timed out after {timeout:g}s waiting for {what} on {client.address}") from None


def wait_property(client: IndiClient, device: str, name: str, timeout: float,
                  cancel: Cancel | None = None) -> PropertySnapshot:
    """client.wait_property, cancellable: ActionCancelled when ``cancel`` is set meanwhile."""
    if cancel is None:
        return client.wait_property(device, name, timeout)
    try:
        return _wait(client, lambda: client._props.get((device, name)), timeout, f"{device}.{name}", cancel)
    except PropertyTimeout:
        raise PropertyTimeout(
            f"property {device}.{name} did not appear within {timeout:g}s on {client.address}; "
            f"the device offers: {', '.join(client.properties(device)) or 'nothing'}"
        ) from None


def _check_elements(snap: PropertySnapshot, names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in snap.values]
    if unknown:
        raise DeviceError(
            f"{snap.device}.{snap.name} has no element(s) {', '.join(unknown)}; it has {', '.join(snap.values)}"
        )


def wait_answer(client: IndiClient, device: str, name: str, after_generation: int, timeout: float,
                cancel: Cancel | None = None) -> PropertySnapshot:
    """Wait for the first settled update of device.name newer than ``after_generation``;
    ActionCancelled when ``cancel`` is set meanwhile (the request stays sent)."""

    def settled():
        snap = client._props.get((device, name))
        if snap is None:
            raise DeviceError(f"{device}.{name} vanished while we waited for it (did the driver crash?)")
        if snap.generation > after_generation and snap.state != "Busy":
            return snap
        return None

    try:
        snap = _wait(client, settled, timeout, f"{device}.{name} to finish", cancel)
    except PropertyTimeout:
        snap = client.snapshot(device, name)
        state = snap.state if snap else "gone"
        raise PropertyTimeout(
            f"{device}.{name} did not finish within {timeout:g}s (state {state}); "
            "the device may be stuck: check it, or raise indi.property_timeout / indi.move_timeout"
        ) from None
    if snap.state == "Alert":
        raise PropertyAlert(f"{device} refused {name}: {last_message(client, device) or 'no message from the driver'}")
    return snap


def last_message(client: IndiClient, device: str) -> str | None:
    for dev, text in reversed(client.messages):
        if dev == device:
            return text.strip()
    return None


def _send(client: IndiClient, device: str, name: str, kind: str, values: dict, timeout: float,
          wait: bool, cancel: Cancel | None = None) -> PropertySnapshot | None:
    """Send a request built afresh from our snapshot: every element, at its current value unless
    ``values`` changes it. Never the live PyIndi property: the client thread may rewrite that
    between our fill and our send (seen as a stray CCD_EXPOSURE=0 while guiding fast)."""
    snap = wait_property(client, device, name, timeout, cancel)
    if snap.kind != kind:
        raise DeviceError(f"{device}.{name} is a {snap.kind} property, not a {kind} one")
    merged = {**snap.values, **values}
    vec = {"number": PyIndi.PropertyNumber, "switch": PyIndi.PropertySwitch, "text": PyIndi.PropertyText}[kind](
        len(merged))
    vec.setDeviceName(device)
    vec.setName(name)
    for i, (elem, value) in enumerate(merged.items()):
        vec[i].setName(elem)
        if kind == "number":
            vec[i].setValue(float(value))
        elif kind == "switch":
            vec[i].setState(PyIndi.ISS_ON if value else PyIndi.ISS_OFF)
        else:
            vec[i].setText(str(value))
    check_cancel(cancel, f"{device}.{name}")  # the last moment: nothing goes out once cancelled
    before = client.generation()
    client.send(vec)
    if not wait:
        return None
    return wait_answer(client, device, name, before, timeout, cancel)


def set_number(client: IndiClient, device: str, name: str, values: dict[str, float], timeout: float, wait: bool = True,
               cancel: Cancel | None = None):
    check_cancel(cancel, f"{device}.{name}")
    snap = wait_property(client, device, name, timeout, cancel)
    _check_elements(snap, values)
    for elem, value in values.items():
        lo, hi = snap.limits.get(elem, (None, None))
        if lo is not None and hi is not None and hi > lo and not lo <= value <= hi:
            raise DeviceError(f"{device}.{name}.{elem} = {value} is outside the device's range {lo:g}..{hi:g}")

    return _send(client, device, name, "number", {k: float(v) for k, v in values.items()}, timeout, wait, cancel)


def set_switch(client: IndiClient, device: str, name: str, on: Iterable[str], timeout: float, wait: bool = True,
               cancel: Cancel | None = None):
    """Turn the named switches on. For OneOfMany / AtMostOne vectors every other switch goes off."""
    on = set(on)
    check_cancel(cancel, f"{device}.{name}")
    snap = wait_property(client, device, name, timeout, cancel)
    _check_elements(snap, on)
    exclusive = snap.rule in ("OneOfMany", "AtMostOne")
    states = {e: (e in on) for e in snap.values} if exclusive else {e: True for e in on}
    return _send(client, device, name, "switch", states, timeout, wait, cancel)


def switch_to(client: IndiClient, device: str, name: str, on: str, timeout: float,
              cancel: Cancel | None = None) -> PropertySnapshot:
    """Turn switch ``on`` of a OneOfMany vector on and wait until the driver shows it on (read back).

    For switches that stay Busy while they are on (TELESCOPE_TRACK_STATE while tracking, CCD_COOLER
    while cooling), where waiting for the end of Busy would wait forever. Alert is failure.
    """
    before = client.generation()
    set_switch(client, device, name, [on], timeout, wait=False, cancel=cancel)

    def answered():
        snap = client._props.get((device, name))
        if snap is None:
            raise DeviceError(f"{device}.{name} vanished while we waited for it (did the driver crash?)")
        if snap.generation > before and (snap.state == "Alert" or snap.values.get(on)):
            return snap
        return None

    try:
        snap = _wait(client, answered, timeout, f"{device}.{name}.{on} to be on", cancel)
    except PropertyTimeout:
        raise PropertyTimeout(f"{device} did not turn {name}.{on} on within {timeout:g}s: "
                              f"{last_message(client, device) or 'no message from the driver'}") from None
    if snap.state == "Alert":
        raise PropertyAlert(f"{device} refused {name}.{on}: {last_message(client, device) or 'no message'}")
    return snap


def set_text(client: IndiClient, device: str, name: str, values: dict[str, str], timeout: float, wait: bool = True):
    snap = client.wait_property(device, name, timeout)
    _check_elements(snap, values)

    return _send(client, device, name, "text", {k: str(v) for k, v in values.items()}, timeout, wait)


def get_values(client: IndiClient, device: str, name: str, timeout: float) -> dict:
    return dict(client.wait_property(device, name, timeout).values)


def ensure_connected(client: IndiClient, device: str, timeout: float) -> None:
    """Connect the device unless it already is (another client may have connected it)."""
    snap = client.wait_property(device, "CONNECTION", timeout)
    if snap.values.get("CONNECT") and snap.state != "Alert":
        return
    answer = set_switch(client, device, "CONNECTION", ["CONNECT"], timeout)
    if not answer.values.get("CONNECT"):
        raise DeviceError(
            f"{device} did not connect: {last_message(client, device) or 'no message from the driver'}"
        )
