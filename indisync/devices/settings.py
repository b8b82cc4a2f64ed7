"""Settings of the INDI side (config section ``indi``): where indiserver is, which devices to use, how long to wait.

Owned by devices/ and importable without PyIndi, so config.py can assemble it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..configtypes import ConfigValueError


@dataclass
class IndiConfig:
    host: str = "localhost"
    port: int = 7624
    camera: str = "CCD Simulator"
    filter_wheel: str | None = "Filter Simulator"  # null: this OTA has no wheel
    focuser: str | None = "Focuser Simulator"  # null: this OTA has no focuser
    mount: str | None = "Telescope Simulator"
    guide_camera: str | None = "Guide Simulator"
    connect_timeout: float = 10.0  # seconds to reach the server and see a device
    property_timeout: float = 10.0  # seconds for a property to appear or a setting to reach OK
    move_timeout: float = 120.0  # seconds for a focuser move or filter change to finish
    readout_timeout: float = 60.0  # seconds beyond the exposure time for the image to arrive

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigValueError("port", f"got {self.port}; allowed: 1..65535")
        for key in ("connect_timeout", "property_timeout", "move_timeout", "readout_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigValueError(key, "must be a positive number of seconds")
