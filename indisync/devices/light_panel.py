"""A flat panel (light box) over INDI's light box interface: FLAT_LIGHT_CONTROL (FLAT_LIGHT_ON /
FLAT_LIGHT_OFF) and FLAT_LIGHT_INTENSITY (FLAT_LIGHT_INTENSITY_VALUE, the driver's own scale: the
Light Panel Simulator's is 0..255).

Every request is bounded by ``property_timeout`` and read back: a light that does not say on (or
off) afterwards is a DeviceError; Alert is failure. ``set_brightness`` returns the value read back (a
driver may round to its step), which is the value the caller must use. Turning the light off never takes ``cancel``: it is what every run ends with.
"""

from __future__ import annotations

import logging

from ..errors import DeviceError, PropertyTimeout
from .device import IndiDevice
from .props import Cancel, check_cancel, last_message, set_number, switch_to

log = logging.getLogger(__name__)

CONTROL = ("FLAT_LIGHT_CONTROL", "FLAT_LIGHT_ON", "FLAT_LIGHT_OFF")
INTENSITY = ("FLAT_LIGHT_INTENSITY", "FLAT_LIGHT_INTENSITY_VALUE")
BRIGHTNESS_TOLERANCE = 0.5  # the driver's units: a read-back further off is said in the log (a rounding driver)


class LightPanel(IndiDevice):
    key_properties = (CONTROL[0],)
    _dimmable: bool | None = None  # looked up once

    @property
    def is_on(self) -> bool | None:
        """True: lit, False: dark, None: not known (the property is missing, Busy or Alert)."""
        snap = self.client.snapshot(self.name, CONTROL[0])
        if snap is None or snap.state in ("Busy", "Alert"):
            return None
        if snap.values.get(CONTROL[1]):
            return True
        if snap.values.get(CONTROL[2]):
            return False
        return None

    @property
    def dimmable(self) -> bool:
        """FLAT_LIGHT_INTENSITY exists: looked for a little (a fresh connection may not have seen it
        yet) once, never for a whole property timeout."""
        if self._dimmable is None:
            try:
                self.client.wait_property(self.name, INTENSITY[0], min(self.property_timeout, 3.0))
                self._dimmable = True
            except PropertyTimeout:
                self._dimmable = False
        return self._dimmable

    @property
    def brightness(self) -> float | None:
        """The brightness the driver shows now; None: the panel cannot be dimmed."""
        snap = self.client.snapshot(self.name, INTENSITY[0])
        return None if snap is None else float(snap.values.get(INTENSITY[1], 0.0))

    @property
    def brightness_range(self) -> tuple[float, float] | None:
        """The driver's brightness limits (min, max); None: not dimmable."""
        snap = self.client.snapshot(self.name, INTENSITY[0])
        if snap is None:
            return None
        lo, hi = snap.limits.get(INTENSITY[1], (None, None))
        if lo is None or hi is None or hi <= lo:
            raise DeviceError(f"{self.name}.{INTENSITY[0]} has no usable range (min {lo}, max {hi})")
        return float(lo), float(hi)

    def turn_on(self, cancel: Cancel | None = None) -> None:
        self._switch(True, cancel)

    def turn_off(self) -> None:
        self._switch(False, None)

    def _switch(self, on: bool, cancel: Cancel | None) -> None:
        element = CONTROL[1] if on else CONTROL[2]
        switch_to(self.client, self.name, CONTROL[0], element, self.property_timeout, cancel=cancel)
        if self.is_on is not on:
            raise DeviceError(f"{self.name} answered but its light is not {'on' if on else 'off'} "
                              f"({last_message(self.client, self.name) or 'no message from the driver'})")
        log.info("%s: light %s", self.name, "on" if on else "off")

    def set_brightness(self, value: float, cancel: Cancel | None = None) -> float:
        """Set the brightness (the driver's units) and return it as read back."""
        check_cancel(cancel, f"{self.name}: brightness {value:g}")
        if not self.dimmable:
            raise DeviceError(f"{self.name} has no {INTENSITY[0]}: its brightness cannot be set")
        set_number(self.client, self.name, INTENSITY[0], {INTENSITY[1]: float(value)}, self.property_timeout,
                   cancel=cancel)
        got = self.brightness
        if got is None:
            raise DeviceError(f"{self.name}.{INTENSITY[0]} vanished after brightness {value:g} was set")
        if abs(got - value) > BRIGHTNESS_TOLERANCE:  # a driver that rounds to its step: what it shows counts
            log.info("%s: brightness %g asked, %g read back (the driver's step)", self.name, value, got)
        return got
