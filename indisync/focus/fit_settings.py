"""How V-curve fits are judged (config ``focus.fit``): kept apart from fit.py so that loading the
configuration does not import numpy and scipy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError

ModelName = Literal["parabola", "hyperbola", "v"]
MODELS: tuple[str, ...] = ("parabola", "hyperbola", "v")


@dataclass
class FitSettings:
    """How V-curve fits are judged. Every threshold that decides "trusted or not" lives here."""

    # models tried. "v" is opt-in: its σ(position) cannot include the uncertainty of where the two
    # lines break, so on rounded curves (the simulator's, and any curve sampled near focus only) it can
    # win with a confident, wrong minimum. Use it for deep, sharp V-curves sampled far out on both sides.
    models: list[ModelName] = field(default_factory=lambda: ["parabola", "hyperbola"])
    # an F-test p-value below this is needed to beat both a constant and a straight line (RTS2's rule):
    # smaller = stricter. 0.01 rejects flat or monotonic noise while 9 points of a real V pass easily.
    significance: float = 0.01
    # weighted R² = 1 − χ²(model)/χ²(constant); below this the curve explains too little of the scatter
    min_r2: float = 0.8
    # reduced χ² above this rejects the model; null = off, because on a real sky seeing changes between
    # frames make the scatter larger than the per-frame star statistics and would reject good curves
    max_reduced_chi2: float | None = None
    # σ(position) must be at most this many median point spacings (a loose curve is not a position)
    max_sigma_spacings: float = 0.5
    # fewer usable points than this: no fit at all
    min_points: int = 5
    # outlier test on the best model's normalised residuals; "none" disables rejection
    outlier_test: Literal["grubbs", "none"] = "grubbs"
    outlier_alpha: float = 0.05  # significance of Grubbs' two-sided test
    # the per-point error of the median HFR is spread/sqrt(stars), but never below this fraction of the
    # HFR itself: a frame of 200 identical stars is not a 0.1 % measurement of focus
    relative_error_floor: float = 0.01

    def validate(self) -> None:
        if not self.models:
            raise ConfigValueError("models", f"must name at least one of {', '.join(MODELS)}")
        if not 0 < self.significance < 1:
            raise ConfigValueError("significance", "allowed: a p-value between 0 and 1 (e.g. 0.01)")
        if not 0 <= self.min_r2 < 1:
            raise ConfigValueError("min_r2", "allowed: 0 <= min_r2 < 1")
        if self.max_reduced_chi2 is not None and self.max_reduced_chi2 <= 0:
            raise ConfigValueError("max_reduced_chi2", "allowed: a positive number or null")
        if self.max_sigma_spacings <= 0:
            raise ConfigValueError("max_sigma_spacings", "allowed: a positive number of point spacings")
        if self.min_points < 5:
            raise ConfigValueError("min_points", "allowed: 5 or more (a V needs points on both sides)")
        if not 0 < self.outlier_alpha < 1:
            raise ConfigValueError("outlier_alpha", "allowed: a p-value between 0 and 1")
        if not 0 < self.relative_error_floor < 1:
            raise ConfigValueError("relative_error_floor", "allowed: a fraction between 0 and 1")
