"""What the executor tells the machine: one frozen dataclass per event, each naming its ``Ev``.

Actions answer with one of these (``FrameDone(ok=True, dither=True, ...)``), the weather watch and
``indisync stop`` post them, and the machine reads their fields; a dict with the same keys is taken
too (``payload_for``), so scripted tests stay short. Pure: no clock, no hardware.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar


class Ev(str, Enum):
    """What the executor tells the machine."""

    CLOCK = "clock"  # time passed (the executor ticks about once a second)
    WEATHER = "weather"  # data: {status: "ok"|"busy"|"alert"|None}; every update of the weather device
    WEATHER_LOST = "weather_lost"  # data: {reason}; the weather device is gone
    WINDOW = "window"  # data: {start, end}: the usable window (epoch s; None = now / never)
    COOLED = "cooled"  # data: {missing: [node names that did not reach their setpoint]}
    SLEWED = "slewed"
    SLEW_FAILED = "slew_failed"  # data: {reason}
    CENTERED = "centered"  # data: {ok, reason, error_arcsec, attempts}
    GUIDER_STARTED = "guider_started"  # data: {ok}
    FRAME_DONE = "frame_done"  # data: {ok, aborted, refocus: reason|None, dither: bool, finished, next_duration, switch}
    DITHERED = "dithered"
    FLIPPED = "flipped"  # data: {pier_side, ha_hours, ha_at}: the pier side changed
    FLIP_FAILED = "flip_failed"  # data: {reason}: it did not (or the slew failed)
    REFOCUSED = "refocused"
    PARKED = "parked"
    PARK_FAILED = "park_failed"  # data: {reason}
    WARMED = "warmed"
    STOP = "stop"  # data: {abort: bool}; `indisync stop`: end the night as at dawn
    # calibration (flats:, darks:)
    FLAT_WINDOWS = "flat_windows"  # data: {dusk, dawn}: tonight's sky-flats intervals, (start, end) epoch s or None
    FLATS_DONE = "flats_done"  # data: {ok, direction, reason, kept, taken}: the sky flats' action ended
    CALIBRATED = "calibrated"  # data: {reason}: the end-of-night calibration (panel flats, darks) ended
    DARKS_DONE = "darks_done"  # data: {reason}: the darks taken while parked for the weather ended


@dataclass(frozen=True)
class Payload:
    ev: ClassVar[Ev]

    # Where the mount points, for the meridian flip (sent with slewed, frame_done and flipped).
    ha_hours: float | None = None
    ha_at: float | None = None
    pier_side: str | None = None
    reason: str | None = None

    def with_pointing(self, pointing: dict) -> "Payload":
        known = {k: v for k, v in pointing.items() if k in ("ha_hours", "ha_at", "pier_side")}
        return dataclasses.replace(self, **known) if known else self

    @property
    def has_pier_side(self) -> bool:
        return self.pier_side is not None


@dataclass(frozen=True)
class Clock(Payload):
    ev = Ev.CLOCK


@dataclass(frozen=True)
class WeatherUpdate(Payload):
    ev = Ev.WEATHER
    status: str | None = None  # ok | busy | alert


@dataclass(frozen=True)
class WeatherLost(Payload):
    ev = Ev.WEATHER_LOST


@dataclass(frozen=True)
class Window(Payload):
    ev = Ev.WINDOW
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Cooled(Payload):
    ev = Ev.COOLED
    missing: tuple = ()  # nodes that did not reach their setpoint


@dataclass(frozen=True)
class Slewed(Payload):
    ev = Ev.SLEWED


@dataclass(frozen=True)
class SlewFailed(Payload):
    ev = Ev.SLEW_FAILED


@dataclass(frozen=True)
class Centered(Payload):
    ev = Ev.CENTERED
    ok: bool = True
    error_arcsec: float | None = None
    attempts: int | None = None


@dataclass(frozen=True)
class GuiderStarted(Payload):
    ev = Ev.GUIDER_STARTED
    ok: bool = True


@dataclass(frozen=True)
class FrameDone(Payload):
    ev = Ev.FRAME_DONE
    ok: bool = True  # False: not taken (not counted: the same slot again after frame_retry)
    aborted: bool = False  # cancelled by whoever aborted it: it decides what comes next
    refocus: str | None = None  # a refocus came due: why
    dither: bool = False
    finished: bool | None = None  # the sequence has no frame left (None: unchanged)
    next_duration: float | None = None  # seconds the next frame takes
    # the season (indisync.season.runtime) moves on to another target: why, in words (None: stay).
    # The night slews, centres, guides and images there (stop_guider first).
    switch: str | None = None


@dataclass(frozen=True)
class Dithered(Payload):
    ev = Ev.DITHERED


@dataclass(frozen=True)
class Flipped(Payload):
    ev = Ev.FLIPPED


@dataclass(frozen=True)
class FlipFailed(Payload):
    ev = Ev.FLIP_FAILED


@dataclass(frozen=True)
class Refocused(Payload):
    ev = Ev.REFOCUSED


@dataclass(frozen=True)
class Parked(Payload):
    ev = Ev.PARKED


@dataclass(frozen=True)
class ParkFailed(Payload):
    ev = Ev.PARK_FAILED


@dataclass(frozen=True)
class Warmed(Payload):
    ev = Ev.WARMED


@dataclass(frozen=True)
class Stop(Payload):
    ev = Ev.STOP
    abort: bool = False


@dataclass(frozen=True)
class FlatWindows(Payload):
    ev = Ev.FLAT_WINDOWS
    dusk: tuple | None = None  # (start, end) epoch s of the dusk flats' interval; None: none tonight
    dawn: tuple | None = None


@dataclass(frozen=True)
class FlatsDone(Payload):
    ev = Ev.FLATS_DONE
    ok: bool = True  # False: no flats could be taken (the reason says why); the night goes on either way
    direction: str | None = None  # dusk | dawn
    kept: int = 0  # frames kept over every node and set
    taken: int = 0  # frames taken (test frames and discarded ones included)


@dataclass(frozen=True)
class Calibrated(Payload):
    ev = Ev.CALIBRATED


@dataclass(frozen=True)
class DarksDone(Payload):
    ev = Ev.DARKS_DONE


PAYLOADS: dict[Ev, type[Payload]] = {cls.ev: cls for cls in (
    Clock, WeatherUpdate, WeatherLost, Window, Cooled, Slewed, SlewFailed, Centered, GuiderStarted, FrameDone,
    Dithered, Flipped, FlipFailed, Refocused, Parked, ParkFailed, Warmed, Stop, FlatWindows, FlatsDone, Calibrated,
    DarksDone)}


def payload_for(event: Ev, data: Any) -> Payload:
    """``data`` as the event's payload: already one (checked to be the event's), a dict of its
    fields, or None. Unknown fields are a ValueError naming them and what the payload has."""
    cls = PAYLOADS[event]
    if isinstance(data, Payload):
        if not isinstance(data, cls):
            raise ValueError(f"{event.value} takes a {cls.__name__} payload, not a {type(data).__name__}")
        return data
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; it has {', '.join(sorted(names))}")
    if "missing" in data:
        data["missing"] = tuple(data["missing"] or ())
    for key in ("dusk", "dawn"):  # an interval read back from JSON is a list
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    return cls(**data)
