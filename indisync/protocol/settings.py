"""Settings of the MQTT side (config section ``mqtt``): broker, credentials, topics, liveness.

Owned by protocol/ and importable without paho, so config.py can assemble it cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..configtypes import ConfigValueError


@dataclass
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password_file: str | None = None  # a file holding the password; never the password itself
    tls: bool = False
    ca_certs: str | None = None  # with tls: CA bundle; null uses the system's
    certfile: str | None = None
    keyfile: str | None = None
    topic_prefix: str = "indisync"
    keepalive: int = 5  # seconds; the broker publishes our Last Will ~1.5x this after a silent death
    heartbeat: float = 2.0  # seconds between retained state heartbeats
    dead_after: float = 8.0  # seconds without a heartbeat before the master drops a node
    discovery_prefix: str = "homeassistant"
    # A command is refused once its envelope ts (the sender's clock, corrected by the measured
    # offset) is this many seconds old; it is also each command's MQTT 5 Message Expiry Interval.
    command_expiry: float = 60.0
    clock_warn: float = 0.1  # seconds: a slave's clock this far off the master's is warned about

    def validate(self) -> None:
        if self.command_expiry < 1 or self.clock_warn <= 0:
            raise ConfigValueError("command_expiry", "command_expiry >= 1 s and clock_warn > 0 s are required")
        if not 0 < self.port < 65536:
            raise ConfigValueError("port", f"got {self.port}; allowed: 1..65535")
        if not re.match(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z", self.topic_prefix):
            raise ConfigValueError("topic_prefix", "allowed: letters, digits, '_', '-' separated by '/', no wildcards")
        if self.keepalive < 1:
            raise ConfigValueError("keepalive", "allowed: an integer >= 1 (seconds)")
        if self.heartbeat <= 0 or self.dead_after <= self.heartbeat:
            raise ConfigValueError("dead_after", "must be greater than heartbeat, both positive seconds")
