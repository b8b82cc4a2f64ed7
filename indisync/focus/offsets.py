"""Focus offsets: where the focuser should be for a filter and a temperature, without a new autofocus.

RTS2 keeps three numbers: a *default* position, a per-filter *offset* and a *temporary* offset, and
drives the focuser to their sum. We keep the same idea, anchored on the last known focus:

* the **base** is a position known to be in focus together with the filter and the temperature it was
  found at: the last autofocus result, or before any autofocus the configured ``default_position``
  (taken as measured in an offset-0 filter at ``reference_temperature``);
* the **filter offset** ``offsets[filter]`` (steps, relative to an offset-0 filter); a filter not listed
  has offset 0. Going from the base's filter to another adds the difference of their offsets;
* the **temperature term** ``temp_coefficient · (T − T_base)`` (steps per °C), used only when both
  temperatures are known;
* a **temporary** offset the caller may add (e.g. a manual nudge for tonight only).

    target = base.position − offsets[base.filter] + offsets[filter] + k·(T − T_base) + temporary

The node applies it on every filter change and whenever the temperature has moved the target by at
least ``min_offset_move`` steps from where the focuser is. Because the target is computed from the
base each time, small temperature steps never accumulate rounding errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import FocusSettings


@dataclass(frozen=True)
class FocusBase:
    position: int
    filter: str | None  # None: an offset-0 filter (the default position's convention)
    temperature: float | None  # °C, None when unknown
    source: str = "autofocus"  # "autofocus" | "default"


def default_base(settings: FocusSettings) -> FocusBase | None:
    """The configured default position as a base, or None when none is configured."""
    if settings.default_position is None:
        return None
    return FocusBase(settings.default_position, None, settings.reference_temperature, "default")


def filter_offset(settings: FocusSettings, filter_name: str | None) -> int:
    if filter_name is None:
        return 0
    return int(settings.offsets.get(filter_name, 0))


def focus_position(
    base: FocusBase,
    filter_name: str | None,
    temperature: float | None,
    settings: FocusSettings,
    temporary: int = 0,
) -> int:
    """The position in focus for ``filter_name`` at ``temperature`` (see the module docstring)."""
    target = float(base.position - filter_offset(settings, base.filter) + filter_offset(settings, filter_name))
    if settings.temp_coefficient and temperature is not None and base.temperature is not None:
        target += settings.temp_coefficient * (temperature - base.temperature)
    return round(target) + int(temporary)


def offset_move(
    current: int,
    base: FocusBase,
    filter_name: str | None,
    temperature: float | None,
    settings: FocusSettings,
    temporary: int = 0,
) -> int | None:
    """The position to move to, or None when the change is below ``min_offset_move`` steps."""
    target = focus_position(base, filter_name, temperature, settings, temporary)
    if abs(target - current) < max(settings.min_offset_move, 1):
        return None
    return target
