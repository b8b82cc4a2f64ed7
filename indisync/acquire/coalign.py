"""OTA co-alignment: how far each OTA's field sits from the master's, how it is turned, and how
much of it overlaps. Pure: solutions in, numbers out.

Overlap is the intersection of the two fields as a share of the smaller field's area, so a narrow
OTA whose field lies wholly inside a wide master's field counts as 100 %. Fields are rectangles on
the tangent plane at the master's centre; an image's "up" is rotation_deg east of north (astrometry.net's
orientation). A mirrored image (other parity) turns the other way: the rotation difference is then
reported but flagged (parity_matches false) because turning the camera will not make it zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .geometry import tangent_offset, wrap180


@dataclass(frozen=True)
class FieldSolution:
    ra: float  # J2000 degrees, field centre
    dec: float
    rotation_deg: float
    width_arcmin: float
    height_arcmin: float
    parity: int = 1

    @classmethod
    def from_solution(cls, s) -> "FieldSolution":
        return cls(s.ra, s.dec, s.rotation_deg, s.field_w_arcmin, s.field_h_arcmin, s.parity)


@dataclass(frozen=True)
class Coalignment:
    offset_arcmin: float  # centre to centre
    offset_east_arcmin: float
    offset_north_arcmin: float
    rotation_diff_deg: float  # this OTA's rotation minus the master's, -180..180
    overlap_pct: float
    parity_matches: bool
    low_overlap: bool  # below acquire.min_overlap_pct

    def as_dict(self) -> dict:
        return asdict(self)


def _corners(e0: float, n0: float, rotation_deg: float, w: float, h: float) -> list[tuple[float, float]]:
    t = math.radians(rotation_deg)
    up = (math.sin(t), math.cos(t))  # image +y in (east, north)
    right = (up[1], -up[0])  # perpendicular; which way does not matter for a rectangle
    return [(e0 + sx * w / 2 * right[0] + sy * h / 2 * up[0], n0 + sx * w / 2 * right[1] + sy * h / 2 * up[1])
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


def _area(poly: list[tuple[float, float]]) -> float:
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1]))) / 2.0


def _clip(subject: list[tuple[float, float]], clip: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: ``subject`` clipped by the convex polygon ``clip``."""
    orientation = 1.0 if sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(clip, clip[1:] + clip[:1])) > 0 else -1.0
    out = subject
    for (ax, ay), (bx, by) in zip(clip, clip[1:] + clip[:1]):
        if not out:
            break

        def inside(p):
            return orientation * ((bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)) >= 0

        def cross(p, q):
            dx, dy = q[0] - p[0], q[1] - p[1]
            ex, ey = bx - ax, by - ay
            denom = ex * dy - ey * dx
            t = (ex * (ay - p[1]) - ey * (ax - p[0])) / denom
            return p[0] + t * dx, p[1] + t * dy

        src, out = out, []
        for i, cur in enumerate(src):
            prev = src[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
    return out


def coalignment(master: FieldSolution, ota: FieldSolution, min_overlap_pct: float = 80.0) -> Coalignment:
    try:
        east, north = (v / 60.0 for v in tangent_offset(master.ra, master.dec, ota.ra, ota.dec))
    except ValueError:  # more than 90 degrees apart: no overlap at all
        return Coalignment(math.inf, math.nan, math.nan, wrap180(ota.rotation_deg - master.rotation_deg),
                           0.0, master.parity == ota.parity, True)
    a = _corners(0.0, 0.0, master.rotation_deg, master.width_arcmin, master.height_arcmin)
    b = _corners(east, north, ota.rotation_deg, ota.width_arcmin, ota.height_arcmin)
    inter = _clip(b, a)
    smaller = min(_area(a), _area(b))
    overlap = 100.0 * _area(inter) / smaller if len(inter) >= 3 and smaller > 0 else 0.0
    overlap = min(overlap, 100.0)
    return Coalignment(
        offset_arcmin=math.hypot(east, north), offset_east_arcmin=east, offset_north_arcmin=north,
        rotation_diff_deg=wrap180(ota.rotation_deg - master.rotation_deg), overlap_pct=overlap,
        parity_matches=master.parity == ota.parity, low_overlap=overlap < min_overlap_pct,
    )


def coalign_all(master: FieldSolution, otas: dict[str, FieldSolution],
                min_overlap_pct: float = 80.0) -> dict[str, Coalignment]:
    """Each OTA (by node name) against the master's field."""
    return {name: coalignment(master, field, min_overlap_pct) for name, field in otas.items()}


# ---- as published: the master's state ``coalign`` field, its events and its log lines ------------
def coalign_entry(c: Coalignment) -> dict:
    """One OTA's co-alignment as the master publishes it (rounded; never inf or NaN on the wire)."""
    if not all(math.isfinite(v) for v in (c.offset_arcmin, c.offset_east_arcmin, c.offset_north_arcmin)):
        return failed_entry("its field is more than 90 degrees from the master's: is it on this mount?")
    return {"status": "ok", "offset_arcmin": round(c.offset_arcmin, 3),
            "offset_east_arcmin": round(c.offset_east_arcmin, 3),
            "offset_north_arcmin": round(c.offset_north_arcmin, 3),
            "rotation_diff_deg": round(c.rotation_diff_deg, 3), "overlap_pct": round(c.overlap_pct, 1),
            "parity_matches": bool(c.parity_matches), "low_overlap": bool(c.low_overlap), "reason": None}


def failed_entry(reason: str) -> dict:
    """An OTA whose co-alignment is unknown (its solve failed or never answered), and why."""
    return {"status": "failed", "offset_arcmin": None, "offset_east_arcmin": None, "offset_north_arcmin": None,
            "rotation_diff_deg": None, "overlap_pct": None, "parity_matches": None, "low_overlap": None,
            "reason": str(reason)[:500]}


def describe_entry(name: str, entry: dict) -> str:
    """'slave1: 0.21' from the master's centre (E +0.05', N +0.20'), rotated +3.02°, overlap 97.1 %'."""
    if entry.get("status") != "ok":
        return f"{name}: not co-aligned: {entry.get('reason') or 'no reason given'}"
    text = (f"{name}: {entry['offset_arcmin']:.2f}' from the master's centre (E {entry['offset_east_arcmin']:+.2f}', "
            f"N {entry['offset_north_arcmin']:+.2f}'), rotated {entry['rotation_diff_deg']:+.2f}°, "
            f"overlap {entry['overlap_pct']:.1f} %")
    if not entry.get("parity_matches", True):
        text += " (mirrored: the other parity)"
    if entry.get("low_overlap"):
        text += " LOW"
    return text


def low_overlap_warning(name: str, entry: dict, min_overlap_pct: float) -> str | None:
    """The warning the master raises for an OTA whose field overlaps the master's too little."""
    if entry.get("status") != "ok" or not entry.get("low_overlap"):
        return None
    return (f"co-alignment: {name}'s field overlaps the master's only {entry['overlap_pct']:.1f} % "
            f"(acquire.min_overlap_pct {min_overlap_pct:g}); it sits {entry['offset_east_arcmin']:+.2f}' east, "
            f"{entry['offset_north_arcmin']:+.2f}' north of the master's centre: adjust its guide rings/mount")
