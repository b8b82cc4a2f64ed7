"""The ``site:``, ``night:`` and ``safety:`` config sections, and the target's coordinates.

    site: {latitude: 48.14, longitude: 11.58, elevation: 520,   # degrees (east positive), metres
           timezone: Europe/Berlin}                            # IANA name; null: this computer's zone
    night:
      start_sun_altitude: -12    # imaging starts once the sun is below this
      end_sun_altitude: -12      # no frame is started that would end after the sun rises past this
      min_altitude: 30           # nor one that would end with the target below this (degrees)
      end_at: null               # optional "HH:MM" (the site's local time: site.timezone) or ISO-8601 UTC
      park_at_end: true
      warm_at_end: true
      cool: true                 # cool every node (its own camera.cooling) before unparking
      center: false              # plate-solve and centre after every slew (acquire: section), then co-align the OTAs
    safety: {safe_for: 600, stale_after: 180}

Pure: no astropy here (indisync.astro does the sky).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo

from ..configtypes import ConfigValueError
from ..timezones import local_zone, zone_named

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\Z")


@dataclass
class SiteSettings:
    latitude: float = 0.0  # degrees, north positive
    longitude: float = 0.0  # degrees, east positive (-180..360; INDI's 0..360 E is accepted)
    elevation: float = 0.0  # metres above sea level
    # IANA name ("Europe/Berlin"): night.end_at "HH:MM", the night log's date and the report's night
    # are this zone's wall clock, with its changes of the clocks. null: this computer's zone.
    timezone: str | None = None

    def validate(self) -> None:
        if self.timezone is not None:
            try:
                zone_named(self.timezone)
            except ValueError as exc:
                raise ConfigValueError("timezone", str(exc)) from None
        if not -90 <= self.latitude <= 90:
            raise ConfigValueError("latitude", f"got {self.latitude}; allowed: -90..90 degrees")
        if not -180 <= self.longitude <= 360:
            raise ConfigValueError("longitude", f"got {self.longitude}; allowed: -180..360 degrees east")
        if not -500 <= self.elevation <= 10_000:
            raise ConfigValueError("elevation", f"got {self.elevation}; allowed: -500..10000 metres")

    @property
    def zone(self) -> tzinfo:
        """The site's time zone (``timezone``, else this computer's)."""
        return zone_named(self.timezone) if self.timezone else local_zone()

    @property
    def longitude_east(self) -> float:
        """-180..180, east positive."""
        return ((self.longitude + 180.0) % 360.0) - 180.0


@dataclass
class NightSettings:
    start_sun_altitude: float = -12.0  # degrees: imaging starts once the sun is below this
    end_sun_altitude: float = -12.0  # degrees: no frame may end after the sun has risen past this
    min_altitude: float = 30.0  # degrees: no frame may end with the target below this
    end_at: str | None = None  # "HH:MM" (the site's local time, site.timezone) or ISO-8601 UTC: stop by then anyway
    park_at_end: bool = True
    warm_at_end: bool = True
    cool: bool = True  # send `cool` to every node and wait (camera.cooling.timeout) before unparking
    slew_timeout: float = 300.0  # seconds for unpark + slew; past it the night parks and ends
    # Plate-solved centring after every slew (acquire.tolerance_arcsec, attempts, on_failure), then the
    # OTAs' co-alignment. A key of its own, not "an acquire: section is present": acquire: also serves
    # `indisync solve`/`center` by hand, and solving needs index files a rig may not have yet.
    center: bool = False

    def validate(self) -> None:
        for key in ("start_sun_altitude", "end_sun_altitude", "min_altitude"):
            if not -90 <= getattr(self, key) <= 90:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: -90..90 degrees")
        if self.end_at is not None:
            parse_end_at(self.end_at)
        if self.slew_timeout <= 0:
            raise ConfigValueError("slew_timeout", "must be a positive number of seconds")


def parse_end_at(text: str) -> tuple[int, int] | datetime:
    """'HH:MM' -> (hour, minute); an ISO-8601 time -> an aware UTC datetime (naive means UTC)."""
    match = _HHMM.match(text.strip())
    if match:
        return int(match.group(1)), int(match.group(2))
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigValueError("end_at", f"got {text!r}; allowed: null, \"HH:MM\" (the site's local time, "
                                         "site.timezone) or an ISO-8601 UTC time such as 2026-12-03T05:30:00Z") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


@dataclass
class SafetySettings:
    safe_for: float = 600.0  # seconds of continuous safe weather before the night resumes
    stale_after: float = 180.0  # seconds without a weather update before the weather counts as unsafe
    poll: float = 0.5  # seconds between looks at the weather device
    # A park that failed (mount not answering, indiserver gone) is tried again this long after.
    # Short enough to catch an indiserver that restarts within a minute, long enough not to hammer a
    # mount that is busy recovering.
    park_retry: float = 30.0
    # A frame that could not be taken (camera or indiserver gone) is not counted: the sequence pauses
    # and takes the same slot again this long after, until the window ends (it never burns slots).
    frame_retry: float = 30.0

    def validate(self) -> None:
        for key in ("safe_for", "stale_after", "poll", "park_retry", "frame_retry"):
            if getattr(self, key) <= 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: seconds > 0")


@dataclass
class DomeSettings:
    """``dome:``. Without requires_mount_parked the park closes the dome and parks the mount at once,
    each whatever the other does (a stuck mount never keeps the dome open). A roll-off roof that would
    hit a telescope that is not parked sets it: the roof then closes only once the mount is parked."""

    requires_mount_parked: bool = False

    def validate(self) -> None:
        pass


@dataclass
class TargetSettings:
    """``master.target`` as a mapping: the name (OBJECT, file names) and J2000 coordinates to slew to."""

    name: str = "untitled"
    ra: float | None = None  # J2000 degrees, 0..360
    dec: float | None = None  # J2000 degrees, -90..90

    def validate(self) -> None:
        if (self.ra is None) != (self.dec is None):
            raise ConfigValueError("ra", "give both ra and dec (J2000 degrees), or neither")
        if self.ra is not None and not 0 <= self.ra < 360:
            raise ConfigValueError("ra", f"got {self.ra}; allowed: 0 <= ra < 360 degrees (J2000)")
        if self.dec is not None and not -90 <= self.dec <= 90:
            raise ConfigValueError("dec", f"got {self.dec}; allowed: -90..90 degrees (J2000)")

    @property
    def has_coordinates(self) -> bool:
        return self.ra is not None and self.dec is not None
