"""The ``focus:`` config section: how an autofocus run sweeps, judges and applies offsets.

Example (all keys optional; these are the defaults)::

    focus:
      step: 400            # focuser steps between sweep points
      points: 9            # sweep frames before any extension
      exposure: 2.0        # seconds per frame
      binning: 1
      backlash: 100        # overshoot so every position is approached moving upwards
      approach: up
      min_stars: 5
      max_extensions: 2
      extension_points: 2
      min_points_each_side: 2
      check_tolerance: 0.25
      max_frames: 30       # every frame of a run, coarse search and check included
      search_growth: 2.0   # the coarse search's stride grows by this factor per frame
      search_rise: 0.15    # HFR this fraction over the best so far: the search has passed focus
      timeout: 900
      output_dir: ./focus
      offsets: {L: 0, R: 35, G: 20, B: 60, Ha: -40}
      temp_coefficient: 0.0
      reference_temperature: null
      default_position: null
      min_offset_move: 5
      fit: {significance: 0.01, min_r2: 0.8, ...}     # see indisync.focus.fit.FitSettings
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError
from .fit_settings import FitSettings


@dataclass
class FocusSettings:
    # Focuser steps between sweep points. Pick it so the HFR at the sweep's ends, (points-1)/2·step from
    # focus, is 2-4x the best HFR: deep enough for a well-defined V, not so deep that stars vanish.
    # 400 suits the INDI CCD simulator with a 10000-step focus scale (±1600 steps: FWHM grows by ~5.8").
    step: int = 400
    # Sweep frames centred on the start position. Odd keeps the start itself in the sweep.
    points: int = 9
    exposure: float = 2.0  # seconds per focus frame
    binning: int = 1
    # Every position is approached moving in ``approach`` direction; a move the other way first
    # overshoots by this many steps, so the gear slack is always taken up the same way. 0 = no overshoot.
    backlash: int = 100
    approach: Literal["up", "down"] = "up"
    # A frame with fewer stars than this has no HFR; clouds give frames of zero stars.
    min_stars: int = 5
    # When the minimum lies at (or beyond) an edge of the sweep, measure ``extension_points`` more
    # positions beyond that edge, at most ``max_extensions`` times; then the run fails rather than wander.
    max_extensions: int = 2
    extension_points: int = 2
    # A fitted minimum needs at least this many usable points on each side, else the sweep is extended:
    # a curve seen from one side only puts its minimum where the model's shape, not the data, says.
    min_points_each_side: int = 2
    # The check frame at the chosen position must have an HFR within this fraction of the predicted one.
    check_tolerance: float = 0.25
    # Frames a run may take in all (sweep, extensions, coarse search, check). A run that would need
    # more fails (focuser back at the start) rather than wander. 9 + 1 near focus; a start 5 V-curve
    # widths off takes ~22 (search_growth 2).
    max_frames: int = 30
    # When a sweep sees only one flank of the V-curve (no trusted fit, or still at an edge after
    # max_extensions), the run walks downhill from that edge with strides step·growth, step·growth², ...
    # until the HFR has risen by more than search_rise over the best frame (or a frame is too blurred to
    # measure), then sweeps a new V-curve over that bracket. See search.py.
    search_growth: float = 2.0
    search_rise: float = 0.15
    # Seconds for the whole run (sweep, extensions, check); past it the run fails and the focuser
    # returns to its start. Each device call has its own timeout in the indi section.
    timeout: float = 900.0
    # Each run writes a V-curve PNG and a JSON record here; null disables them.
    output_dir: str | None = "./focus"
    # Offsets (steps) per filter name, relative to the filter autofocus ran in (RTS2's filter offset).
    # A filter not listed has offset 0.
    offsets: dict[str, int] = field(default_factory=dict)
    # Steps per °C: focus moves by temp_coefficient·(T − T_focus) as the tube cools. 0 = off.
    # Negative for most refractors and SCTs (focus moves inwards as it gets colder): measure yours.
    temp_coefficient: float = 0.0
    # °C at which default_position was measured; used for temperature offsets before any autofocus.
    reference_temperature: float | None = None
    # Known-good position (offset-0 filter, reference_temperature) to use before the first autofocus
    # of the night (RTS2's default position). null = stay where the focuser is.
    default_position: int | None = None
    # Offset changes smaller than this many steps are not worth a focuser move.
    min_offset_move: int = 5
    fit: FitSettings = field(default_factory=FitSettings)

    def validate(self) -> None:
        if self.step < 1:
            raise ConfigValueError("step", "allowed: a positive number of focuser steps")
        if self.points < 5:
            raise ConfigValueError("points", "allowed: 5 or more (a V needs points on both sides)")
        if self.points < self.fit.min_points:
            raise ConfigValueError("points", f"must be at least fit.min_points ({self.fit.min_points})")
        if self.exposure <= 0:
            raise ConfigValueError("exposure", "allowed: a positive number of seconds")
        if self.binning < 1:
            raise ConfigValueError("binning", "allowed: 1, 2, 3, ...")
        if self.backlash < 0:
            raise ConfigValueError("backlash", "allowed: 0 or a positive number of steps")
        if self.min_stars < 1:
            raise ConfigValueError("min_stars", "allowed: 1 or more")
        if self.max_extensions < 0 or self.extension_points < 1:
            raise ConfigValueError("max_extensions", "allowed: max_extensions >= 0, extension_points >= 1")
        if self.min_points_each_side < 1:
            raise ConfigValueError("min_points_each_side", "allowed: 1 or more")
        if not 0 < self.check_tolerance < 10:
            raise ConfigValueError("check_tolerance", "allowed: a fraction > 0 (0.25 = within 25 %)")
        if self.max_frames < self.points + 1:
            raise ConfigValueError("max_frames", f"allowed: at least points + 1 ({self.points + 1}): the sweep and its check")
        if not 1.2 <= self.search_growth <= 10:
            raise ConfigValueError("search_growth", "allowed: 1.2 to 10 (2 doubles the stride each frame)")
        if not 0.01 <= self.search_rise <= 2:
            raise ConfigValueError("search_rise", "allowed: a fraction 0.01 to 2 (0.15 = HFR 15 % over the best)")
        if self.timeout <= 0:
            raise ConfigValueError("timeout", "allowed: a positive number of seconds")
        if self.min_offset_move < 0:
            raise ConfigValueError("min_offset_move", "allowed: 0 or a positive number of steps")

    @property
    def direction(self) -> int:
        """+1 when positions are approached moving up, −1 moving down."""
        return 1 if self.approach == "up" else -1
