"""J2000 <-> JNow (the mount's EQUATORIAL_EOD_COORD) and angular separations, with astropy offline.

Mount drivers speak "epoch of date" (JNow) while catalogues, plate solvers and the CCD simulator's
``gsc`` speak J2000; between them lie precession, nutation and aberration (about 0.35 deg in 2026). JNow
here is astropy's TETE frame (true equator, true equinox of date, geocentric apparent place), the
frame INDI's libnova conversion computes. Not CIRS: its RA counts from the CIO, not the equinox,
and differs from a mount's RA by the equation of the origins (a third of a degree today).

astropy is imported inside the functions only: the CLI's start, ``indisync status`` and the
protocol layer must not pay for it (see the footprint rule in the README).
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone

_IERS_LOCK = threading.Lock()
_IERS_DONE = False


def use_offline_iers() -> None:
    """Make astropy use its bundled IERS tables, never the network.

    Both settings are needed: with only ``auto_download = False``, astropy refuses any time after
    the bundled table's maximum age (today's date, on any installed release) with an error.
    """
    global _IERS_DONE
    with _IERS_LOCK:
        if _IERS_DONE:
            return
        from astropy.utils import iers

        iers.conf.auto_download = False
        iers.conf.auto_max_age = None
        _IERS_DONE = True


def _time(when: datetime | None):
    from astropy.time import Time

    when = when or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: give a timezone-aware UTC time")
    return Time(when.astimezone(timezone.utc))


def _check(ra_deg: float, dec_deg: float) -> None:
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg)) or not -90.0 <= dec_deg <= 90.0:
        raise ValueError(f"not a sky position: RA {ra_deg} deg, Dec {dec_deg} deg (Dec must be -90..90)")


def j2000_to_jnow(ra_deg: float, dec_deg: float, when: datetime | None = None) -> tuple[float, float]:
    """J2000 (ICRS) RA/Dec in degrees -> apparent RA/Dec of date in degrees, RA in 0..360."""
    _check(ra_deg, dec_deg)
    use_offline_iers()
    import astropy.units as u
    from astropy.coordinates import ICRS, TETE, SkyCoord

    t = _time(when)
    jnow = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame=ICRS()).transform_to(TETE(obstime=t))
    return float(jnow.ra.wrap_at(360 * u.deg).deg), float(jnow.dec.deg)


def jnow_to_j2000(ra_deg: float, dec_deg: float, when: datetime | None = None) -> tuple[float, float]:
    """Apparent RA/Dec of date (the mount's JNow) in degrees -> J2000 (ICRS) in degrees, RA in 0..360."""
    _check(ra_deg, dec_deg)
    use_offline_iers()
    import astropy.units as u
    from astropy.coordinates import ICRS, TETE, SkyCoord

    t = _time(when)
    j2000 = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame=TETE(obstime=t)).transform_to(ICRS())
    return float(j2000.ra.wrap_at(360 * u.deg).deg), float(j2000.dec.deg)


def separation_arcsec(ra1_deg: float, dec1_deg: float, ra2_deg: float, dec2_deg: float) -> float:
    """Great-circle distance between two positions, in arcseconds (Vincenty's formula: exact near 0
    and 180 deg, where the cosine formula loses arcseconds). Plain maths: no astropy needed."""
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1_deg, dec1_deg, ra2_deg, dec2_deg))
    dra = ra2 - ra1
    num = math.hypot(math.cos(dec2) * math.sin(dra),
                     math.cos(dec1) * math.sin(dec2) - math.sin(dec1) * math.cos(dec2) * math.cos(dra))
    den = math.sin(dec1) * math.sin(dec2) + math.cos(dec1) * math.cos(dec2) * math.cos(dra)
    return math.degrees(math.atan2(num, den)) * 3600.0
