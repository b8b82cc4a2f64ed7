"""What every INDI device class shares: its client, name and timeouts, and connecting."""

from __future__ import annotations

from .client import IndiClient
from .props import ensure_connected


class IndiDevice:
    # Properties that must exist before the device is usable; connect() waits for them.
    key_properties: tuple[str, ...] = ()

    def __init__(self, client: IndiClient, name: str, property_timeout: float = 10.0, move_timeout: float = 120.0):
        self.client, self.name = client, name
        self.property_timeout, self.move_timeout = property_timeout, move_timeout

    def connect(self):
        """Connect the device unless it already is, and wait for its key properties."""
        ensure_connected(self.client, self.name, self.property_timeout)
        for prop in self.key_properties:
            self.client.wait_property(self.name, prop, self.property_timeout)
        return self
