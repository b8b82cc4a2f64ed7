"""Grade each frame against the recent frames of the same node and filter (as NINA's Target
Scheduler does): its HFR and star count against their running medians, and on the master the
guiding RMS during the frame.

Only accepted frames enter the history, so a stretch of cloud does not become the norm; a
filter's first ``min_history`` frames are accepted for want of anything to compare with. A frame
that was not measured (a dark, a failed measurement) is not graded at all.

Pure: plain numbers in, a ``Grade`` out.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass

from .settings import GradingSettings

ACCEPTED = "accepted"
REJECTED = "rejected"


@dataclass(frozen=True)
class Grade:
    status: str  # ACCEPTED / REJECTED
    reason: str  # why, in words: "ok", "hfr 3.90 > 1.3 x median 2.41", ...
    hfr_median: float | None = None
    stars_median: float | None = None
    history: int = 0  # accepted frames compared against

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED


def grade_frame(hfr: float | None, stars: int | None, history: list[tuple[float | None, int]],
                settings: GradingSettings, guide_rms_arcsec: float | None = None) -> Grade | None:
    """The grade of one frame given ``history`` (hfr, stars) of recent accepted frames, oldest first.
    None: not graded (the frame was not measured)."""
    if stars is None:
        return None
    reasons = []
    hfrs = [h for h, _ in history if h is not None]
    counts = [s for _, s in history]
    hfr_median = statistics.median(hfrs) if len(hfrs) >= settings.min_history else None
    stars_median = statistics.median(counts) if len(counts) >= settings.min_history else None
    if stars_median is not None and stars < settings.stars_factor * stars_median:
        reasons.append(f"stars {stars} < {settings.stars_factor:g} x median {stars_median:g}")
    if hfr_median is not None and hfr is not None and hfr > settings.hfr_factor * hfr_median:
        reasons.append(f"hfr {hfr:.2f} > {settings.hfr_factor:g} x median {hfr_median:.2f}")
    if stars == 0 and not reasons:
        reasons.append("no stars")
    limit = settings.max_guide_rms_arcsec
    if limit is not None and guide_rms_arcsec is not None and guide_rms_arcsec > limit:
        reasons.append(f"guiding rms {guide_rms_arcsec:.2f}\" > {limit:g}\"")
    if reasons:
        return Grade(REJECTED, "; ".join(reasons), hfr_median, stars_median, len(history))
    why = "ok" if len(history) >= settings.min_history else f"ok (history {len(history)} < {settings.min_history})"
    return Grade(ACCEPTED, why, hfr_median, stars_median, len(history))


class FrameGrader:
    """One node's grader: a window of accepted frames per filter. Thread-safe."""

    def __init__(self, settings: GradingSettings):
        self.settings = settings
        self._history: dict[str | None, deque] = {}
        self._lock = threading.Lock()

    def grade(self, filter_name: str | None, hfr: float | None, stars: int | None,
              guide_rms_arcsec: float | None = None) -> Grade | None:
        if not self.settings.enabled:
            return None
        with self._lock:
            history = self._history.setdefault(filter_name, deque(maxlen=self.settings.window))
            grade = grade_frame(hfr, stars, list(history), self.settings, guide_rms_arcsec)
            if grade is not None and grade.accepted:
                history.append((hfr, stars))
        return grade


def grade_header_cards(grade: Grade | None) -> list[tuple[str, str, str]]:
    """FITS cards GRADE / GRADERSN (nothing for an ungraded frame)."""
    if grade is None:
        return []
    return [("GRADE", grade.status, "indisync frame grade (accepted/rejected)"),
            ("GRADERSN", grade.reason[:68], "why this grade")]
