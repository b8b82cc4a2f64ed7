"""Where and when the twilight sky is flat enough for flats.

- ``flat_spot``: the point of the sky opposite the sun's azimuth at ``flats.altitude`` (75° by
  default): the most uniform patch of a twilight sky (Chromey & Hasselbacher 1996). J2000 RA/Dec for
  the mount's slew (which converts to JNow itself).
- ``flat_windows``: the evening interval in which the sun sets from ``sun_high`` to ``sun_low`` (dusk)
  and the morning one in which it rises from ``sun_low`` to ``sun_high`` (dawn), as epoch seconds.

astropy is imported inside the functions (indisync.astro.site's helpers, offline IERS); sun
altitudes are sampled every ``STEP_S`` and the crossings interpolated linearly (seconds of error).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..astro.site import _location, _times, sun_altitudes, use_offline_iers
from ..night.settings import SiteSettings

STEP_S = 300.0  # linear interpolation between samples errs by well under a second
BEFORE_H = 14.0  # the search starts this long before `when` (a dusk under way is found whole)
SPAN_H = 50.0  # ... and covers this long: the evening and the morning after, from any time of day


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: give a timezone-aware time")
    return when.astimezone(timezone.utc)


def sun_azimuth(site: SiteSettings, when: datetime) -> float:
    """The sun's azimuth (deg, north 0, east 90) at ``when``."""
    import astropy.units as u
    from astropy.coordinates import AltAz, get_body
    from astropy.time import Time

    use_offline_iers()
    t = Time(_aware(when))
    sun = get_body("sun", t).transform_to(AltAz(obstime=t, location=_location(site)))
    return float(sun.az.to_value(u.deg)) % 360.0


def flat_spot(site: SiteSettings, when: datetime, altitude: float = 75.0) -> tuple[float, float]:
    """J2000 RA, Dec (deg) of the point at ``altitude`` on the anti-solar azimuth (sun azimuth + 180)."""
    import astropy.units as u
    from astropy.coordinates import ICRS, AltAz, SkyCoord
    from astropy.time import Time

    use_offline_iers()
    t = Time(_aware(when))
    az = (sun_azimuth(site, when) + 180.0) % 360.0
    frame = AltAz(obstime=t, location=_location(site))
    spot = SkyCoord(alt=float(altitude) * u.deg, az=az * u.deg, frame=frame).transform_to(ICRS())
    return float(spot.ra.to_value(u.deg)) % 360.0, float(spot.dec.to_value(u.deg))


def altaz_of(site: SiteSettings, ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """Altitude, azimuth (deg) of a J2000 position at ``when`` (checks and views)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    use_offline_iers()
    t = Time(_aware(when))
    there = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs").transform_to(
        AltAz(obstime=t, location=_location(site)))
    return float(there.alt.to_value(u.deg)), float(there.az.to_value(u.deg)) % 360.0


@dataclass
class FlatWindows:
    dusk: tuple[float, float] | None  # epoch s (start, end): the sun from sun_high down to sun_low
    dawn: tuple[float, float] | None  # epoch s (start, end): the sun from sun_low up to sun_high

    def to_dict(self) -> dict:
        def iso(t):
            return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

        return {name: None if span is None else {"from": iso(span[0]), "to": iso(span[1])}
                for name, span in (("dusk", self.dusk), ("dawn", self.dawn))}


def _crossings(t0: float, offsets, alts, level: float, falling: bool) -> list[float]:
    """Epoch times where ``alts`` crosses ``level`` going down (falling) or up, interpolated."""
    out = []
    for i in range(1, len(alts)):
        a, b = alts[i - 1], alts[i]
        if (falling and a >= level > b) or (not falling and a < level <= b):
            frac = 0.0 if b == a else (level - a) / (b - a)
            out.append(t0 + float(offsets[i - 1] + frac * (offsets[i] - offsets[i - 1])))
    return out


def _intervals(t0, offsets, alts, first_level, second_level, falling) -> list[tuple[float, float]]:
    """(crossing of first_level, next crossing of second_level), both in the direction, with no
    crossing back over first_level in between (a sun that dips and returns gives no interval)."""
    firsts = _crossings(t0, offsets, alts, first_level, falling)
    seconds = _crossings(t0, offsets, alts, second_level, falling)
    backs = _crossings(t0, offsets, alts, first_level, not falling)
    spans = []
    for start in firsts:
        end = next((t for t in seconds if t > start), None)
        if end is None:
            continue
        if any(start < t < end for t in backs):
            continue
        spans.append((start, end))
    return spans


def flat_windows(site: SiteSettings, when: datetime, sun_high: float, sun_low: float) -> FlatWindows:
    """Dusk: the evening interval (sun setting from ``sun_high`` to ``sun_low``) that ends after
    ``when`` (the current one when ``when`` is inside it). Dawn: the first morning interval (sun
    rising from ``sun_low`` to ``sun_high``) that ends after ``when`` — the morning after the dusk
    when asked in the afternoon, this morning's when asked in the night. None where the sun does not
    cross both altitudes within the search (polar summer or winter)."""
    high, low = max(sun_high, sun_low), min(sun_high, sun_low)
    when = _aware(when)
    start = when - timedelta(hours=BEFORE_H)
    times, offsets = _times(start, span_h=SPAN_H, step_s=STEP_S)
    alts = sun_altitudes(site, times)
    t0 = start.timestamp()
    now = when.timestamp()
    dusk = next((span for span in _intervals(t0, offsets, alts, high, low, True) if span[1] > now), None)
    dawn = next((span for span in _intervals(t0, offsets, alts, low, high, False) if span[1] > now), None)
    return FlatWindows(dusk, dawn)
