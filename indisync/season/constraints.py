"""When a target may be imaged, per filter kind: pure numpy over a night's grid (ephem.NightSky).

Every constraint is a **margin** in degrees over targets × grid samples, > 0 where it holds:

- altitude: altitude - max(min_altitude, horizon profile at the azimuth) (the profile interpolated
  linearly in azimuth, wrapping at 360);
- moon (per kind): separation - the Lorentzian limit ``distance / (1 + ((age - 14.75) / width)^2)``
  (ACP, NINA: ``distance`` at full moon, falling off with the moon's age in days); a moon below
  the horizon imposes nothing;
- sun (per kind): the kind's sun altitude limit - the sun's altitude;
- before_flip: east of the meridian (hour angle < 0), when the target asks for it;
- date range: the night's local date at dusk (``NightSky.night_date``) within start/end date.

A frame from ``t`` to ``t + exposure`` is allowed when **every grid sample bracketing it** (the
sample at or before ``t`` through the sample at or after ``t + exposure``) holds every constraint
of its kind. Each margin is monotonic within one grid step (5 min) except at a culmination, where
it only improves, so this never lets a frame through against a constraint; it may hold a window
back by up to one step at each end. ``why`` names the first constraint that fails, in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from .ephem import NightSky, alt_az, hour_angle, separation_deg
from .model import Target

BROADBAND, NARROWBAND = "broadband", "narrowband"
KINDS = (BROADBAND, NARROWBAND)
HALF_LUNATION_DAYS = 14.75  # the Lorentzian's centre: full moon, days after new moon
FAR = 999.0  # the margin of a constraint that does not apply
MOON_DOWN_DEG = 0.0  # the moon below this altitude imposes no separation
TABLES_KEPT = 4  # SkyTables cached per night (target lists)


def kind_of(filter_name: str | None, settings) -> str:
    return NARROWBAND if settings.is_narrowband(filter_name) else BROADBAND


def horizon_altitude(az_deg, profile) -> np.ndarray:
    """The horizon profile's altitude at ``az_deg`` (linear between its points, wrapping at 360)."""
    az = np.asarray(az_deg, dtype=float)
    if not profile:
        return np.full(az.shape, -90.0)
    pts = sorted((float(a) % 360.0, float(h)) for a, h in profile)
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    if len(xs) == 1:
        return np.full(az.shape, ys[0])
    return np.interp(np.mod(az, 360.0), xs, ys, period=360.0)


def moon_limit_deg(age_days, rule) -> np.ndarray:
    """The Lorentzian: the separation a target needs from the moon at ``age_days`` (``rule``: a MoonRule)."""
    age = np.asarray(age_days, dtype=float)
    return rule.distance / (1.0 + ((age - HALF_LUNATION_DAYS) / rule.width) ** 2)


@dataclass(frozen=True)
class Limits:
    """A target's constraints with the scheduler: section's defaults filled in."""

    min_altitude: float
    horizon: tuple[tuple[float, float], ...] | None
    moon: dict  # kind -> (distance, width)
    sun: dict  # kind -> sun altitude limit
    before_flip: bool
    start_date: str | None
    end_date: str | None


def limits_for(target: Target, settings) -> Limits:
    c = target.constraints
    bb, nb = settings.moon.broadband, settings.moon.narrowband
    bb_distance = c.moon_separation if c.moon_separation is not None else bb.distance
    bb_width = c.moon_width if c.moon_width is not None else bb.width
    # A target's own moon separation/width is its broadband rule; narrowband keeps the section's rule,
    # never stricter than the target's broadband one.
    nb_distance, nb_width = min(nb.distance, bb_distance), min(nb.width, bb_width)
    horizon = c.horizon if c.horizon is not None else (
        tuple(tuple(p) for p in settings.horizon) if settings.horizon else None)
    return Limits(
        min_altitude=c.min_altitude if c.min_altitude is not None else settings.min_altitude,
        horizon=horizon,
        moon={BROADBAND: (bb_distance, bb_width), NARROWBAND: (nb_distance, nb_width)},
        sun={BROADBAND: settings.sun_altitude.broadband, NARROWBAND: settings.sun_altitude.narrowband},
        before_flip=c.before_flip if c.before_flip is not None else settings.before_flip,
        start_date=target.start_date, end_date=target.end_date)


def date_problem(limits: Limits, night_date: str | None) -> str | None:
    if night_date is None:
        return None
    night = date.fromisoformat(night_date)
    if limits.start_date and night < date.fromisoformat(str(limits.start_date)):
        return f"before its start date {limits.start_date}"
    if limits.end_date and night > date.fromisoformat(str(limits.end_date)):
        return f"after its end date {limits.end_date}"
    return None


def flip_margin(ha_deg) -> np.ndarray:
    """> 0 east of the meridian (hour angle -180..0), < 0 west; 0 at both the meridian and the
    anti-meridian, so it is continuous all round."""
    ha = np.asarray(ha_deg, dtype=float)
    return np.where(ha < 0, np.minimum(-ha, 180.0 + ha), -np.minimum(ha, 180.0 - ha))


class SkyTable:
    """Every constraint's margin for a list of targets over one night's grid, built once."""

    def __init__(self, sky: NightSky, targets: list[Target], settings):
        self.sky = sky
        self.targets = list(targets)  # as first built: only their place, constraints and dates are used
        self.names = [t.name for t in self.targets]
        self.index = {name: i for i, name in enumerate(self.names)}
        n = len(self.targets)
        self.limits = [limits_for(t, settings) for t in self.targets]
        ra = np.array([t.ra for t in self.targets], dtype=float).reshape(n)
        dec = np.array([t.dec for t in self.targets], dtype=float).reshape(n)
        self.alt, self.az = alt_az(ra, dec, sky) if n else (np.zeros((0, len(sky))), np.zeros((0, len(sky))))
        self.ha = hour_angle(ra, sky) if n else np.zeros((0, len(sky)))
        min_alt = np.array([lim.min_altitude for lim in self.limits], dtype=float)
        floor = np.repeat(min_alt[:, None], len(sky), axis=1)
        for i, lim in enumerate(self.limits):
            if lim.horizon:
                floor[i] = np.maximum(floor[i], horizon_altitude(self.az[i], lim.horizon))
        self.floor = floor
        self.alt_margin = self.alt - floor
        self.sep = separation_deg(ra[:, None], dec[:, None], sky.moon_ra[None, :], sky.moon_dec[None, :])
        moon_up = sky.moon_alt >= MOON_DOWN_DEG
        self.moon_limit, self.moon_margin, self.sun_margin, self.margin = {}, {}, {}, {}
        flip = np.array([lim.before_flip for lim in self.limits], dtype=bool)
        self.flip_margin = np.where(flip[:, None], flip_margin(self.ha), FAR)
        self.date_reason = [date_problem(lim, sky.night_date) for lim in self.limits]
        date_margin = np.array([-FAR if r else FAR for r in self.date_reason], dtype=float)
        for kind in KINDS:
            dist = np.array([lim.moon[kind][0] for lim in self.limits], dtype=float)
            width = np.array([lim.moon[kind][1] for lim in self.limits], dtype=float)
            limit = dist[:, None] / (1.0 + ((sky.moon_age_days[None, :] - HALF_LUNATION_DAYS) / width[:, None]) ** 2)
            self.moon_limit[kind] = limit
            self.moon_margin[kind] = np.where(moon_up[None, :], self.sep - limit, FAR)
            self.sun_margin[kind] = np.array([lim.sun[kind] for lim in self.limits], dtype=float)[:, None] \
                - sky.sun_alt[None, :]
            m = np.minimum(self.alt_margin, self.moon_margin[kind])
            m = np.minimum(m, self.sun_margin[kind])
            m = np.minimum(m, self.flip_margin)
            self.margin[kind] = np.minimum(m, date_margin[:, None])
        # run_end[kind][i, j]: the first sample >= j where the constraint fails (T: holds to the end)
        self.run_end = {kind: _run_end(self.margin[kind] > 0) for kind in KINDS}

    # -- windows -------------------------------------------------------------------------------
    def bracket(self, t: float, exposure) -> tuple[int, np.ndarray]:
        """(the sample at or before t, the samples at or after t + exposure) — exposure may be an array."""
        sky = self.sky
        j0 = sky.index(t) if t >= sky.start else -1
        end = t + np.asarray(exposure, dtype=float)
        j1 = np.ceil((end - sky.start) / sky.step_s - 1e-9).astype(int)
        return j0, j1

    def window_ok(self, rows, t: float, exposure, kind: str) -> np.ndarray:
        """For targets ``rows`` (indices), whether [t, t + exposure] holds every constraint of ``kind``."""
        rows = np.asarray(rows, dtype=int)
        exposure = np.broadcast_to(np.asarray(exposure, dtype=float), rows.shape)
        j0, j1 = self.bracket(t, exposure)
        if j0 < 0:
            return np.zeros(rows.shape, dtype=bool)
        return (self.run_end[kind][rows, j0] > j1) & (j1 < len(self.sky))

    def until(self, row: int, t: float, kind: str) -> float | None:
        """The end of the run of samples holding ``kind``'s constraints that contains ``t`` (None: fails at t)."""
        j0 = self.sky.index(t)
        if t < self.sky.start or self.margin[kind][row, j0] <= 0:
            return None
        end = int(self.run_end[kind][row, j0])
        # the last sample that holds is end - 1: a frame may end there
        return float(self.sky.times[end - 1])

    def why(self, row: int, t: float, exposure: float, kind: str) -> str | None:
        """The first constraint of ``kind`` that fails for a frame of ``exposure`` from ``t``, in words."""
        sky = self.sky
        lim = self.limits[row]
        if self.date_reason[row]:
            return self.date_reason[row]
        if t < sky.start or t + exposure > sky.end:
            return "outside tonight's dark sky (sunset to sunrise)"
        j0, j1 = self.bracket(t, exposure)
        j1 = int(min(j1, len(sky) - 1))
        for j in range(j0, j1 + 1):
            if self.margin[kind][row, j] > 0:
                continue
            if self.sun_margin[kind][row, j] <= 0:
                return f"sun {sky.sun_alt[j]:.1f}° > {lim.sun[kind]:g}° ({kind})"
            if self.alt_margin[row, j] <= 0:
                alt, floor = self.alt[row, j], self.floor[row, j]
                if floor > lim.min_altitude + 1e-9:
                    return f"altitude {alt:.1f}° < horizon {floor:.1f}° at azimuth {self.az[row, j]:.0f}°"
                return f"altitude {alt:.1f}° < {lim.min_altitude:g}°"
            if self.moon_margin[kind][row, j] <= 0:
                return (f"moon {self.sep[row, j]:.0f}° away < {self.moon_limit[kind][row, j]:.0f}° "
                        f"(Lorentzian, {kind})")
            if self.flip_margin[row, j] <= 0:
                return "past the meridian (before_flip)"
        return None


def _run_end(ok: np.ndarray) -> np.ndarray:
    """[N, T] ints: for each sample, the first sample at or after it where ``ok`` is False (T if none)."""
    n, t = ok.shape
    out = np.empty((n, t), dtype=np.int32)
    nxt = np.full(n, t, dtype=np.int32)
    for j in range(t - 1, -1, -1):
        nxt = np.where(ok[:, j], nxt, j)
        out[:, j] = nxt
    return out


def _settings_key(settings) -> tuple:
    return (settings.min_altitude, repr(settings.horizon), tuple(n.lower() for n in settings.narrowband),
            settings.moon.broadband.distance, settings.moon.broadband.width, settings.moon.narrowband.distance,
            settings.moon.narrowband.width, settings.sun_altitude.broadband, settings.sun_altitude.narrowband,
            settings.before_flip)


def _target_key(t: Target) -> tuple:
    """What a SkyTable row depends on (not the plan, priority or enabled: the scheduler reads those)."""
    return (t.name, t.ra, t.dec, t.constraints, t.start_date, t.end_date)


def table_for(sky: NightSky, targets: list[Target], settings) -> SkyTable:
    """The SkyTable of these targets tonight, cached on the sky (rebuilt when a target's place or
    constraints or the settings change)."""
    key = (_settings_key(settings), tuple(_target_key(t) for t in targets))
    tables = sky.cache.setdefault("tables", {})
    table = tables.get(key)
    if table is None:
        if len(tables) >= TABLES_KEPT:
            tables.pop(next(iter(tables)))
        table = tables[key] = SkyTable(sky, targets, settings)
    return table
