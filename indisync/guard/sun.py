"""The sun's altitude now, for the guard: astropy, offline (the IERS tables bundled with astropy,
never downloaded, whatever their age), as the night computes it, but without importing the night's
package (a defect there must not disable the guard). Imported by the guard's service only: loading
astropy takes seconds on a Pi, and the decision itself is pure."""

from __future__ import annotations

from datetime import datetime, timezone


def use_offline_iers() -> None:
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None


def sun_altitude_deg(latitude: float, longitude_east: float, elevation: float, when: datetime | None = None) -> float:
    """The sun's apparent altitude in degrees at the site (east-positive longitude) at ``when`` (now)."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    use_offline_iers()
    lon = ((longitude_east + 180.0) % 360.0) - 180.0
    location = EarthLocation.from_geodetic(lon=lon * u.deg, lat=latitude * u.deg, height=elevation * u.m)
    t = Time(when or datetime.now(timezone.utc))
    return float(get_body("sun", t).transform_to(AltAz(obstime=t, location=location)).alt.to_value(u.deg))
