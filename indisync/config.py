"""indisync's configuration: typed sections with documented defaults, loaded once from YAML.

The loaded ``Config`` is passed down to whatever needs it; nothing reads configuration globally.
An invalid file fails at start-up with a ConfigError naming the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

# Each layer owns its settings; this module only assembles them. The sections are re-exported
# here (``from indisync.config import IndiConfig`` keeps working). None of these imports may pull
# in numpy, scipy, photutils, astropy, PyIndi or paho: `indisync --help` and `status` load this.
from .acquire.settings import AcquireSettings
from .alerts.settings import AlertSettings
from .analysis.settings import AnalysisSettings
from .calib.settings import DarksSettings, FlatsSettings
from .configtypes import ConfigValueError, build
from .dashboard.settings import DashboardSettings
from .devices.settings import CameraSettings, CoolingSettings, IndiConfig
from .errors import ConfigError
from .focus.settings import FocusSettings
from .guard.settings import GuardSettings
from .guiding.settings import GuiderSettings
from .protocol.settings import MqttConfig
from .protocol.topics import NODE_NAME  # the one node-name rule: names end up in MQTT topics
from .night.meridian import FlipSettings
from .night.settings import DomeSettings, NightSettings, SafetySettings, SiteSettings
from .record.settings import GradingSettings, RecordSettings
from .season.settings import SchedulerSettings
from .sequence.settings import MasterSettings, SlaveSettings

__all__ = [
    "AnalysisSettings", "CameraSettings", "Config", "CoolingSettings", "FocusSettings", "GuiderSettings", "IndiConfig", "MasterSettings",
    "MqttConfig", "NODE_NAME", "NodeConfig", "SlaveSettings", "StorageConfig", "load_config", "parse_hostport",
]


@dataclass
class NodeConfig:
    name: str = "ota1"  # [a-z0-9-]: used in MQTT topics and file names
    role: Literal["master", "slave"] = "slave"

    def validate(self) -> None:
        if not NODE_NAME.match(self.name):
            raise ConfigValueError("name", f"got {self.name!r}; allowed: 1-64 lower-case letters, digits and '-'")


@dataclass
class StorageConfig:
    directory: str = "./images"
    # fields: node target filter exposure seq type suffix batch
    filename: str = "{node}_{target}_{filter}_{exposure}s_{seq:04d}"
    # a frame is refused (with an alarm) when the directory's file system has less free space than this
    min_free_gb: float = 0.5

    def validate(self) -> None:
        sample = dict(node="n", target="t", filter="f", exposure=1, seq=1, type="light", suffix="s", batch=1)
        try:
            self.filename.format(**sample)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigValueError(
                "filename", f"{exc!r} in {self.filename!r}; allowed fields: {', '.join(sample)}"
            ) from None
        if self.min_free_gb < 0:
            raise ConfigValueError("min_free_gb", f"got {self.min_free_gb}; allowed: 0 or more (GB; 0: never refuse)")


@dataclass
class TestingConfig:
    """For tests and benchmarks only: never set on a real rig (a node warns at start when it is)."""

    clock_skew_s: float = 0.0  # shift this node's clock (envelopes, clock samples, DATE-OBS) by this much

    def validate(self) -> None:
        if not -86_400 <= self.clock_skew_s <= 86_400:
            raise ConfigValueError("clock_skew_s", "allowed: -86400..86400 seconds")


@dataclass
class Config:
    node: NodeConfig = field(default_factory=NodeConfig)
    indi: IndiConfig = field(default_factory=IndiConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    camera: CameraSettings = field(default_factory=CameraSettings)  # cooling of this node's camera
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)  # star detection and HFR
    focus: FocusSettings = field(default_factory=FocusSettings)  # autofocus sweep, fit, offsets
    master: MasterSettings = field(default_factory=MasterSettings)  # used when node.role is master
    slave: SlaveSettings = field(default_factory=SlaveSettings)  # used when node.role is slave
    # The master guides (and dithers, per master.dither) only when this section is present.
    guider: GuiderSettings | None = None
    testing: TestingConfig = field(default_factory=TestingConfig)  # tests only: see TestingConfig
    # The unattended night (indisync.night): without site: the mount's GEOGRAPHIC_COORD is used;
    # without night: the master images at once and ends with its sequence, as before.
    site: SiteSettings | None = None
    night: NightSettings | None = None
    safety: SafetySettings = field(default_factory=SafetySettings)  # used with indi.weather
    dome: DomeSettings = field(default_factory=DomeSettings)  # how the park orders the dome and the mount
    acquire: AcquireSettings = field(default_factory=AcquireSettings)  # plate solving and centring
    # The meridian flip (indisync.night.meridian): only with this section present (and a mount and
    # master.target coordinates); without it the night never flips.
    flip: FlipSettings | None = None
    grading: GradingSettings = field(default_factory=GradingSettings)  # every frame graded on its node
    record: RecordSettings = field(default_factory=RecordSettings)  # the night log and report
    alerts: AlertSettings = field(default_factory=AlertSettings)  # alarms to a phone (apprise URLs)
    guard: GuardSettings = field(default_factory=GuardSettings)  # the independent guard (`indisync guard`)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)  # `indisync dashboard`: address, password, limits
    # The season (indisync.season): with this section the master images the targets of
    # {storage.directory}/indisync.db as the scheduler picks them, not master.target/sequence.
    scheduler: SchedulerSettings | None = None
    # Calibration (indisync.calib): sky flats at dusk/dawn and panel flats (flats:), the dark library (darks:).
    flats: FlatsSettings = field(default_factory=FlatsSettings)
    darks: DarksSettings = field(default_factory=DarksSettings)
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
