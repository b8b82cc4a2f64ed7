"""The guiding RMS during one science frame, for grading: the guider's offsets between the
shutter opening and closing (``GuideStats`` itself covers everything since guiding started)."""

from __future__ import annotations

import math
import threading
from typing import Callable

from ..guiding.stats import rms


class FrameGuideRms:
    def __init__(self, pixel_scale: Callable[[], float | None]):
        self._pixel_scale = pixel_scale
        self._ra: list[float] = []
        self._dec: list[float] = []
        self._open = False
        self._lock = threading.Lock()

    def on_event(self, event) -> None:
        """A guider listener (called on the guide loop's thread: append and return)."""
        if event.kind != "frame" or not self._open:
            return
        ra, dec = event.data.get("ra_px"), event.data.get("dec_px")
        if isinstance(ra, (int, float)) and isinstance(dec, (int, float)):
            with self._lock:
                self._ra.append(float(ra))
                self._dec.append(float(dec))

    def begin(self) -> None:
        with self._lock:
            self._ra.clear()
            self._dec.clear()
            self._open = True

    def end(self) -> float | None:
        """Total RMS (arcsec) of the guide frames since ``begin``; None without frames or pixel scale."""
        with self._lock:
            self._open = False
            if not self._ra:
                return None
            total_px = math.hypot(rms(self._ra), rms(self._dec))
        scale = self._pixel_scale()
        return None if scale is None else total_px * scale
