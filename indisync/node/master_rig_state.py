"""The master's ``rig`` state field: weather (safe or not, since when, why), mount (parked,
tracking, slewing, pier side, where it points), dome (shutter, park) and the site's time zone, for
the dashboard's rig panel (schema: protocol/messages.py RIG).

Cheap and bounded: it reads only the INDI client's cached property values (``client.snapshot``),
never waits for a property or sends anything, so publishing it can neither block nor disturb the
night. Alt/az come from the mount's HORIZONTAL_COORD when it has one, else from its JNow RA/Dec,
the site and the clock (GMST; no refraction: a display figure, good to ~0.1°).

The pointing changes all night; the state (and the night log, which records state changes) gets a
new copy when something else changed, while the mount moves, after it moved more than
``MOVED_DEG``, or every ``REFRESH_S`` s.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime, timezone
from typing import Callable

from ..devices.weather import age_s
from ..protocol import messages
from ..protocol.schema import fit_text

log = logging.getLogger(__name__)

READ_EVERY_S = 1.0
REFRESH_S = 60.0  # pointing republished at least this often while nothing else changes
MOVED_DEG = 0.5  # pointing republished at once when it moved more than this
_POINTING = ("ra_deg", "dec_deg", "alt_deg", "az_deg")


def local_zone_name() -> str | None:
    """This computer's IANA zone name (indisync.timezones), or None when it has none."""
    from ..timezones import local_zone

    key = getattr(local_zone(), "key", None)
    if isinstance(key, str) and 0 < len(key) <= 64 and ("/" in key or key == "UTC"):
        return key  # an IANA name ("localtime" is a zone read from a file, not a name)
    return None


def altaz_deg(ra_hours: float, dec_deg: float, lat_deg: float, lon_east_deg: float,
              when: datetime) -> tuple[float, float]:
    """(altitude, azimuth from north through east) in degrees of a JNow position; no refraction."""
    jd = when.timestamp() / 86400.0 + 2440587.5
    gmst = (280.46061837 + 360.98564736629 * (jd - 2451545.0)) % 360.0
    ha = math.radians((gmst + lon_east_deg - ra_hours * 15.0) % 360.0)
    dec, lat = math.radians(dec_deg), math.radians(lat_deg)
    sin_alt = math.sin(dec) * math.sin(lat) + math.cos(dec) * math.cos(lat) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    az = math.atan2(-math.sin(ha) * math.cos(dec), math.sin(dec) * math.cos(lat) - math.cos(dec) * math.sin(lat) * math.cos(ha))
    return math.degrees(alt), math.degrees(az) % 360.0


def _light_names(lights: dict, state: str) -> str:
    names = [k.removeprefix("WEATHER_").replace("_", " ").lower() for k, v in lights.items() if v == state]
    return ", ".join(names) or "WEATHER_STATUS"


class RigStateReader:
    """Reads the rig from cached INDI values; ``read()`` never blocks and never raises for a
    device that is gone (its part says unknown)."""

    def __init__(self, cfg, devices: Callable[[], object], wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self._devices = devices
        self._wall, self._mono = wall, mono
        self._safe: bool | None = None
        self._since: float | None = None  # wall time the weather's safe-ness was first seen as it is
        site = getattr(cfg, "site", None)
        self.site_tz = getattr(site, "timezone", None) or local_zone_name()

    def read(self) -> dict:
        try:
            devices = self._devices()
            lost = None
        except Exception as exc:  # noqa: BLE001 - indiserver gone: every part is unknown
            devices, lost = None, str(exc)
        return {"weather": self._weather(devices, lost), "mount": self._mount(devices),
                "dome": self._dome(devices), "site_tz": self.site_tz}

    # ---- weather ----------------------------------------------------------------------------------
    def _weather(self, devices, lost: str | None) -> dict | None:
        name = self.cfg.indi.weather
        if not name:
            return None
        weather = getattr(devices, "weather", None)
        stale_after = self.cfg.safety.stale_after
        if devices is None:
            safe, detail = False, f"no connection to indiserver ({lost})"
        elif weather is None:
            safe, detail = False, f"weather device {name!r} not connected"
        else:
            status, age = weather.status, age_s(weather, self._mono())
            if status is None:
                safe, detail = False, f"{name} has no WEATHER_STATUS (driver stopped?)"
            elif age is None or age > stale_after:
                safe, detail = False, (f"no update for {age:.0f} s" if age is not None else "no update yet") + \
                    f" (safety.stale_after {stale_after:g} s)"
            elif status == "alert":
                safe, detail = False, f"alert: {_light_names(weather.lights, 'Alert')}"
            elif status == "busy":
                safe, detail = True, f"warning: {_light_names(weather.lights, 'Busy')}"
            else:
                safe, detail = True, None
        if safe != self._safe:
            self._safe, self._since = safe, self._wall()
        since = messages.now_iso(datetime.fromtimestamp(self._since, timezone.utc)) if self._since else None
        return {"safe": safe, "since": since, "detail": None if detail is None else fit_text(detail)}

    # ---- mount ------------------------------------------------------------------------------------
    def _mount(self, devices) -> dict | None:
        if not self.cfg.indi.mount:
            return None
        blank = {"parked": None, "tracking": None, "slewing": None, "pier_side": None,
                 "ra_deg": None, "dec_deg": None, "alt_deg": None, "az_deg": None}
        mount = getattr(devices, "mount", None)
        if mount is None:
            return blank
        client, name = mount.client, mount.name
        park = client.snapshot(name, "TELESCOPE_PARK")
        track = client.snapshot(name, "TELESCOPE_TRACK_STATE")
        eod = client.snapshot(name, "EQUATORIAL_EOD_COORD")
        out = dict(blank)
        if park is not None:
            out["parked"] = bool(park.values.get("PARK"))
        if track is not None:
            out["tracking"] = bool(track.values.get("TRACK_ON"))
        out["slewing"] = bool((eod is not None and eod.state == "Busy") or (park is not None and park.state == "Busy"))
        out["pier_side"] = mount.pier_side
        if eod is not None and isinstance(eod.values.get("RA"), (int, float)) and isinstance(eod.values.get("DEC"), (int, float)):
            ra_h, dec = float(eod.values["RA"]), float(eod.values["DEC"])
            out["ra_deg"] = round((ra_h * 15.0) % 360.0, 3)
            out["dec_deg"] = round(max(-90.0, min(90.0, dec)), 3)
            horizontal = client.snapshot(name, "HORIZONTAL_COORD")
            if horizontal is not None and "ALT" in horizontal.values and "AZ" in horizontal.values:
                alt, az = float(horizontal.values["ALT"]), float(horizontal.values["AZ"])
            else:
                site = self._site(mount)
                alt, az = altaz_deg(ra_h, dec, site[0], site[1], datetime.fromtimestamp(self._wall(), timezone.utc)) \
                    if site is not None else (None, None)
            if alt is not None and math.isfinite(alt) and math.isfinite(az):
                out["alt_deg"], out["az_deg"] = round(max(-90.0, min(90.0, alt)), 2), round(az % 360.0, 2)
        return out

    def _site(self, mount) -> tuple[float, float] | None:
        try:
            site = mount.site()  # GEOGRAPHIC_COORD, cached
        except Exception:  # noqa: BLE001 - a driver without it: the config's site
            site = None
        if site is not None:
            return site[0], site[1]
        cfg_site = getattr(self.cfg, "site", None)
        return None if cfg_site is None else (cfg_site.latitude, cfg_site.longitude_east)

    # ---- dome -------------------------------------------------------------------------------------
    def _dome(self, devices) -> dict | None:
        if not self.cfg.indi.dome:
            return None
        dome = getattr(devices, "dome", None)
        if dome is None:
            return {"shutter": "unknown", "parked": None}
        snap = dome.client.snapshot(dome.name, "DOME_SHUTTER")
        if snap is None or snap.state == "Alert":
            shutter = "unknown"
        elif snap.state == "Busy":
            shutter = "moving"
        else:
            is_open = dome.shutter_open
            shutter = {True: "open", False: "closed"}.get(is_open, "unknown")
        return {"shutter": shutter, "parked": dome.parked}


def _discrete(rig: dict) -> dict:
    mount = rig.get("mount")
    if isinstance(mount, dict):
        mount = {k: v for k, v in mount.items() if k not in _POINTING}
    return {**rig, "mount": mount}


def _moved(a: dict | None, b: dict | None) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    for key in _POINTING:
        x, y = a.get(key), b.get(key)
        if (x is None) != (y is None):
            return True
        if x is not None:
            diff = abs(x - y)
            if key in ("ra_deg", "az_deg"):
                diff = min(diff, 360.0 - diff)
            if diff > MOVED_DEG:
                return True
    return False


class RigStatePublisher:
    """Reads the rig about once a second and hands ``publish`` a new copy when it is due (see the
    module's docstring). ``run`` is the thread's body: it never raises, and logs each new failure."""

    def __init__(self, reader: RigStateReader, publish: Callable[[dict], None], stop: threading.Event,
                 mono: Callable[[], float] = time.monotonic, every: float = READ_EVERY_S, refresh: float = REFRESH_S):
        self.reader, self.publish, self.stop = reader, publish, stop
        self._mono, self.every, self.refresh = mono, every, refresh
        self._last: dict | None = None
        self._last_at: float | None = None
        self._last_error: str | None = None

    def due(self, rig: dict) -> bool:
        if self._last is None or self._last_at is None:
            return True
        if _discrete(rig) != _discrete(self._last):
            return True
        mount = rig.get("mount") or {}
        if mount.get("slewing") or _moved(mount, self._last.get("mount")):
            return True
        return self._mono() - self._last_at >= self.refresh

    def tick(self) -> bool:
        rig = self.reader.read()
        if not self.due(rig):
            return False
        self.publish(rig)
        self._last, self._last_at = rig, self._mono()
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
                self._last_error = None
            except Exception as exc:  # noqa: BLE001 - the rig panel goes stale; the night goes on
                why = f"{type(exc).__name__}: {exc}"
                if why != self._last_error:
                    log.exception("rig state not published (the dashboard's rig panel goes stale)")
                    self._last_error = why
            self.stop.wait(self.every)
