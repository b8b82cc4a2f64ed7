"""Open the INDI devices a node's config names, connected and ready; close them again."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .settings import IndiConfig
from ..errors import DeviceError, PropertyTimeout
from .camera import Camera
from .client import IndiClient
from .dome import Dome
from .dust_cap import DustCap
from .focuser import Focuser
from .light_panel import LightPanel
from .mount import Mount
from .rotator import Rotator
from .weather import Weather
from .wheel import FilterWheel

log = logging.getLogger(__name__)

ROLES = {  # config key -> device class
    "camera": Camera,
    "filter_wheel": FilterWheel,
    "focuser": Focuser,
    "mount": Mount,
    "guide_camera": Camera,
    "weather": Weather,
    "dome": Dome,
    "rotator": Rotator,
    "light_panel": LightPanel,  # panel flats (indisync.node.calibrating)
    "dust_cap": DustCap,  # closed for panel flats and darks, open for sky flats
}


@dataclass
class Devices:
    client: IndiClient
    camera: Camera | None = None
    filter_wheel: FilterWheel | None = None
    focuser: Focuser | None = None
    mount: Mount | None = None
    guide_camera: Camera | None = None
    weather: Weather | None = None
    dome: Dome | None = None
    rotator: Rotator | None = None
    light_panel: LightPanel | None = None
    dust_cap: DustCap | None = None

    @property
    def wheel(self) -> FilterWheel | None:
        return self.filter_wheel


def _make(role: str, client: IndiClient, name: str, cfg: IndiConfig):
    if role in ("camera", "guide_camera"):
        return Camera(client, name, cfg.property_timeout, cfg.readout_timeout)
    return ROLES[role](client, name, cfg.property_timeout, cfg.move_timeout)


def connect_devices(cfg: IndiConfig, need: tuple[str, ...] = ("camera",),
                    want: tuple[str, ...] = tuple(ROLES)) -> Devices:
    """Connect to indiserver and each device in ``want`` that the config names.

    A device in ``need`` that is missing is an error naming what the server offers; a wanted but
    missing one is logged and left as None (a rig may have no wheel, or no focuser).
    """
    for role in need:
        if role not in ROLES:
            raise ValueError(f"unknown device role {role!r}")
        if getattr(cfg, role) is None:
            raise DeviceError(f"this command needs a {role.replace('_', ' ')}, but indi.{role} is null in the config")
    client = IndiClient.connect(cfg.host, cfg.port, cfg.connect_timeout)
    devices = Devices(client)
    try:
        for role in dict.fromkeys((*need, *want)):
            name = getattr(cfg, role)
            if name is None:
                continue
            try:
                client.wait_device(name, cfg.connect_timeout if role in need else min(cfg.connect_timeout, 3.0))
            except PropertyTimeout as exc:
                if role in need:
                    raise DeviceError(str(exc)) from None
                log.info("no %s %r on %s; going on without it", role.replace("_", " "), name, client.address)
                continue
            setattr(devices, role, _make(role, client, name, cfg).connect())
    except BaseException:
        client.close()
        raise
    return devices


@contextmanager
def open_devices(cfg: IndiConfig, need: tuple[str, ...] = ("camera",),
                 want: tuple[str, ...] = tuple(ROLES)) -> Iterator[Devices]:
    devices = connect_devices(cfg, need, want)
    try:
        yield devices
    finally:
        devices.client.close()
