"""Settings of the independent safety guard (config section ``guard``; `indisync guard`).

    guard:
      name: guard            # its MQTT client id and topics ({prefix}/guard/{name}/...)
      grace: 60              # s the master gets to park and close on its own before the guard acts
      interval: 1            # s between looks at the devices
      indi_host: null        # the indiserver with the weather station, mount and dome (null: indi.host)
      indi_port: null        # (null: indi.port)
      master: null           # the master node to watch (null: node.name if node.role is master, else
                             # whichever node says role master)
      sun_altitude: null     # deg: the sun above this is unsafe (null: the higher of night.start_sun_altitude
                             # and night.end_sun_altitude, -12 without a night: section; with flats.sky at
                             # least flats.sun_high, so that sky flats in twilight are not parked)
      cameras: null          # cameras whose exposures it aborts when it acts: "CCD Simulator" (on the
                             # guard's indiserver) or "CCD Simulator@10.0.0.12:7624"; null: [indi.camera]
      retry: 10              # s between attempts while the rig is not yet safe
      publish_every: 5       # s between guard_state heartbeats (and on every change)

Importable without PyIndi or paho: config.py assembles it cheaply.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..configtypes import ConfigValueError

_CAMERA = re.compile(r"^(?P<device>[^@]+?)(?:@(?P<host>[^@:]+):(?P<port>\d{1,5}))?\Z")


@dataclass
class GuardSettings:
    name: str = "guard"  # [a-z0-9-]: the guard's MQTT client id and topics ({prefix}/guard/{name}/...)
    grace: float = 60.0  # seconds the master gets to park and close on its own before the guard acts
    interval: float = 1.0  # seconds between looks at the devices
    indi_host: str | None = None  # the weather station's, mount's and dome's indiserver; null: indi.host
    indi_port: int | None = None  # null: indi.port
    master: str | None = None  # the master node watched; null: node.name (role master) or the node saying master
    sun_altitude: float | None = None  # deg; null: max(night.start/end_sun_altitude), -12 without night:
    cameras: list[str] | None = None  # "Device" or "Device@host:port"; null: [indi.camera]; []: none
    retry: float = 10.0  # seconds between attempts to park and close while the rig is not yet safe
    publish_every: float = 5.0  # seconds between guard_state heartbeats (also published on every change)

    def validate(self) -> None:
        from ..protocol.topics import NODE_NAME

        if not NODE_NAME.match(self.name):
            raise ConfigValueError("name", f"got {self.name!r}; allowed: 1-64 lower-case letters, digits and '-'")
        if self.master is not None and not NODE_NAME.match(self.master):
            raise ConfigValueError("master", f"got {self.master!r}; allowed: null or a node name ([a-z0-9-])")
        for key in ("grace", "interval", "retry", "publish_every"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ConfigValueError(key, f"got {value}; allowed: a positive number of seconds")
        if self.indi_port is not None and not 0 < self.indi_port < 65536:
            raise ConfigValueError("indi_port", f"got {self.indi_port}; allowed: null or 1..65535")
        if self.sun_altitude is not None and not -90 <= self.sun_altitude <= 90:
            raise ConfigValueError("sun_altitude", f"got {self.sun_altitude}; allowed: null or -90..90 degrees")
        for i, entry in enumerate(self.cameras or []):
            if parse_camera(entry) is None:
                raise ConfigValueError(f"cameras[{i}]", f"got {entry!r}; allowed: \"Device name\" or \"Device "
                                                        "name@host:port\" (e.g. \"CCD Simulator@10.0.0.12:7624\")")


def parse_camera(entry: str) -> tuple[str, str | None, int | None] | None:
    """"CCD Simulator" -> ("CCD Simulator", None, None); "CCD@10.0.0.12:7624" -> ("CCD", "10.0.0.12", 7624);
    None when malformed."""
    match = _CAMERA.match(entry.strip()) if isinstance(entry, str) else None
    if match is None or not match.group("device").strip():
        return None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return None
    return match.group("device").strip(), match.group("host"), int(port) if port else None
