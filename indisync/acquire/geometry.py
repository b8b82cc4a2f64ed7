"""Small-field sky geometry on the tangent plane (gnomonic projection): offsets east/north between
two positions and moving a position by such an offset. Plain math, no astropy: centring and
co-alignment deal in arcminutes, where this is exact to far better than an arcsecond."""

from __future__ import annotations

import math


def tangent_offset(ra0: float, dec0: float, ra: float, dec: float) -> tuple[float, float]:
    """(east, north) in arcsec of (ra, dec) seen on the tangent plane at (ra0, dec0); degrees in."""
    a0, d0, a, d = map(math.radians, (ra0, dec0, ra, dec))
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    if cos_c <= 0:
        raise ValueError(f"({ra}, {dec}) is more than 90 degrees from ({ra0}, {dec0})")
    xi = math.cos(d) * math.sin(a - a0) / cos_c
    eta = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c
    to_arcsec = math.degrees(1.0) * 3600.0
    return xi * to_arcsec, eta * to_arcsec


def apply_offset(ra0: float, dec0: float, east_arcsec: float, north_arcsec: float) -> tuple[float, float]:
    """The position (degrees) east/north arcsec from (ra0, dec0) on its tangent plane."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    xi, eta = math.radians(east_arcsec / 3600.0), math.radians(north_arcsec / 3600.0)
    denom = math.cos(d0) - eta * math.sin(d0)
    a = a0 + math.atan2(xi, denom)
    d = math.atan2(math.sin(d0) + eta * math.cos(d0), math.hypot(xi, denom))
    return math.degrees(a) % 360.0, math.degrees(d)


def wrap180(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


def parse_ra(text: str) -> float:
    """RA as degrees ('150.1') or hours 'h:m:s' / 'hh mm ss' ('10:00:24.5') -> degrees."""
    parts = text.replace(":", " ").replace("h", " ").replace("m", " ").replace("s", " ").split()
    try:
        if len(parts) == 1:
            value = float(parts[0])
        elif 2 <= len(parts) <= 3:
            h, m, s = (float(p) for p in parts + ["0"] * (3 - len(parts)))
            if h < 0 or not 0 <= m < 60 or not 0 <= s < 60:
                raise ValueError
            value = (h + m / 60 + s / 3600) * 15.0
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"RA {text!r} is neither degrees (150.1) nor hours h:m:s (10:00:24)") from None
    if not 0 <= value < 360:
        raise ValueError(f"RA {text!r} is outside 0..360 degrees (0..24 h)")
    return value


def parse_dec(text: str) -> float:
    """Dec as degrees ('-5.5') or 'd:m:s' ('-05:30:00') -> degrees."""
    stripped = text.strip()
    negative = stripped.startswith("-")
    parts = stripped.lstrip("+-").replace(":", " ").replace("d", " ").replace("'", " ").replace('"', " ").split()
    try:
        if len(parts) == 1:
            value = float(parts[0])
        elif 2 <= len(parts) <= 3:
            d, m, s = (float(p) for p in parts + ["0"] * (3 - len(parts)))
            if not 0 <= m < 60 or not 0 <= s < 60:
                raise ValueError
            value = d + m / 60 + s / 3600
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"Dec {text!r} is neither degrees (-5.5) nor d:m:s (-05:30:00)") from None
    value = -value if negative else value
    if not -90 <= value <= 90:
        raise ValueError(f"Dec {text!r} is outside -90..90 degrees")
    return value
