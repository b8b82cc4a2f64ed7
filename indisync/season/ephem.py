"""The night's sky on a time grid, for the scheduler: the sun's and the moon's altitude, where the
moon is, how lit and how old it is, and the local sidereal time; then any number of targets'
altitude and azimuth over that grid in one numpy expression.

astropy is used offline (``indisync.astro.site.use_offline_iers``) and once per body for the whole
grid (``get_body`` + one ``AltAz`` transform each): ~0.1 s for a night at a 5-minute step. Targets
are then pure numpy: their J2000 coordinates are precessed to the night's middle (IAU 1976
angles; one epoch per night, the drift within a night is under 1") and turned into altitude and
azimuth with the local mean sidereal time. Nutation, aberration and refraction are left out: they
move a target by under 0.02°, far below what a constraint can tell (astropy's own AltAz, without
pressure, agrees to ~0.01°; the season benchmark re-checks every frame with astropy).

The moon's position is geocentric (GCRS, aligned with ICRS): its separation from a target is
computed as seen from the Earth's centre (under 1° from a site's view: the moon's parallax);
its altitude is the site's (topocentric, astropy).

The moon's age (days since new moon, for the Lorentzian avoidance rule) is the difference of the
moon's and the sun's ecliptic longitudes over 360° of a mean synodic month; its illumination the
fraction lit from their elongation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

SYNODIC_MONTH_DAYS = 29.530589
OBLIQUITY_DEG = 23.4392911  # J2000 mean obliquity of the ecliptic
JD_UNIX_EPOCH = 2440587.5
JD_J2000 = 2451545.0
SEARCH_BEFORE_H = 14.0  # sky_for_night looks this far back for the sunset of a night under way
SEARCH_AFTER_H = 40.0  # and this far ahead for the next night's sunrise
SEARCH_STEP_S = 600.0


@dataclass
class NightSky:
    """The sky over a night on a regular grid of ``times`` (epoch seconds, step ``step_s``)."""

    times: np.ndarray
    sun_alt: np.ndarray  # degrees, topocentric
    moon_ra: np.ndarray  # degrees, geocentric (GCRS)
    moon_dec: np.ndarray
    moon_alt: np.ndarray  # degrees, topocentric
    moon_illum: np.ndarray  # 0 (new) .. 1 (full)
    moon_age_days: np.ndarray  # days since new moon, 0 .. 29.53
    lst_deg: np.ndarray  # local mean sidereal time, degrees
    lat: float
    lon: float  # east positive
    step_s: float
    epoch_jd: float  # the Julian date targets are precessed to (the grid's middle)
    night_date: str | None = None  # the night's local date at dusk (site.zone), ISO; None: not known
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # per target list (constraints)

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def __len__(self) -> int:
        return len(self.times)

    def index(self, t: float) -> int:
        """The grid sample at or before ``t`` (clipped to the grid)."""
        return int(min(max(math.floor((t - self.start) / self.step_s + 1e-9), 0), len(self.times) - 1))

    def index_after(self, t: float) -> int:
        """The grid sample at or after ``t`` (clipped to the grid)."""
        return int(min(max(math.ceil((t - self.start) / self.step_s - 1e-9), 0), len(self.times) - 1))

    def contains(self, t: float) -> bool:
        return self.start <= t <= self.end

    def at(self, t: float) -> dict:
        """The sky at ``t``, interpolated: sun and moon altitude, moon illumination, age and place."""
        def interp(values):
            return float(np.interp(t, self.times, values))

        return {"sun_alt": interp(self.sun_alt), "moon_alt": interp(self.moon_alt),
                "moon_illum": interp(self.moon_illum), "moon_age_days": interp(self.moon_age_days),
                "moon_ra": float(self.moon_ra[self.index(t)]), "moon_dec": float(self.moon_dec[self.index(t)])}

    def dark_span(self, sun_limit: float) -> tuple[float, float] | None:
        """(first, last) grid time with the sun below ``sun_limit``; None: never tonight."""
        below = np.nonzero(self.sun_alt < sun_limit)[0]
        if len(below) == 0:
            return None
        return float(self.times[below[0]]), float(self.times[below[-1]])


def julian_date(epoch_s):
    return np.asarray(epoch_s, dtype=float) / 86400.0 + JD_UNIX_EPOCH


def lmst_deg(epoch_s, lon_east: float) -> np.ndarray:
    """Local mean sidereal time in degrees (IAU 1982 GMST; UTC for UT1: under 0.01°)."""
    jd = julian_date(epoch_s)
    d = jd - JD_J2000
    t = d / 36525.0
    gmst = 280.46061837 + 360.98564736629 * d + 0.000387933 * t * t - t * t * t / 38710000.0
    return np.mod(gmst + lon_east, 360.0)


def precess(ra_deg, dec_deg, jd: float) -> tuple[np.ndarray, np.ndarray]:
    """J2000 -> mean equator and equinox of ``jd`` (IAU 1976 precession angles), degrees."""
    t = (jd - JD_J2000) / 36525.0
    arcsec = math.pi / 180.0 / 3600.0
    zeta = (2306.2181 * t + 0.30188 * t * t + 0.017998 * t ** 3) * arcsec
    z = (2306.2181 * t + 1.09468 * t * t + 0.018203 * t ** 3) * arcsec
    theta = (2004.3109 * t - 0.42665 * t * t - 0.041833 * t ** 3) * arcsec
    ra0 = np.radians(np.asarray(ra_deg, dtype=float))
    dec0 = np.radians(np.asarray(dec_deg, dtype=float))
    a = np.cos(dec0) * np.sin(ra0 + zeta)
    b = math.cos(theta) * np.cos(dec0) * np.cos(ra0 + zeta) - math.sin(theta) * np.sin(dec0)
    c = math.sin(theta) * np.cos(dec0) * np.cos(ra0 + zeta) + math.cos(theta) * np.sin(dec0)
    ra = np.mod(np.degrees(np.arctan2(a, b) + z), 360.0)
    dec = np.degrees(np.arcsin(np.clip(c, -1.0, 1.0)))
    return ra, dec


def hour_angle(ra_deg, sky: NightSky) -> np.ndarray:
    """Hour angle [N, T] in degrees, -180 .. 180 (negative: east of the meridian, rising)."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.zeros_like(ra)
    ra_date, _ = precess(ra, dec, sky.epoch_jd)
    return _wrap180(sky.lst_deg[None, :] - ra_date[:, None])


def alt_az(ra_deg, dec_deg, sky: NightSky) -> tuple[np.ndarray, np.ndarray]:
    """Altitude and azimuth [N, T] (degrees; azimuth from north through east) of J2000 targets."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    ra_date, dec_date = precess(ra, dec, sky.epoch_jd)
    ha = np.radians(sky.lst_deg[None, :] - ra_date[:, None])
    d = np.radians(dec_date)[:, None]
    lat = math.radians(sky.lat)
    sin_alt = math.sin(lat) * np.sin(d) + math.cos(lat) * np.cos(d) * np.cos(ha)
    alt = np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))
    az = np.degrees(np.arctan2(-np.cos(d) * np.sin(ha),
                               np.sin(d) * math.cos(lat) - np.cos(d) * np.cos(ha) * math.sin(lat)))
    return alt, np.mod(az, 360.0)


def _wrap180(deg):
    return np.mod(np.asarray(deg) + 180.0, 360.0) - 180.0


def ecliptic_longitude(ra_deg, dec_deg) -> np.ndarray:
    eps = math.radians(OBLIQUITY_DEG)
    ra = np.radians(ra_deg)
    dec = np.radians(dec_deg)
    lam = np.arctan2(np.sin(ra) * math.cos(eps) + np.tan(dec) * math.sin(eps), np.cos(ra))
    return np.mod(np.degrees(lam), 360.0)


def separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance in degrees (haversine: exact for small angles too); broadcasts."""
    ra1, dec1, ra2, dec2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _location(site):
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(lon=site.longitude_east * u.deg, lat=site.latitude * u.deg,
                                       height=site.elevation * u.m)


def _sun_altitudes(site, epochs: np.ndarray) -> np.ndarray:
    import astropy.units as u
    from astropy.coordinates import AltAz, get_body
    from astropy.time import Time

    from ..astro.site import use_offline_iers

    use_offline_iers()
    times = Time(epochs, format="unix")
    return get_body("sun", times).transform_to(AltAz(obstime=times, location=_location(site))).alt.to_value(u.deg)


def night_sky(site, start: float, end: float, step_s: float = 300.0) -> NightSky:
    """The sky from ``start`` to ``end`` (epoch seconds) every ``step_s`` (the last sample at or after
    ``end``). ``site``: a SiteSettings (latitude, longitude east, elevation, zone)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, get_body
    from astropy.time import Time

    from ..astro.site import use_offline_iers

    if not step_s > 0:
        raise ValueError(f"step_s: got {step_s}; allowed: seconds > 0")
    if not end >= start:
        raise ValueError(f"end {end} is before start {start}")
    use_offline_iers()
    n = int(math.ceil((end - start) / step_s - 1e-9)) + 1
    epochs = start + step_s * np.arange(n, dtype=float)
    times = Time(epochs, format="unix")
    frame = AltAz(obstime=times, location=_location(site))
    sun = get_body("sun", times)
    moon = get_body("moon", times)
    sun_alt = sun.transform_to(frame).alt.to_value(u.deg)
    moon_alt = moon.transform_to(frame).alt.to_value(u.deg)
    sun_ra, sun_dec = sun.ra.to_value(u.deg), sun.dec.to_value(u.deg)
    moon_ra, moon_dec = moon.ra.to_value(u.deg), moon.dec.to_value(u.deg)
    elongation = separation_deg(sun_ra, sun_dec, moon_ra, moon_dec)
    illum = (1.0 - np.cos(np.radians(elongation))) / 2.0
    age = np.mod(ecliptic_longitude(moon_ra, moon_dec) - ecliptic_longitude(sun_ra, sun_dec), 360.0) \
        / 360.0 * SYNODIC_MONTH_DAYS
    sky = NightSky(times=epochs, sun_alt=np.asarray(sun_alt, dtype=float), moon_ra=np.asarray(moon_ra, dtype=float),
                   moon_dec=np.asarray(moon_dec, dtype=float), moon_alt=np.asarray(moon_alt, dtype=float),
                   moon_illum=illum, moon_age_days=age, lst_deg=lmst_deg(epochs, site.longitude_east),
                   lat=float(site.latitude), lon=float(site.longitude_east), step_s=float(step_s),
                   epoch_jd=float(julian_date((start + end) / 2.0)))
    sky.night_date = _night_date(sky, site)
    return sky


def _night_date(sky: NightSky, site) -> str:
    """The local date (site.zone) at dusk: the first sample with the sun below the horizon."""
    below = np.nonzero(sky.sun_alt < 0.0)[0]
    t = float(sky.times[below[0]]) if len(below) else sky.start
    return datetime.fromtimestamp(t, timezone.utc).astimezone(site.zone).date().isoformat()


def _crossing(epochs, values, i: int) -> float:
    """The time between samples i-1 and i where ``values`` crosses 0 (linear)."""
    a, b = values[i - 1], values[i]
    frac = 0.0 if b == a else (0.0 - a) / (b - a)
    return float(epochs[i - 1] + frac * (epochs[i] - epochs[i - 1]))


def night_bounds(site, when: float) -> tuple[float, float]:
    """(sunset, sunrise) of the night containing ``when`` (the sun below the horizon), or of the next
    night when ``when`` is in daylight. No sunset or no sunrise in the search (polar day or night):
    ``when`` .. ``when`` + 24 h."""
    epochs = np.arange(when - SEARCH_BEFORE_H * 3600.0, when + SEARCH_AFTER_H * 3600.0 + SEARCH_STEP_S,
                       SEARCH_STEP_S)
    alt = _sun_altitudes(site, epochs)
    up = alt >= 0.0
    after = np.nonzero(epochs > when)[0]
    if np.interp(when, epochs, alt) < 0.0:  # night under way: back to its sunset
        before = np.nonzero(up & (epochs <= when))[0]
        if len(before) == 0:
            return when, when + 86400.0
        start = _crossing(epochs, alt, int(before[-1]) + 1)
        first = int(after[0]) if len(after) else len(epochs)
    else:  # daylight: the next sunset
        dark = np.nonzero(~up & (epochs > when))[0]
        if len(dark) == 0:
            return when, when + 86400.0
        first = int(dark[0])
        start = _crossing(epochs, alt, first)
    rise = np.nonzero(up[first:])[0]
    if len(rise) == 0:
        return when, when + 86400.0
    return start, _crossing(epochs, alt, first + int(rise[0]))


def sky_for_night(site, when: float, step_s: float = 300.0) -> NightSky:
    """The sky from sunset to sunrise of the night that contains ``when``, or of the next night."""
    start, end = night_bounds(site, when)
    return night_sky(site, start, end, step_s)
