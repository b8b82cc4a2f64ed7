"""Settings of the independent safety guard (config section ``guard``; `indisync guard`).

Importable without PyIndi or paho: config.py assembles it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..configtypes import ConfigValueError


@dataclass
class GuardSettings:
    name: str = "guard"  # [a-z0-9-]: the guard's MQTT client id and topics ({prefix}/guard/{name}/...)
    grace: float = 60.0  # seconds the master gets to park and close on its own before the guard acts
    interval: float = 1.0  # seconds between looks at the devices

    def validate(self) -> None:
        from ..protocol.topics import NODE_NAME

        if not NODE_NAME.match(self.name):
            raise ConfigValueError("name", f"got {self.name!r}; allowed: 1-64 lower-case letters, digits and '-'")
        for key in ("grace", "interval"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ConfigValueError(key, f"got {value}; allowed: a positive number of seconds")
