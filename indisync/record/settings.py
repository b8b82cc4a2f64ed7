"""Settings of image grading (config section ``grading``) and of the night log (``record``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..configtypes import ConfigValueError


@dataclass
class GradingSettings:
    enabled: bool = True
    hfr_factor: float = 1.3
    """A frame whose HFR exceeds ``hfr_factor`` x the median HFR of the recent accepted frames of
    the same node and filter is rejected (NINA Target Scheduler's default is a 1.3 x rule too)."""
    stars_factor: float = 0.6
    """A frame with fewer than ``stars_factor`` x the median star count is rejected (clouds, dew,
    noise, a lost focus)."""
    window: int = 10
    """Recent accepted frames the medians are taken over, per filter."""
    min_history: int = 3
    """Below this many accepted frames of a filter there is nothing to compare with: accepted."""
    max_guide_rms_arcsec: float | None = 2.5
    """On the master (with a guider): a frame guided worse than this total RMS is rejected.
    null: guiding is not graded."""
    retake: bool = False
    """The master takes one more frame of the same slot when its own frame was rejected."""

    def validate(self) -> None:
        if not self.hfr_factor > 1.0:
            raise ConfigValueError("hfr_factor", f"got {self.hfr_factor}; allowed: a number > 1")
        if not 0.0 < self.stars_factor < 1.0:
            raise ConfigValueError("stars_factor", f"got {self.stars_factor}; allowed: 0 < x < 1")
        if self.window < 1 or self.min_history < 1 or self.min_history > self.window:
            raise ConfigValueError("min_history", "allowed: 1 <= min_history <= window")
        if self.max_guide_rms_arcsec is not None and self.max_guide_rms_arcsec <= 0:
            raise ConfigValueError("max_guide_rms_arcsec", "allowed: a positive number of arcsec, or null")


@dataclass
class RecordSettings:
    enabled: bool = True
    """The master writes the rig's night log (every node's events and states) and, at the end of
    its sequence, the night report. `indisync record` does the same on a machine that only watches."""
    directory: str | None = None
    """Where night logs and reports go; null: ``{storage.directory}/nights``."""
    night_starts_hour: int = 12
    """Local hour at which a new night begins: with 12 a night runs noon to noon, so the log is
    named after the date at dusk."""
    report: bool = True
    """Write the night report when the master's sequence ends."""

    def validate(self) -> None:
        if not 0 <= self.night_starts_hour <= 23:
            raise ConfigValueError("night_starts_hour", f"got {self.night_starts_hour}; allowed: 0..23")
