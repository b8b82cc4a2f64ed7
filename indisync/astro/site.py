"""The observing site and the night's windows: dark (sun below the night's altitudes), the target
above ``min_altitude``, and the usable window where both hold (cut at ``end_at``).

astropy is imported inside the functions (the import rule), and always offline: the IERS tables
bundled with astropy are used without download and without their maximum-age check, which costs
nothing measurable at the precision altitudes need.

Altitudes are sampled every ``STEP_S`` seconds over ``SPAN_H`` hours and crossings interpolated
linearly between samples (better than a few seconds for the sun and any target).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from ..night.settings import NightSettings, SiteSettings, TargetSettings, parse_end_at
from ..timezones import local_clock_time, local_zone

log = logging.getLogger(__name__)

STEP_S = 120.0
SPAN_H = 30.0
SITE_MISMATCH_DEG = 0.01


def use_offline_iers() -> None:
    """No network at run time: the bundled IERS tables, whatever their age."""
    try:
        from .coords import use_offline_iers as shared  # nightdev's, once merged
    except ImportError:
        from astropy.utils import iers

        iers.conf.auto_download = False
        iers.conf.auto_max_age = None
        return
    shared()


@dataclass
class Interval:
    start: datetime | None  # None: began before the span searched
    end: datetime | None  # None: lasts beyond it

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass
class NightWindows:
    dark: Interval | None  # None: no dark in the span (polar summer)
    target: Interval | None  # target above min_altitude during the dark; None: never; unset without coordinates
    usable: Interval | None  # where to image: dark, target up, before end_at
    end_at: datetime | None

    def to_dict(self) -> dict:
        def iso(when):
            return when.isoformat().replace("+00:00", "Z") if when is not None else None

        def interval(i: Interval | None):
            return None if i is None else {"from": iso(i.start), "to": iso(i.end), "seconds": i.seconds}

        return {"dark": interval(self.dark), "target": interval(self.target), "usable": interval(self.usable),
                "end_at": iso(self.end_at)}


def _location(site: SiteSettings):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(lon=site.longitude_east * u.deg, lat=site.latitude * u.deg,
                                       height=site.elevation * u.m)


def _times(start: datetime, span_h: float = SPAN_H, step_s: float = STEP_S):
    import astropy.units as u
    import numpy as np
    from astropy.time import Time

    offsets = np.arange(0.0, span_h * 3600.0 + step_s, step_s)
    return Time(start) + offsets * u.s, offsets


def sun_altitudes(site: SiteSettings, times):
    import astropy.units as u
    from astropy.coordinates import AltAz, get_body

    use_offline_iers()
    frame = AltAz(obstime=times, location=_location(site))
    return get_body("sun", times).transform_to(frame).alt.to_value(u.deg)


def target_altitudes(site: SiteSettings, ra_deg: float, dec_deg: float, times):
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord

    use_offline_iers()
    frame = AltAz(obstime=times, location=_location(site))
    return SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs").transform_to(frame).alt.to_value(u.deg)


def altitude_now(site: SiteSettings, ra_deg: float, dec_deg: float, when: datetime | None = None) -> float:
    from astropy.time import Time

    return float(target_altitudes(site, ra_deg, dec_deg, Time(when or datetime.now(timezone.utc))))


def _crossing(t0: datetime, offsets, values, i: int, level: float) -> datetime:
    """Interpolated time between samples i-1 and i where ``values`` crosses ``level``."""
    a, b = values[i - 1], values[i]
    frac = 0.0 if b == a else (level - a) / (b - a)
    return t0 + timedelta(seconds=float(offsets[i - 1] + frac * (offsets[i] - offsets[i - 1])))


def _first_interval(t0, offsets, below, values, start_level, end_level) -> Interval | None:
    """The first run where ``below`` holds (start crossing at start_level, end at end_level)."""
    n = len(below)
    i = 0
    while i < n and not below[i]:
        i += 1
    if i == n:
        return None
    start = None if i == 0 else _crossing(t0, offsets, values, i, start_level)
    j = i
    while j < n and below[j]:
        j += 1
    end = None if j == n else _crossing(t0, offsets, values, j, end_level)
    return Interval(start, end)


def dark_interval(site: SiteSettings, night: NightSettings, start: datetime) -> Interval | None:
    """The first dark period at or after ``start`` (already under way if dark at ``start``)."""
    times, offsets = _times(start)
    sun = sun_altitudes(site, times)
    # Dark begins below start_sun_altitude; it lasts while the sun stays below end_sun_altitude.
    import numpy as np

    started = False
    below = np.zeros(len(sun), dtype=bool)
    for k, alt in enumerate(sun):
        started = alt < night.end_sun_altitude if started else alt < night.start_sun_altitude
        below[k] = started
    interval = _first_interval(start, offsets, below, sun, night.start_sun_altitude, night.end_sun_altitude)
    if interval is not None and interval.start is None:
        interval.start = start  # dark already at the start: "from" is now
    return interval


def target_interval(site: SiteSettings, target: TargetSettings, min_altitude: float, within: Interval) -> Interval | None:
    """The first period inside ``within`` with the target above ``min_altitude``."""
    start = within.start
    span_h = (within.seconds or SPAN_H * 3600.0) / 3600.0
    times, offsets = _times(start, span_h=span_h, step_s=min(STEP_S, max(10.0, span_h * 36.0)))
    alt = target_altitudes(site, target.ra, target.dec, times)
    interval = _first_interval(start, offsets, alt > min_altitude, alt, min_altitude, min_altitude)
    if interval is None:
        return None
    return Interval(interval.start or start, interval.end or within.end)


def resolve_end_at(text: str | None, after: datetime, zone: tzinfo | None = None) -> datetime | None:
    """``night.end_at`` as a UTC datetime: an ISO time as given, "HH:MM" the next time after ``after``
    the clock reads it in ``zone`` (the site's, ``SiteSettings.zone``; None: this computer's), with
    the offset in force at that moment (a night that spans a change of the clocks ends on time)."""
    if text is None:
        return None
    parsed = parse_end_at(text)
    if isinstance(parsed, datetime):
        return parsed
    hour, minute = parsed
    return local_clock_time(zone if zone is not None else local_zone(), hour, minute, after)


def night_windows(site: SiteSettings, night: NightSettings, target: TargetSettings | None,
                  start: datetime) -> NightWindows:
    """Tonight's windows, searching from ``start`` (an aware datetime)."""
    dark = dark_interval(site, night, start)
    end_at = resolve_end_at(night.end_at, dark.start if dark and dark.start else start, site.zone)
    if dark is None:
        return NightWindows(None, None, None, end_at)
    usable = Interval(dark.start, dark.end)
    up = None
    if target is not None and target.has_coordinates:
        up = target_interval(site, target, night.min_altitude, dark)
        usable = None if up is None else Interval(max(up.start, dark.start), _min(up.end, dark.end))
    if usable is not None and end_at is not None:
        if end_at <= usable.start:
            usable = None
        else:
            usable = Interval(usable.start, _min(usable.end, end_at))
    return NightWindows(dark, up, usable, end_at)


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def date_start(site: SiteSettings, day: date) -> datetime:
    """Local noon of ``day`` at the site (by its longitude), in UTC: where `indisync night --date` searches from."""
    noon_utc = datetime.combine(day, time(12, 0), tzinfo=timezone.utc)
    return noon_utc - timedelta(hours=site.longitude_east / 15.0)


def compare_sites(configured: SiteSettings, mount: tuple[float, float, float] | None) -> str | None:
    """A warning when the config's site and the mount's GEOGRAPHIC_COORD differ by more than 0.01°."""
    if mount is None:
        return None
    lat, lon, _elev = mount
    lon_east = ((lon + 180.0) % 360.0) - 180.0
    dlat = abs(lat - configured.latitude)
    dlon = abs(((lon_east - configured.longitude_east) + 180.0) % 360.0 - 180.0)
    if dlat > SITE_MISMATCH_DEG or dlon > SITE_MISMATCH_DEG:
        return (f"site: the config says latitude {configured.latitude:.4f}, longitude {configured.longitude_east:.4f} "
                f"but the mount's GEOGRAPHIC_COORD says {lat:.4f}, {lon_east:.4f}; the config's site is used "
                "(fix site: or the mount's location)")
    return None
