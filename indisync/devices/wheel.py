"""A filter wheel: names from FILTER_NAME, selection through FILTER_SLOT."""

from __future__ import annotations

import re

from ..errors import UnknownFilter
from .device import IndiDevice
from .props import set_number


def describe_names(names: list[str]) -> str:
    return ", ".join(f"{i} {n}" for i, n in enumerate(names, start=1))


class FilterWheel(IndiDevice):
    key_properties = ("FILTER_SLOT", "FILTER_NAME")

    @property
    def names(self) -> list[str]:
        """Filter names in slot order (slot 1 first), from the wheel's FILTER_NAME texts."""
        snap = self.client.wait_property(self.name, "FILTER_NAME", self.property_timeout)

        def slot(elem: str) -> int:
            m = re.search(r"(\d+)$", elem)
            return int(m.group(1)) if m else 0

        return [snap.values[e] for e in sorted(snap.values, key=slot)]

    def slot_of(self, filter_name: str) -> int:
        names = self.names
        if filter_name not in names:
            raise UnknownFilter(
                f"filter {filter_name!r} is not on {self.name}; its filters are: {describe_names(names)}. "
                "Use one of these names (they come from the wheel's FILTER_NAME property)."
            )
        return names.index(filter_name) + 1

    @property
    def current(self) -> str:
        snap = self.client.wait_property(self.name, "FILTER_SLOT", self.property_timeout)
        index = int(round(snap.values["FILTER_SLOT_VALUE"]))
        names = self.names
        return names[index - 1] if 1 <= index <= len(names) else f"slot {index}"

    def select(self, filter_name: str) -> None:
        """Move to the named filter and wait until the wheel is there."""
        slot = self.slot_of(filter_name)
        snap = self.client.snapshot(self.name, "FILTER_SLOT")
        if snap is not None and int(round(snap.values["FILTER_SLOT_VALUE"])) == slot and snap.state != "Busy":
            return
        set_number(self.client, self.name, "FILTER_SLOT", {"FILTER_SLOT_VALUE": slot}, self.move_timeout)
