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
    weather: str | None = None  # e.g. "Weather Simulator": its WEATHER_STATUS decides if it is safe to image
    dome: str | None = None  # e.g. "Dome Simulator": shutter opened for the night, closed when unsafe
    rotator: str | None = None  # e.g. "Rotator Simulator": turns this OTA's camera to a target's position angle
    # e.g. "Light Panel Simulator": this OTA's flat panel (FLAT_LIGHT_CONTROL, FLAT_LIGHT_INTENSITY), panel flats
    light_panel: str | None = None
    dust_cap: str | None = None  # a motorised cover (CAP_PARK): closed for darks, opened for sky flats
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


@dataclass
class CoolingSettings:
    setpoint: float = -10.0  # deg C the sensor is cooled to before the first frame
    tolerance: float = 1.0  # deg C: within this of the setpoint counts as reached
    timeout: float = 900.0  # seconds to reach it; a node that misses it is named and the night goes on
    warm_to: float = 10.0  # deg C set at the end of the night, so the sensor warms slowly, without frost

    def validate(self) -> None:
        if not -100.0 <= self.setpoint <= 50.0 or not -100.0 <= self.warm_to <= 50.0:
            raise ConfigValueError("setpoint", "setpoint and warm_to: allowed -100..50 (deg C)")
        if not 0 < self.tolerance <= 20:
            raise ConfigValueError("tolerance", f"got {self.tolerance}; allowed: 0 < tolerance <= 20 (deg C)")
        if self.timeout <= 0:
            raise ConfigValueError("timeout", "must be a positive number of seconds")


@dataclass
class CameraSettings:
    # null (the default): this camera is not cooled. None comes first in the type so that an explicit
    # `cooling: null` stays None instead of becoming a section of defaults.
    cooling: None | CoolingSettings = None
    # The camera has a mechanical shutter: darks may be taken whatever covers the OTA (no dome closed,
    # no dust cap needed). Without one, darks wait for a closed dome or dust cap (indisync.calib).
    shutter: bool = False
