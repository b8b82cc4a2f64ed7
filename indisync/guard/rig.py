"""The guard's own INDI side: its own connection to the indiserver with the weather station, the
mount and the dome (``guard.indi_host``/``indi_port``, else ``indi``'s), the device classes of
indisync.devices over it (the only door to PyIndi), what it reads (snapshots only: a look never
waits) and what it does when it acts: abort the exposures it can reach, park the mount, close the
dome, each bounded and read back. It never unparks, never opens, never slews.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from ..devices.camera import Camera
from ..devices.client import IndiClient
from ..devices.dome import Dome
from ..devices.mount import Mount
from ..devices.props import ensure_connected
from ..devices.weather import Weather
from ..errors import IndisyncError
from .decide import DomeReading, MountReading, WeatherReading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Where:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Outcome:
    """What one attempt to make the rig safe did."""

    parked: bool | None  # the mount reads parked afterwards; None: no mount
    closed: bool | None  # the dome's shutter reads closed afterwards; None: no dome
    aborted: list[str] = field(default_factory=list)  # cameras whose exposure was aborted
    problems: list[str] = field(default_factory=list)  # what failed, in words

    @property
    def safe(self) -> bool:
        return self.parked is not False and self.closed is not False


def _state(client: IndiClient | None, device: str, prop: str):
    return None if client is None else client.snapshot(device, prop)


def mount_reading(client: IndiClient | None, device: str) -> MountReading:
    """TELESCOPE_PARK as last seen: parked only when PARK is on and the property is still (Ok/Idle)."""
    snap = _state(client, device, "TELESCOPE_PARK")
    if snap is None or (client is not None and client.lost):
        return MountReading(None)
    if snap.values.get("PARK"):
        if snap.state in ("Ok", "Idle"):
            return MountReading(True)
        return MountReading(False, parking=snap.state == "Busy")  # Alert: refused or aborted: not safe
    return MountReading(False)


def dome_reading(client: IndiClient | None, device: str) -> DomeReading:
    """DOME_SHUTTER as last seen: closed only when SHUTTER_CLOSE is on and the property is still."""
    snap = _state(client, device, "DOME_SHUTTER")
    if snap is None or (client is not None and client.lost):
        return DomeReading(None)
    if snap.values.get("SHUTTER_CLOSE"):
        if snap.state in ("Ok", "Idle"):
            return DomeReading(True)
        return DomeReading(False, closing=snap.state == "Busy")
    if snap.values.get("SHUTTER_OPEN"):
        return DomeReading(False)
    return DomeReading(None)


KEY_PROPERTY = {"weather": "WEATHER_STATUS", "mount": "TELESCOPE_PARK", "dome": "DOME_SHUTTER"}


class GuardRig:
    """The guard's devices over its own INDI connection; every call bounded, none blocks a look."""

    def __init__(self, where: Where, weather: str | None, mount: str | None, dome: str | None,
                 cameras: list[tuple[str, Where]], connect_timeout: float = 10.0, property_timeout: float = 10.0,
                 move_timeout: float = 120.0):
        self.where = where
        self.names = {"weather": weather, "mount": mount, "dome": dome}
        self.cameras = cameras
        self.connect_timeout, self.property_timeout, self.move_timeout = connect_timeout, property_timeout, move_timeout
        self.client: IndiClient | None = None
        self._lock = threading.Lock()  # the loop (reconnect) and the action (park) share the client
        self.problem: str | None = f"not connected to indiserver at {where} yet"

    # ---- the connection ------------------------------------------------------------------------
    def ensure(self) -> str | None:
        """Connect (again) when there is no live connection, and connect any configured device that is
        there but disconnected. Bounded by connect_timeout + property_timeout per device. Returns
        what is wrong (None: every configured device is there)."""
        with self._lock:
            if self.client is not None and self.client.lost:
                log.warning("guard: lost indiserver at %s; reconnecting", self.where)
                self._drop()
            if self.client is None:
                try:
                    self.client = IndiClient.connect(self.where.host, self.where.port, self.connect_timeout)
                    log.info("guard: connected to indiserver at %s", self.where)
                except IndisyncError as exc:
                    self.problem = str(exc)
                    return self.problem
            missing = []
            for role, name in self.names.items():
                if name is None:
                    continue
                if name not in self.client.devices():
                    try:  # a fresh connection: the definitions are still coming in
                        self.client.wait_device(name, min(self.connect_timeout, 3.0))
                    except IndisyncError:
                        missing.append(f"no {role} {name!r} on {self.where}")
                        continue
                try:
                    connection = self.client.wait_property(name, "CONNECTION", self.property_timeout)
                    if not connection.values.get("CONNECT") or connection.state == "Alert":
                        ensure_connected(self.client, name, self.property_timeout)
                        log.info("guard: connected %s %r (it was not)", role, name)
                except IndisyncError as exc:
                    missing.append(f"{role} {name!r} not connected: {exc}")
                    continue
                try:  # what the first look reads: a fresh connection may not have seen it yet
                    self.client.wait_property(name, KEY_PROPERTY[role], min(self.property_timeout, 3.0))
                except IndisyncError:
                    pass  # a look says what is missing (blind)
            self.problem = "; ".join(missing) or None
            return self.problem

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close(wait=5.0)
            except Exception:  # noqa: BLE001 - closing must not end the guard
                log.exception("guard: closing the INDI client failed")

    def close(self) -> None:
        with self._lock:
            self._drop()

    # ---- looks (snapshots only) ----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.lost

    def weather(self, now: float) -> WeatherReading | None:
        name = self.names["weather"]
        if name is None:
            return None
        client = self.client
        if client is None or client.lost:
            return WeatherReading(None, None, f"no connection to indiserver at {self.where}")
        station = Weather(client, name, self.property_timeout)
        status = station.status
        if status is None:
            return WeatherReading(None, None, f"no WEATHER_STATUS from {name!r} on {self.where} (driver stopped?)")
        last = station.last_update
        alerts = sorted(k for k, v in station.lights.items() if v == "Alert")
        detail = f"WEATHER_STATUS Alert: {', '.join(alerts)}" if alerts else None
        return WeatherReading(status, None if last is None else max(0.0, now - last), detail)

    def mount(self) -> MountReading | None:
        name = self.names["mount"]
        return None if name is None else mount_reading(self.client, name)

    def dome(self) -> DomeReading | None:
        name = self.names["dome"]
        return None if name is None else dome_reading(self.client, name)

    def site(self) -> tuple[float, float, float] | None:
        """The mount's GEOGRAPHIC_COORD (lat, lon east -180..180, elevation), when it says."""
        name, client = self.names["mount"], self.client
        if name is None or client is None:
            return None
        return Mount(client, name, self.property_timeout).site()

    def blind(self) -> str | None:
        """What the guard cannot read now; None: it sees every configured device."""
        if not self.connected:
            return self.problem or f"no connection to indiserver at {self.where}"
        gaps = []
        weather = self.weather(time.monotonic())
        if weather is not None and weather.status is None:
            gaps.append(weather.detail)
        if self.names["mount"] is not None and self.mount().parked is None:
            gaps.append(f"no TELESCOPE_PARK from {self.names['mount']!r} on {self.where}")
        if self.names["dome"] is not None and self.dome().closed is None and \
                self.client.snapshot(self.names["dome"], "DOME_SHUTTER") is None:
            gaps.append(f"no DOME_SHUTTER from {self.names['dome']!r} on {self.where}")
        return "; ".join(g for g in gaps if g) or None

    # ---- acting ----------------------------------------------------------------------------------
    def secure(self, mount_first: bool) -> Outcome:
        """Abort what it can reach, park the mount and close the dome: both at once, or (mount_first:
        a roof that would hit an unparked telescope) the dome only once the mount reads parked.
        Never raises: every failure is named in the outcome."""
        outcome = Outcome(parked=None, closed=None)
        remote = self._abort_exposures(outcome)
        mount_name, dome_name = self.names["mount"], self.names["dome"]
        if mount_first or mount_name is None or dome_name is None:
            if mount_name is not None:
                outcome.parked = self._park(mount_name, outcome.problems)
            if dome_name is not None:
                if mount_first and outcome.parked is False:
                    outcome.problems.append("dome left open: dome.requires_mount_parked and the mount did not park")
                    outcome.closed = dome_reading(self.client, dome_name).closed is True
                else:
                    outcome.closed = self._close(dome_name, outcome.problems)
        else:
            dome_problems: list[str] = []
            box: dict = {}
            closer = threading.Thread(target=lambda: box.update(closed=self._close(dome_name, dome_problems)),
                                      name="guard-close-dome", daemon=True)
            closer.start()
            outcome.parked = self._park(mount_name, outcome.problems)
            closer.join(2 * self.move_timeout + 5.0)
            if closer.is_alive():
                dome_problems.append(f"dome: no answer to the close within {2 * self.move_timeout + 5.0:g} s")
            outcome.closed = bool(box.get("closed", False))
            outcome.problems += dome_problems
        if remote is not None:
            remote.join(self.connect_timeout + self.property_timeout + 5.0)
        return outcome

    def _park(self, name: str, problems: list[str]) -> bool:
        client = self.client
        if client is None or client.lost:
            problems.append(f"mount: no connection to indiserver at {self.where}")
            return False
        reading = mount_reading(client, name)
        try:
            if reading.parking:  # a park under way (the master's): never countermand it, wait for its end
                log.info("guard: %s is parking already; waiting for it", name)
                client.wait_until(lambda: (s := client.snapshot(name, "TELESCOPE_PARK")) is None or s.state != "Busy",
                                  self.move_timeout, f"{name} to finish parking")
                reading = mount_reading(client, name)
            if reading.parked is not True:
                log.warning("guard: parking %s", name)
                Mount(client, name, self.property_timeout, self.move_timeout).park(self.move_timeout)
        except Exception as exc:  # noqa: BLE001 - named in the outcome, tried again
            problems.append(f"mount: {exc}")
        return mount_reading(client, name).parked is True

    def _close(self, name: str, problems: list[str]) -> bool:
        client = self.client
        if client is None or client.lost:
            problems.append(f"dome: no connection to indiserver at {self.where}")
            return False
        dome = Dome(client, name, self.property_timeout, self.move_timeout)
        try:
            reading = dome_reading(client, name)
            if reading.closing:  # a close under way: wait for it rather than ask again
                client.wait_until(lambda: (s := client.snapshot(name, "DOME_SHUTTER")) is None or s.state != "Busy",
                                  self.move_timeout, f"{name} to finish closing")
                reading = dome_reading(client, name)
            if reading.closed is not True:
                log.warning("guard: closing %s", name)
                dome.close_shutter(self.move_timeout)
        except Exception as exc:  # noqa: BLE001 - named in the outcome, tried again
            problems.append(f"dome: {exc}")
        # The shutter is what keeps the rain out; the guard does not park (turn) the dome: its azimuth
        # is no safety matter, and parking some domes (the Dome Simulator) closes the shutter once more.
        return dome_reading(client, name).closed is True

    def _abort_exposures(self, outcome: Outcome) -> threading.Thread | None:
        """Abort every exposure under way on the cameras listed: those on our own connection at once
        (the request is sent, not waited for), those on other indiservers from a thread of their own
        (a connection each, bounded), so that they never delay the park."""
        local = [name for name, where in self.cameras if where == self.where]
        remote = [(name, where) for name, where in self.cameras if where != self.where]
        client = self.client
        for name in local:
            if client is None or client.lost:
                outcome.problems.append(f"camera {name!r}: no connection to indiserver at {self.where}")
                continue
            _abort_one(client, name, self.property_timeout, outcome)
        if not remote:
            return None

        def run() -> None:
            for name, where in remote:
                try:
                    other = IndiClient.connect(where.host, where.port, min(self.connect_timeout, 5.0))
                except Exception as exc:  # noqa: BLE001 - named, the park goes on
                    outcome.problems.append(f"camera {name!r} on {where}: {exc}")
                    continue
                try:
                    try:
                        other.wait_property(name, "CCD_EXPOSURE", min(self.property_timeout, 5.0))
                    except IndisyncError:
                        continue  # no such camera there, or not connected: no exposure to abort
                    _abort_one(other, name, self.property_timeout, outcome)
                finally:
                    other.close(wait=5.0)

        thread = threading.Thread(target=_guarded(run, "aborting remote exposures"), name="guard-abort", daemon=True)
        thread.start()
        return thread


def _abort_one(client: IndiClient, name: str, property_timeout: float, outcome: Outcome) -> None:
    snap = client.snapshot(name, "CCD_EXPOSURE")
    if snap is None or snap.state != "Busy":
        return  # no exposure under way (or no such camera here)
    try:
        Camera(client, name, property_timeout).abort()  # CCD_ABORT_EXPOSURE, sent without waiting
        outcome.aborted.append(name)
        log.warning("guard: aborted the exposure of %s", name)
    except Exception as exc:  # noqa: BLE001 - named, the park goes on
        outcome.problems.append(f"camera {name!r}: could not abort its exposure: {exc}")


def _guarded(fn, what: str):
    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a thread never dies silently
            log.exception("guard: %s failed", what)

    return run
