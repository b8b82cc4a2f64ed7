"""The ``scheduler:`` config section: the season's defaults and the scheduler's knobs. With this
section present the master runs the season (targets from ``{storage.directory}/indisync.db``)
instead of ``master.target`` and ``master.sequence``; without it, the night is as before.

    scheduler:
      min_altitude: 30          # deg, a target's default
      horizon: null             # [[azimuth, altitude], ...] deg, interpolated (linearly, wrapping at 360)
      narrowband: [Ha, H-alpha, OIII, SII]   # filter names judged as narrowband (moon, sun)
      moon:                     # Lorentzian avoidance (ACP, NINA): separation >= distance / (1 + ((age_days - 14) / width)^2)
        broadband: {distance: 120, width: 14}
        narrowband: {distance: 60, width: 7}
      sun_altitude: {broadband: -18, narrowband: -12}   # deg: the sun below this, per filter kind
      before_flip: false        # default of a target's "finish before the meridian flip"
      replan_min: 15            # minutes: re-plan at most this often (besides completions, constraints, rain)
      min_minutes: 30           # minutes a chosen target is kept, unless it completes or leaves its constraints
      when_ota_done: surplus    # surplus: an OTA whose plan is met keeps shooting, counted apart | idle
      batch_frames: 5           # the master's frames per filter line in one batch (refocus after_batch)
      weights: {priority: 1.0, need: 1.0, urgency: 1.0, moon: 0.5, meridian: 0.25}

Stdlib only: config.py assembles it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError

DEFAULT_NARROWBAND = ["Ha", "H-alpha", "Halpha", "OIII", "O3", "SII", "S2", "NII"]


@dataclass
class MoonRule:
    distance: float = 120.0  # degrees of separation required at full moon
    width: float = 14.0  # days: how fast the requirement falls off away from full moon

    def validate(self) -> None:
        if not 0 <= self.distance <= 180:
            raise ConfigValueError("distance", f"got {self.distance}; allowed: 0..180 degrees")
        if not math.isfinite(self.width) or self.width <= 0:
            raise ConfigValueError("width", f"got {self.width}; allowed: days > 0")


@dataclass
class MoonSettings:
    broadband: MoonRule = field(default_factory=MoonRule)
    narrowband: MoonRule = field(default_factory=lambda: MoonRule(distance=60.0, width=7.0))


@dataclass
class SunSettings:
    broadband: float = -18.0  # astronomical twilight
    narrowband: float = -12.0  # nautical twilight

    def validate(self) -> None:
        for key in ("broadband", "narrowband"):
            value = getattr(self, key)
            if not -90 <= value <= 0:
                raise ConfigValueError(key, f"got {value}; allowed: -90..0 degrees")


@dataclass
class Weights:
    priority: float = 1.0
    need: float = 1.0
    urgency: float = 1.0
    moon: float = 0.5
    meridian: float = 0.25

    def validate(self) -> None:
        for key in ("priority", "need", "urgency", "moon", "meridian"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigValueError(key, f"got {value}; allowed: a number >= 0")


@dataclass
class SchedulerSettings:
    min_altitude: float = 30.0
    horizon: list[list[float]] | None = None
    narrowband: list[str] = field(default_factory=lambda: list(DEFAULT_NARROWBAND))
    moon: MoonSettings = field(default_factory=MoonSettings)
    sun_altitude: SunSettings = field(default_factory=SunSettings)
    before_flip: bool = False
    replan_min: float = 15.0
    min_minutes: float = 30.0
    when_ota_done: Literal["surplus", "idle"] = "surplus"
    batch_frames: int = 5
    weights: Weights = field(default_factory=Weights)

    def validate(self) -> None:
        if not 0 <= self.min_altitude < 90:
            raise ConfigValueError("min_altitude", f"got {self.min_altitude}; allowed: 0..90 degrees")
        if self.horizon is not None:
            check_horizon(self.horizon, "horizon")
        for key in ("replan_min", "min_minutes"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigValueError(key, f"got {value}; allowed: minutes >= 0")
        if self.batch_frames < 1:
            raise ConfigValueError("batch_frames", f"got {self.batch_frames}; allowed: an integer >= 1")

    def is_narrowband(self, filter_name: str | None) -> bool:
        return filter_name is not None and filter_name.lower() in {n.lower() for n in self.narrowband}


def check_horizon(points, key: str) -> list[tuple[float, float]]:
    """A horizon profile as (azimuth, altitude) pairs, checked; ConfigValueError naming ``key``."""
    out = []
    if not isinstance(points, (list, tuple)) or not points:
        raise ConfigValueError(key, "allowed: a list of [azimuth, altitude] pairs in degrees, at least one")
    for i, point in enumerate(points):
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise ConfigValueError(f"{key}[{i}]", f"got {point!r}; allowed: [azimuth, altitude] in degrees")
        az, alt = point
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (az, alt)):
            raise ConfigValueError(f"{key}[{i}]", f"got {point!r}; allowed: two finite numbers")
        if not 0 <= az <= 360 or not -90 <= alt <= 90:
            raise ConfigValueError(f"{key}[{i}]", f"got {point!r}; allowed: azimuth 0..360, altitude -90..90")
        out.append((float(az), float(alt)))
    return sorted(out)
