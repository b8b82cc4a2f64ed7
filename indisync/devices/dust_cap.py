"""A motorised dust cap over INDI's dust cap interface: CAP_PARK (PARK: closed over the OTA, UNPARK:
open). Closed for panel flats and darks, opened for sky flats (indisync.node.calibrating).

Each move is bounded by ``move_timeout`` and read back: a cap that answers but does not say closed
(or open) afterwards is a DeviceError; Alert is failure. Opening takes ``cancel`` (nothing more is
sent once it is set); closing never does: a closed cap is the safe side.
"""

from __future__ import annotations

import logging

from ..errors import DeviceError, PropertyTimeout
from .device import IndiDevice
from .props import Cancel, last_message, set_switch

log = logging.getLogger(__name__)

PARK = ("CAP_PARK", "PARK", "UNPARK")


class DustCap(IndiDevice):
    key_properties = (PARK[0],)

    @property
    def closed(self) -> bool | None:
        """True: over the OTA, False: open, None: unknown (missing, Busy or Alert)."""
        snap = self.client.snapshot(self.name, PARK[0])
        if snap is None or snap.state in ("Busy", "Alert"):
            return None
        if snap.values.get(PARK[1]):
            return True
        if snap.values.get(PARK[2]):
            return False
        return None

    def close(self, timeout: float | None = None) -> None:
        if self.closed is True:
            return
        self._move(PARK[1], timeout, None)
        if self.closed is not True:
            raise DeviceError(f"{self.name} answered close but CAP_PARK does not say closed "
                              f"({last_message(self.client, self.name) or 'no message from the driver'})")
        log.info("%s: closed", self.name)

    def open(self, timeout: float | None = None, cancel: Cancel | None = None) -> None:
        if self.closed is False:
            return
        self._move(PARK[2], timeout, cancel)
        if self.closed is not False:
            raise DeviceError(f"{self.name} answered open but CAP_PARK does not say open "
                              f"({last_message(self.client, self.name) or 'no message from the driver'})")
        log.info("%s: open", self.name)

    def _move(self, switch: str, timeout: float | None, cancel: Cancel | None) -> None:
        timeout = self.move_timeout if timeout is None else timeout
        try:
            set_switch(self.client, self.name, PARK[0], [switch], timeout, cancel=cancel)
        except PropertyTimeout:
            raise DeviceError(f"{self.name}: {PARK[0]}={switch} did not finish within {timeout:g} s "
                              f"({last_message(self.client, self.name) or 'no message'}); check the dust cap") from None
