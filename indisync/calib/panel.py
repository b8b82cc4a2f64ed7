"""The light panel's brightness search: pure, the camera and the panel behind one callback.

``measure(brightness, exposure) -> mean ADU`` sets the panel, takes a frame and measures it. The
mean grows with the brightness, so a bisection on the brightness at the trained exposure
(``flats.panel_exposure``) finds one that lands in the band; then the exposure is scaled to land on
the target (within the exposure limits) and checked with one more frame. The result is stored per
node, filter and binning (CalibLibrary.save_panel_training) and re-used without a search.

When the band cannot be reached (too dim at full brightness and the longest exposure, too bright at
the lowest brightness and the shortest exposure) a CalibError says which and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import CalibError


@dataclass
class PanelTraining:
    brightness: float
    exposure: float  # s
    adu: float  # the mean ADU measured (the last check) at this brightness and exposure
    steps: int  # frames the search took (0: re-used)

    def to_dict(self) -> dict:
        return {"brightness": self.brightness, "exposure": self.exposure, "adu": self.adu, "steps": self.steps}


def _scaled(exposure: float, adu: float, target_adu: float, min_exposure: float, max_exposure: float) -> float:
    """The exposure that turns ``adu`` at ``exposure`` into ``target_adu`` (linear), within the limits."""
    if adu <= 0:
        return max_exposure
    return min(max(exposure * target_adu / adu, min_exposure), max_exposure)


def train_panel(measure: Callable[[float, float], float], brightness_range: tuple[float, float], exposure: float,
                target_adu: float, low_adu: float, high_adu: float, min_exposure: float, max_exposure: float,
                max_steps: int = 12, step: float | None = None) -> PanelTraining:
    """Find a brightness and exposure that put the panel's flat on ``target_adu`` (within
    [low_adu, high_adu]) in at most ``max_steps`` frames; CalibError when it cannot be done.
    ``step``: the panel's brightness step (the Light Panel Simulator's is 10): tried brightnesses are
    multiples of it."""
    lo, hi = float(min(brightness_range)), float(max(brightness_range))
    if not min_exposure <= exposure <= max_exposure:
        exposure = min(max(exposure, min_exposure), max_exposure)
    steps = 0

    def take(brightness: float, exp: float) -> float:
        nonlocal steps
        if steps >= max_steps:
            raise CalibError(f"the panel's brightness search took {max_steps} frames without landing in the band "
                             f"{low_adu:.0f}..{high_adu:.0f} ADU; check that the panel is on and covers the OTA")
        steps += 1
        return float(measure(brightness, exp))

    def finish(brightness: float, exp: float, adu: float) -> PanelTraining:
        """Scale the exposure onto the target; check it with one frame when it changed."""
        better = _scaled(exp, adu, target_adu, min_exposure, max_exposure)
        if abs(better - exp) <= 1e-3 * exp or steps >= max_steps:
            return PanelTraining(brightness, exp, adu, steps)
        checked = take(brightness, better)
        if low_adu <= checked <= high_adu:
            return PanelTraining(brightness, better, checked, steps)
        return PanelTraining(brightness, exp, adu, steps)  # the scaled one fell out: keep the measured one

    # the brightest first: too dim even there, only a longer exposure can help
    top = take(hi, exposure)
    if top < low_adu:
        longer, adu = _rescale(take, hi, exposure, top, target_adu, low_adu, high_adu, min_exposure, max_exposure)
        if low_adu <= adu <= high_adu:
            return finish(hi, longer, adu)
        raise CalibError(
            f"the panel is too dim: {adu:.0f} ADU at brightness {hi:g} and {longer:g} s, "
            f"{'above' if adu > high_adu else 'below'} the band {low_adu:.0f}..{high_adu:.0f}; raise "
            f"flats.max_exposure ({max_exposure:g} s) or the panel's brightness range, or lower flats.target_adu")
    if top <= high_adu:  # the brightest setting is in the band: the shortest exposure for the light
        return finish(hi, exposure, top)
    bottom = take(lo, exposure)
    if bottom > high_adu:
        shorter, adu = _rescale(take, lo, exposure, bottom, target_adu, low_adu, high_adu, min_exposure,
                                max_exposure)
        if low_adu <= adu <= high_adu:
            return finish(lo, shorter, adu)
        raise CalibError(
            f"the panel is too bright: {adu:.0f} ADU at brightness {lo:g} and {shorter:g} s, "
            f"{'above' if adu > high_adu else 'below'} the band {low_adu:.0f}..{high_adu:.0f}; lower "
            f"flats.min_exposure ({min_exposure:g} s), dim the panel (a diffuser, its lowest setting) or raise "
            "flats.target_adu")
    if bottom >= low_adu:
        return finish(lo, exposure, bottom)
    # bottom below the band, top above it: bisect
    a, adu_a, b, adu_b = lo, bottom, hi, top
    while True:
        mid = (a + b) / 2.0
        if step:
            mid = round(mid / step) * step
            if not a < mid < b:
                mid = a + step if a + step < b else None
        if mid is None or b - a < 1e-6 * max(1.0, abs(hi)):
            # neighbouring settings straddle the band: the dimmer one with a longer exposure
            longer = _scaled(exposure, adu_a, target_adu, min_exposure, max_exposure)
            if adu_a > 0 and low_adu <= adu_a * longer / exposure <= high_adu:
                measured = take(a, longer)
                if low_adu <= measured <= high_adu:
                    return finish(a, longer, measured)
            raise CalibError(
                f"the panel jumps over the band {low_adu:.0f}..{high_adu:.0f} ADU between brightness {a:g} "
                f"({adu_a:.0f} ADU) and {b:g} ({adu_b:.0f} ADU) at {exposure:g} s; change flats.panel_exposure "
                "or widen flats.tolerance")
        adu = take(mid, exposure)
        if low_adu <= adu <= high_adu:
            return finish(mid, exposure, adu)
        if adu < low_adu:
            a, adu_a = mid, adu
        else:
            b, adu_b = mid, adu


def _rescale(take, brightness: float, exposure: float, adu: float, target_adu: float, low_adu: float,
             high_adu: float, min_exposure: float, max_exposure: float, tries: int = 5) -> tuple[float, float]:
    """At a fixed brightness, the exposure scaled from the last reading toward the target, measured,
    again while it is out of the band and the exposure still changes (a reading that saturated or
    fell short of linear is corrected by the next): (exposure, ADU) of the last frame."""
    for _ in range(tries):
        if low_adu <= adu <= high_adu:
            break
        better = _scaled(exposure, adu, target_adu, min_exposure, max_exposure)
        if abs(better - exposure) <= 1e-3 * exposure:
            break
        exposure, adu = better, take(brightness, better)
    return exposure, adu
