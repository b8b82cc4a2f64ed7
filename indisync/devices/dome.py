"""A dome or roll-off roof: its shutter (DOME_SHUTTER) and park (DOME_PARK), every move bounded and
read back. Closing is what keeps the rain out, so a close that does not finish is an error, loudly.

Opening and unparking take an optional ``cancel`` (see props.py): set, nothing more is sent and
ActionCancelled is raised. Closing and parking never do (safety). A dome without DOME_PARK (many
roll-off roofs) is looked for briefly, then unpark and park return at once: the shutter is what matters.
"""

from __future__ import annotations

import logging
import time

from ..errors import DeviceError, PropertyTimeout
from .device import IndiDevice
from .props import Cancel, last_message, set_switch

log = logging.getLogger(__name__)


class Dome(IndiDevice):
    key_properties = ("DOME_SHUTTER",)

    @property
    def shutter_open(self) -> bool | None:
        """True: open, False: closed, None: no shutter, or moving/unknown (the property is Busy or Alert)."""
        snap = self.client.snapshot(self.name, "DOME_SHUTTER")
        if snap is None or snap.state in ("Busy", "Alert"):
            return None
        if snap.values.get("SHUTTER_OPEN"):
            return True
        if snap.values.get("SHUTTER_CLOSE"):
            return False
        return None

    def closed_when_still(self, timeout: float, cancel: Cancel | None = None) -> bool:
        """True once the shutter reads closed and still: a moving shutter (the Dome Simulator closes its
        closed shutter again when it parks) is waited for, up to ``timeout`` s (or until ``cancel``).
        False: open, unknown, still moving at the bound. Darks count the OTA as covered only then."""
        ends = time.monotonic() + timeout
        while True:
            snap = self.client.snapshot(self.name, "DOME_SHUTTER")
            moving = snap is not None and snap.state == "Busy"
            if not moving or time.monotonic() >= ends or (cancel is not None and cancel.is_set()):
                return self.shutter_open is False
            time.sleep(0.5)

    @property
    def parked(self) -> bool | None:
        snap = self.client.snapshot(self.name, "DOME_PARK")
        return None if snap is None else bool(snap.values.get("PARK"))

    def open_shutter(self, timeout: float | None = None, cancel: Cancel | None = None) -> None:
        self._move("DOME_SHUTTER", "SHUTTER_OPEN", timeout, cancel)
        if self.shutter_open is not True:
            raise DeviceError(f"{self.name} answered the open request but its shutter is not open")

    def close_shutter(self, timeout: float | None = None) -> None:
        self._move("DOME_SHUTTER", "SHUTTER_CLOSE", timeout)
        if self.shutter_open is not False:
            raise DeviceError(f"{self.name} answered the close request but its shutter is not closed")

    def park(self, timeout: float | None = None) -> None:
        if not self._can_park():
            log.info("%s has no DOME_PARK: it cannot park (closing the shutter is what keeps the rain out)",
                     self.name)
            return
        self._move("DOME_PARK", "PARK", timeout)
        if self.parked is not True:
            raise DeviceError(f"{self.name} answered park but DOME_PARK does not say parked")

    def unpark(self, timeout: float | None = None, cancel: Cancel | None = None) -> None:
        if not self._can_park() or self.parked is False:
            return
        self._move("DOME_PARK", "UNPARK", timeout, cancel)
        if self.parked is not False:
            raise DeviceError(f"{self.name} answered unpark but DOME_PARK still says parked")

    def _can_park(self) -> bool:
        """DOME_PARK exists: looked for a little (a fresh connection may not have seen it yet), never
        for a whole move timeout."""
        if self.client.snapshot(self.name, "DOME_PARK") is not None:
            return True
        try:
            self.client.wait_property(self.name, "DOME_PARK", min(self.property_timeout, 3.0))
        except PropertyTimeout:
            return False
        return True

    def _move(self, prop: str, switch: str, timeout: float | None, cancel: Cancel | None = None) -> None:
        timeout = self.move_timeout if timeout is None else timeout
        try:
            set_switch(self.client, self.name, prop, [switch], timeout, cancel=cancel)
        except PropertyTimeout:
            raise DeviceError(f"{self.name}: {prop}={switch} did not finish within {timeout:g} s "
                              f"({last_message(self.client, self.name) or 'no message'}); check the dome") from None
