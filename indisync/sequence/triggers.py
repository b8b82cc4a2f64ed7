"""When to refocus: after each batch, every N frames, on an HFR rise, on a temperature change.

The master feeds ``frame_done`` with each frame's HFR (None when not measured), filter and
temperature, and ``batch_done`` at the end of a batch; either returns a RefocusReason or None.
After every focus run it calls ``reset_after_focus`` so all triggers count from the new focus.

HFR baseline: the median HFR of the first ``hfr_baseline_frames`` measured frames after focus,
kept per filter (filters come to focus at slightly different HFRs). The current value is the
median of the last ``hfr_recent_frames`` measured frames through that filter; the trigger fires
when it is ``hfr_rise_pct`` % above the baseline. No baseline yet: no HFR trigger.

Temperature reference: the temperature given to ``reset_after_focus`` (the focuser's or camera's
at the end of the focus run), or if unknown then, the first temperature reported after it.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from .settings import RefocusSettings

AFTER_BATCH = "after_batch"
EVERY_FRAMES = "every_frames"
HFR_RISE = "hfr_rise"
TEMPERATURE = "temperature"


@dataclass(frozen=True)
class RefocusReason:
    trigger: str  # after_batch | every_frames | hfr_rise | temperature
    detail: str  # a sentence for the log and the status topic

    def __str__(self) -> str:
        return self.detail


class _FilterHfr:
    def __init__(self, baseline_frames: int, recent_frames: int):
        self.baseline_values: list[float] = []
        self.baseline_frames = baseline_frames
        self.recent: deque[float] = deque(maxlen=recent_frames)

    @property
    def baseline(self) -> float | None:
        if len(self.baseline_values) < self.baseline_frames:
            return None
        return statistics.median(self.baseline_values)

    def add(self, hfr: float) -> None:
        if len(self.baseline_values) < self.baseline_frames:
            self.baseline_values.append(hfr)
        self.recent.append(hfr)


class RefocusTriggers:
    def __init__(self, settings: RefocusSettings):
        self.settings = settings
        self.reset_after_focus()

    def reset_after_focus(self, temperature: float | None = None) -> None:
        """Start counting from a fresh focus (``temperature``: degC at the end of the focus run)."""
        self.frames_since_focus = 0
        self.focus_temperature = temperature
        self._hfr: dict[str | None, _FilterHfr] = {}

    def hfr_baseline(self, filter_name: str | None = None) -> float | None:
        state = self._hfr.get(filter_name)
        return state.baseline if state else None

    def frame_done(
        self, hfr: float | None = None, filter_name: str | None = None, temperature: float | None = None
    ) -> RefocusReason | None:
        """Record one master frame; the reason to refocus now, or None."""
        s = self.settings
        self.frames_since_focus += 1
        if hfr is not None and hfr > 0:
            state = self._hfr.setdefault(filter_name, _FilterHfr(s.hfr_baseline_frames, s.hfr_recent_frames))
            state.add(float(hfr))
        if temperature is not None and self.focus_temperature is None:
            self.focus_temperature = float(temperature)

        if s.every_frames is not None and self.frames_since_focus >= s.every_frames:
            return RefocusReason(EVERY_FRAMES, f"{self.frames_since_focus} frames since the last focus (every_frames: {s.every_frames})")
        if s.hfr_rise_pct is not None and hfr is not None:
            reason = self._hfr_reason(filter_name)
            if reason:
                return reason
        if s.temperature_delta is not None and temperature is not None and self.focus_temperature is not None:
            change = float(temperature) - self.focus_temperature
            if abs(change) >= s.temperature_delta:
                return RefocusReason(
                    TEMPERATURE,
                    f"temperature {temperature:.2f} C changed {change:+.2f} C since focus at "
                    f"{self.focus_temperature:.2f} C (temperature_delta: {s.temperature_delta})",
                )
        return None

    def _hfr_reason(self, filter_name: str | None) -> RefocusReason | None:
        state = self._hfr.get(filter_name)
        if state is None or state.baseline is None:
            return None
        baseline = state.baseline
        current = statistics.median(state.recent)
        rise = (current / baseline - 1.0) * 100.0
        if rise >= self.settings.hfr_rise_pct:
            where = f" through {filter_name}" if filter_name else ""
            return RefocusReason(
                HFR_RISE,
                f"HFR{where} {current:.2f} px is {rise:.0f}% above the post-focus baseline {baseline:.2f} px "
                f"(hfr_rise_pct: {self.settings.hfr_rise_pct})",
            )
        return None

    def batch_done(self) -> RefocusReason | None:
        """The end of a batch: refocus if after_batch is set."""
        if self.settings.after_batch:
            return RefocusReason(AFTER_BATCH, "end of batch (after_batch: true)")
        return None
