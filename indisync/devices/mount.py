"""The mount: coordinates, and timed guide pulses through TELESCOPE_TIMED_GUIDE_NS/WE."""

from __future__ import annotations

from ..errors import DeviceError
from .device import IndiDevice
from .props import set_number, set_switch

PULSE = {"N": ("TELESCOPE_TIMED_GUIDE_NS", "TIMED_GUIDE_N"), "S": ("TELESCOPE_TIMED_GUIDE_NS", "TIMED_GUIDE_S"),
         "E": ("TELESCOPE_TIMED_GUIDE_WE", "TIMED_GUIDE_E"), "W": ("TELESCOPE_TIMED_GUIDE_WE", "TIMED_GUIDE_W")}
OPPOSITE = {"N": "S", "S": "N", "E": "W", "W": "E"}


class Mount(IndiDevice):
    key_properties = ("EQUATORIAL_EOD_COORD",)

    @property
    def coordinates(self) -> tuple[float, float]:
        """(RA in hours, DEC in degrees), JNow."""
        snap = self.client.wait_property(self.name, "EQUATORIAL_EOD_COORD", self.property_timeout)
        return snap.values["RA"], snap.values["DEC"]

    # Same as the night/acquire branches' Mount (read-only here; the guider checks them before calibrating).
    @property
    def tracking(self) -> bool | None:
        snap = self.client.snapshot(self.name, "TELESCOPE_TRACK_STATE")
        return None if snap is None else bool(snap.values.get("TRACK_ON"))

    @property
    def parked(self) -> bool | None:
        """True/False from TELESCOPE_PARK; None when the mount cannot park."""
        snap = self.client.snapshot(self.name, "TELESCOPE_PARK")
        return None if snap is None else bool(snap.values.get("PARK"))

    @property
    def guide_rate(self) -> tuple[float, float] | None:
        """(RA, DEC) guide rates as fractions of sidereal, when the mount reports them."""
        snap = self.client.snapshot(self.name, "GUIDE_RATE")
        return None if snap is None else (snap.values.get("GUIDE_RATE_WE"), snap.values.get("GUIDE_RATE_NS"))

    @property
    def focal_length_mm(self) -> float | None:
        snap = self.client.snapshot(self.name, "TELESCOPE_INFO")
        return None if snap is None else snap.values.get("TELESCOPE_FOCAL_LENGTH")

    def pulse_guide(self, direction: str, ms: int, wait: bool = True) -> None:
        """Pulse the mount at guide rate for ``ms`` milliseconds; waits for the pulse to end."""
        if direction not in PULSE:
            raise DeviceError(f"unknown guide direction {direction!r}; allowed: N, S, E, W")
        if ms <= 0:
            return
        prop, elem = PULSE[direction]
        # The opposite direction goes out as 0 explicitly: drivers that answer at once (the Guide
        # Simulator's ST4 port) keep the last pulse in the property, and with both set INDI runs North
        # or West, so an East pulse after a West one went West.
        set_number(self.client, self.name, prop, {elem: int(ms), PULSE[OPPOSITE[direction]][1]: 0},
                   self.property_timeout + ms / 1000.0, wait=wait)

    def unpark(self) -> None:
        snap = self.client.snapshot(self.name, "TELESCOPE_PARK")
        if snap is not None and snap.values.get("PARK"):
            set_switch(self.client, self.name, "TELESCOPE_PARK", ["UNPARK"], self.move_timeout)

    def goto(self, ra_hours: float, dec_deg: float) -> None:
        """Slew to (RA, DEC) JNow and track there; waits until the slew ends."""
        self.unpark()
        set_switch(self.client, self.name, "ON_COORD_SET", ["TRACK"], self.property_timeout)
        set_number(self.client, self.name, "EQUATORIAL_EOD_COORD", {"RA": ra_hours, "DEC": dec_deg}, self.move_timeout)
