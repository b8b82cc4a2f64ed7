"""indisync's configuration: typed sections with documented defaults, loaded once from YAML.

The loaded ``Config`` is passed down to whatever needs it; nothing reads configuration globally.
An invalid file fails at start-up with a ConfigError naming the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from .analysis.settings import AnalysisSettings
from .configtypes import ConfigValueError, build
from .errors import ConfigError
from .focus.settings import FocusSettings
from .guiding.settings import GuiderSettings
from .record.settings import GradingSettings, RecordSettings
from .sequence.settings import MasterSettings, SlaveSettings

NODE_NAME = re.compile(r"^[a-z0-9-]+\Z")  # \Z, not $: "$" also matches before a trailing newline


@dataclass
class NodeConfig:
    name: str = "ota1"  # [a-z0-9-]: used in MQTT topics and file names
    role: Literal["master", "slave"] = "slave"

    def validate(self) -> None:
        if not NODE_NAME.match(self.name):
            raise ConfigValueError("name", f"got {self.name!r}; allowed: lower-case letters, digits and '-'")


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

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigValueError("port", f"got {self.port}; allowed: 1..65535")
        if not re.match(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z", self.topic_prefix):
            raise ConfigValueError("topic_prefix", "allowed: letters, digits, '_', '-' separated by '/', no wildcards")
        if self.keepalive < 1:
            raise ConfigValueError("keepalive", "allowed: an integer >= 1 (seconds)")
        if self.heartbeat <= 0 or self.dead_after <= self.heartbeat:
            raise ConfigValueError("dead_after", "must be greater than heartbeat, both positive seconds")


@dataclass
class StorageConfig:
    directory: str = "./images"
    # fields: node target filter exposure seq type suffix batch
    filename: str = "{node}_{target}_{filter}_{exposure}s_{seq:04d}"

    def validate(self) -> None:
        sample = dict(node="n", target="t", filter="f", exposure=1, seq=1, type="light", suffix="s", batch=1)
        try:
            self.filename.format(**sample)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigValueError(
                "filename", f"{exc!r} in {self.filename!r}; allowed fields: {', '.join(sample)}"
            ) from None


@dataclass
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    indi: IndiConfig = field(default_factory=IndiConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)  # star detection and HFR
    focus: FocusSettings = field(default_factory=FocusSettings)  # autofocus sweep, fit, offsets
    master: MasterSettings = field(default_factory=MasterSettings)  # used when node.role is master
    slave: SlaveSettings = field(default_factory=SlaveSettings)  # used when node.role is slave
    # The master guides (and dithers, per master.dither) only when this section is present.
    guider: GuiderSettings | None = None
    grading: GradingSettings = field(default_factory=GradingSettings)  # every frame graded on its node
    record: RecordSettings = field(default_factory=RecordSettings)  # the night log and report
    source: str | None = field(default=None, init=False, repr=False)  # the file it came from, for messages

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


def load_config(path: str | Path | None = None, data: dict | None = None) -> Config:
    """Load and validate a config file (or ``data`` already parsed). No file: all defaults."""
    source = str(path) if path is not None else "<defaults>"
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}. Check the --config path.") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections ({', '.join(_sections())})")
    try:
        cfg = build(Config, data)
    except ConfigValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    cfg.source = source
    return cfg


def _sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Config) if f.name != "source"]


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """'host:port' or 'host' -> (host, port); a clear error otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:7624)")
    return host, int(port)
