"""An absolute focuser over ABS_FOCUS_POSITION, with its limits from FOCUS_MAX."""

from __future__ import annotations

from ..errors import DeviceError
from .device import IndiDevice
from .props import set_number


class Focuser(IndiDevice):
    key_properties = ("ABS_FOCUS_POSITION",)

    @property
    def position(self) -> int:
        snap = self.client.wait_property(self.name, "ABS_FOCUS_POSITION", self.property_timeout)
        return int(round(snap.values["FOCUS_ABSOLUTE_POSITION"]))

    @property
    def max_position(self) -> int:
        snap = self.client.snapshot(self.name, "FOCUS_MAX")
        if snap is not None and snap.values.get("FOCUS_MAX_VALUE"):
            return int(snap.values["FOCUS_MAX_VALUE"])
        abs_snap = self.client.wait_property(self.name, "ABS_FOCUS_POSITION", self.property_timeout)
        return int(abs_snap.limits["FOCUS_ABSOLUTE_POSITION"][1])

    @property
    def min_position(self) -> int:
        abs_snap = self.client.wait_property(self.name, "ABS_FOCUS_POSITION", self.property_timeout)
        return int(abs_snap.limits["FOCUS_ABSOLUTE_POSITION"][0])

    @property
    def temperature(self) -> float | None:
        snap = self.client.snapshot(self.name, "FOCUS_TEMPERATURE")
        return None if snap is None else snap.values.get("TEMPERATURE")

    def move_to(self, position: int) -> int:
        """Move to an absolute position and wait until the focuser stops there; returns where it is."""
        lo, hi = self.min_position, self.max_position
        if not lo <= position <= hi:
            raise DeviceError(f"{self.name}: position {position} is outside its range {lo}..{hi}")
        set_number(self.client, self.name, "ABS_FOCUS_POSITION", {"FOCUS_ABSOLUTE_POSITION": int(position)},
                   self.move_timeout)
        return self.position
