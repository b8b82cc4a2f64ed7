"""The ``flats:`` and ``darks:`` config sections (stdlib only: config.py assembles them).

    flats:
      sky: null               # dusk | dawn | both | null: sky flats in twilight (the master points the mount)
      panel: false            # true: panel flats at the end of the night, on nodes with indi.light_panel
      target_adu: 0.4         # the mean ADU aimed at, a fraction of full scale...
      tolerance: 0.1          # ...give or take this fraction: a frame outside the band is discarded
      count: 20               # frames kept per set (node, filter, binning, rotation, gain/offset)
      min_exposure: 0.1       # s
      max_exposure: 30.0      # s
      sun_altitude: [-2, -10] # deg: sky flats while the sun is between these (dusk: falling, dawn: rising)
      altitude: 75            # deg: the flat spot's altitude, at the anti-solar azimuth
      offset_arcmin: 10       # the mount moves this far between frames, so stars never stack
      offset_every_s: 10      # how often the mount is moved while the nodes take flats
      sky_halving_s: 180      # first guess of the sky's change (it halves in brightness every ~3 min)
      filter_order: null      # the dusk order (dawn: reversed); null: narrowband first, then B, G, R, L
      always: []              # sets taken at every flats run: [{filter: L, binning: 1}, ...]
      lookback_days: 30       # lights this recent make a set needed (the night logs read)
      cool_timeout: 300       # s: cooling before sky flats is started, waited for at most this long
      timeout: 3600           # s: one node's whole flats run at most
      panel_exposure: 2.0     # s: the exposure a panel's brightness is trained for
      panel_settle_s: 1.0     # s: after the panel is lit or its brightness changed, before the next frame

    darks:
      enabled: false
      when: [rain, end]       # parked for the weather with the dome closed; the end of the night
      exposures: []           # s: more exposures than the night's lights used
      count: 20               # frames per set
      bias: true              # a bias set per binning/gain/offset too
      max_age_days: 30        # a matching set younger than this is kept, not taken again
      cool_wait_s: 600        # s: the cooler must be within camera.cooling.tolerance, waited for this long
      timeout: 21600          # s: one node's whole dark run at most
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configtypes import ConfigValueError

SKY_MODES = ("dusk", "dawn", "both")
DARK_WHEN = ("rain", "end")


@dataclass
class FlatSetSpec:
    """One set of ``flats.always``: a filter (None: no wheel), binning, rotator angle, gain/offset."""

    filter: str | None = None
    binning: int = 1
    rotator_angle: float | None = None
    gain: float | None = None
    offset: float | None = None
    node: str | None = None  # None: every node

    def validate(self) -> None:
        if not 1 <= self.binning <= 8:
            raise ConfigValueError("binning", f"got {self.binning}; allowed: 1..8")


@dataclass
class FlatsSettings:
    sky: str | None = None
    panel: bool = False
    target_adu: float = 0.4
    tolerance: float = 0.1
    count: int = 20
    min_exposure: float = 0.1
    max_exposure: float = 30.0
    sun_altitude: list = field(default_factory=lambda: [-2.0, -10.0])
    altitude: float = 75.0
    offset_arcmin: float = 10.0
    offset_every_s: float = 10.0
    sky_halving_s: float = 180.0
    filter_order: list | None = None
    always: list[FlatSetSpec] = field(default_factory=list)
    lookback_days: float = 30.0
    cool_timeout: float = 300.0
    timeout: float = 3600.0
    panel_exposure: float = 2.0
    panel_settle_s: float = 1.0

    def validate(self) -> None:
        if self.sky is not None and self.sky not in SKY_MODES:
            raise ConfigValueError("sky", f"got {self.sky!r}; allowed: null, {', '.join(SKY_MODES)}")
        if not 0 < self.target_adu < 1:
            raise ConfigValueError("target_adu", f"got {self.target_adu}; allowed: 0 < target_adu < 1 (a fraction "
                                                 "of full scale)")
        if not 0 < self.tolerance < self.target_adu or self.target_adu + self.tolerance >= 1:
            raise ConfigValueError("tolerance", f"got {self.tolerance}; allowed: 0 < tolerance < target_adu and "
                                                "target_adu + tolerance < 1")
        if not 1 <= self.count <= 1000:
            raise ConfigValueError("count", f"got {self.count}; allowed: 1..1000 frames")
        if not 0 < self.min_exposure <= self.max_exposure:
            raise ConfigValueError("min_exposure", f"got {self.min_exposure}..{self.max_exposure}; allowed: "
                                                   "0 < min_exposure <= max_exposure (s)")
        if self.max_exposure > 3600:
            raise ConfigValueError("max_exposure", f"got {self.max_exposure}; allowed: up to 3600 s")
        if (not isinstance(self.sun_altitude, list) or len(self.sun_altitude) != 2
                or not all(isinstance(v, (int, float)) and -30 <= v <= 10 for v in self.sun_altitude)
                or self.sun_altitude[0] == self.sun_altitude[1]):
            raise ConfigValueError("sun_altitude", f"got {self.sun_altitude!r}; allowed: two different altitudes "
                                                   "-30..10 degrees, e.g. [-2, -10]")
        self.sun_altitude = [float(v) for v in self.sun_altitude]
        if not 30 <= self.altitude <= 90:
            raise ConfigValueError("altitude", f"got {self.altitude}; allowed: 30..90 degrees")
        if not 0 <= self.offset_arcmin <= 600:
            raise ConfigValueError("offset_arcmin", f"got {self.offset_arcmin}; allowed: 0..600 arcmin")
        for key in ("offset_every_s", "sky_halving_s", "lookback_days", "cool_timeout", "timeout", "panel_exposure"):
            if not getattr(self, key) > 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: a number > 0")
        if not 0 <= self.panel_settle_s <= 60:
            raise ConfigValueError("panel_settle_s", f"got {self.panel_settle_s}; allowed: 0..60 s")
        if self.filter_order is not None and (not isinstance(self.filter_order, list)
                                              or not all(isinstance(f, str) and f for f in self.filter_order)):
            raise ConfigValueError("filter_order", f"got {self.filter_order!r}; allowed: null or a list of filter "
                                                   "names (the dusk order)")

    @property
    def sun_high(self) -> float:
        """The upper sun altitude of sky flats (-2 by default)."""
        return max(self.sun_altitude)

    @property
    def sun_low(self) -> float:
        return min(self.sun_altitude)

    @property
    def dusk(self) -> bool:
        return self.sky in ("dusk", "both")

    @property
    def dawn(self) -> bool:
        return self.sky in ("dawn", "both")


@dataclass
class DarksSettings:
    enabled: bool = False
    when: list = field(default_factory=lambda: ["rain", "end"])
    exposures: list = field(default_factory=list)
    count: int = 20
    bias: bool = True
    max_age_days: float = 30.0
    cool_wait_s: float = 600.0
    timeout: float = 21600.0

    def validate(self) -> None:
        if not isinstance(self.when, list) or any(w not in DARK_WHEN for w in self.when):
            raise ConfigValueError("when", f"got {self.when!r}; allowed: a list of {', '.join(DARK_WHEN)}")
        if not isinstance(self.exposures, list) or not all(
                isinstance(e, (int, float)) and not isinstance(e, bool) and 0 < e <= 3600 for e in self.exposures):
            raise ConfigValueError("exposures", f"got {self.exposures!r}; allowed: a list of seconds, 0 < s <= 3600")
        self.exposures = [float(e) for e in self.exposures]
        if not 1 <= self.count <= 1000:
            raise ConfigValueError("count", f"got {self.count}; allowed: 1..1000 frames")
        for key in ("max_age_days", "cool_wait_s", "timeout"):
            if not getattr(self, key) > 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: a number > 0")
