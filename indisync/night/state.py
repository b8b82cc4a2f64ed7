"""The night's vocabulary, plain data: its states (and which are always safe), the actions the
machine asks for (a ``Move``, an ``Action``), tonight's plan, the snapshot saved after every move and
why the weather is unsafe (``unsafe_reason``). Pure: no clock, no hardware.
The machine (machine.py) moves between them; it re-exports every name here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from .events import Ev
from .meridian import FlipSettings


class State(str, Enum):
    WAITING_DARK = "waiting_dark"
    COOLING = "cooling"
    SLEWING = "slewing"
    CENTERING = "centering"
    STARTING_GUIDER = "starting_guider"
    IMAGING = "imaging"
    DITHERING = "dithering"
    REFOCUSING = "refocusing"
    FLIPPING = "flipping"  # the meridian flip: holding for it, slewing to the target again, checking the pier side
    SECURING = "securing"  # outside the window with the mount perhaps out (a restart): parking, then waiting
    UNSAFE = "unsafe"  # weather went bad: aborting, parking, closing
    PARKED = "parked"  # parked for the weather, waiting for safe_for s of safe weather
    PARKING = "parking"  # the night is over (dawn, window end, stop, error): parking for good
    WARMING = "warming"
    DONE = "done"
    # Calibration (flats:, darks:; indisync.night.calib_steps decides these moves)
    DUSK_FLATS = "dusk_flats"  # sky flats in the dusk interval: the mount at the flat spot, every node taking flats
    DAWN_FLATS = "dawn_flats"  # the same in the dawn interval, after the night's window
    WAITING_DAWN = "waiting_dawn"  # the night is over, parked and closed: waiting for the dawn flats' interval
    CALIBRATING = "calibrating"  # parked and closed at the end: panel flats (flats.panel) and darks (darks.when end)


# States the night may be in whatever the weather: nothing is exposed, the mount is parked or
# being parked (waiting for dark and cooling happen parked, before the mount is unparked).
ALWAYS_SAFE = frozenset({State.WAITING_DARK, State.COOLING, State.SECURING, State.UNSAFE, State.PARKED,
                         State.PARKING, State.WARMING, State.DONE, State.WAITING_DAWN, State.CALIBRATING})
# States that park: a park answer (parked / park_failed) belongs to them, and a failed park is tried
# again every park_retry s until it succeeds (I4).
PARKING_STATES = frozenset({State.SECURING, State.UNSAFE, State.PARKING})
# States in which the mount is out and the cameras may expose.
ACTIVE = frozenset(State) - ALWAYS_SAFE
END_STATES = frozenset({State.PARKING, State.WARMING, State.DONE})
# Sky flats: the mount out (ACTIVE) outside the window, but only inside their own interval.
FLATS_STATES = frozenset({State.DUSK_FLATS, State.DAWN_FLATS})
# After the night's window: where a normal end goes on (dawn flats, calibration) before warming.
AFTER_NIGHT = frozenset({State.WAITING_DAWN, State.DAWN_FLATS, State.CALIBRATING})


@dataclass(frozen=True)
class Action:
    """What the machine asks the executor to do. Long actions answer with the event in ``ANSWERS``."""

    kind: str
    args: dict = field(default_factory=dict)


ANSWERS = {  # action -> the event(s) that end it
    "cool": (Ev.COOLED,), "slew": (Ev.SLEWED, Ev.SLEW_FAILED), "center": (Ev.CENTERED,),
    "start_guider": (Ev.GUIDER_STARTED,), "expose": (Ev.FRAME_DONE,), "dither": (Ev.DITHERED,),
    "refocus": (Ev.REFOCUSED,), "flip": (Ev.FLIPPED, Ev.FLIP_FAILED), "park": (Ev.PARKED, Ev.PARK_FAILED), "warm": (Ev.WARMED,),
    "sky_flats": (Ev.FLATS_DONE,), "calibrate": (Ev.CALIBRATED,), "darks": (Ev.DARKS_DONE,),
}
INSTANT_ACTIONS = ("abort_exposures", "stop_guider", "finish")  # no answer expected


@dataclass
class Move:
    """A decision of the machine: the state to enter, why, and the actions to run beyond its entry's."""

    target: State
    reason: str
    actions: list[Action] = field(default_factory=list)
    must_park: bool = False  # a move that ends the night on a failure, the window's end or rain
    normal_end: bool = False  # the night ends normally (window closed, sequence or season done): dawn flats and
    # the end-of-night calibration follow its park (a stop by hand or a failure go straight to warming)


@dataclass(frozen=True)
class NightPlan:
    """What this night does (from the config; fixed for the night). All times in seconds."""

    cool: bool = False  # cool every node before the mount is unparked
    slew: bool = False  # unpark, slew to the target, track (the target has coordinates, a mount exists)
    guide: bool = False
    park_at_end: bool = False
    warm_at_end: bool = False
    weather: bool = False  # a weather device is watched
    safe_for: float = 600.0  # continuous safe weather before resuming
    stale_after: float = 180.0  # no weather update for this long = unsafe
    park_retry: float = 30.0  # a park that failed is tried again after this long
    can_park: bool = False  # there is a mount or a dome to park and close (safety parks whatever park_at_end says)
    frame_retry: float = 30.0  # a frame that could not be taken (indiserver gone, ...) is tried again after this long
    flip: bool = False  # watch the meridian (a flip: section, a mount and the target's coordinates)
    flip_settings: FlipSettings = field(default_factory=FlipSettings)
    center: bool = False  # plate-solved centring after each slew (night.center); off: centring passes at once
    center_on_failure: str = "continue"  # acquire.on_failure: continue (image off-centre) | stop (park)
    sky_flats: str | None = None  # flats.sky: dusk | dawn | both (a mount and a site); None: no sky flats
    end_calibration: bool = False  # calibrating after a normal end: flats.panel, or darks with "end" in darks.when
    darks_when_parked: bool = False  # darks while parked for the weather: darks.enabled with "rain" in darks.when
    flats_overrun: float = 60.0  # s past a flats interval's end before its state is left (the action cancelled)
    # Deadlines of busy states (seconds in the state); past it the night is stuck and parks.
    timeouts: dict = field(default_factory=lambda: {
        State.COOLING.value: 1800.0, State.SLEWING.value: 600.0, State.CENTERING.value: 600.0,
        State.STARTING_GUIDER.value: 600.0, State.DITHERING.value: 600.0, State.REFOCUSING.value: 3600.0,
        State.PARKING.value: 600.0, State.WARMING.value: 600.0, State.FLIPPING.value: 2400.0,
        State.DUSK_FLATS.value: 5400.0, State.DAWN_FLATS.value: 5400.0, State.CALIBRATING.value: 27000.0,
    })

    @property
    def dusk_flats(self) -> bool:
        return self.sky_flats in ("dusk", "both")

    @property
    def dawn_flats(self) -> bool:
        return self.sky_flats in ("dawn", "both")


@dataclass
class Snapshot:
    """Where the night is and why; plain data, saved after every step that changes it."""

    state: str = State.WAITING_DARK.value
    since: float = 0.0  # when the night entered ``state``
    until: float | None = None  # when it expects to leave it (dark, safe again, the window's end)
    reason: str = "start of the night"
    window_start: float | None = None  # None: dark now (no site/night config)
    window_end: float | None = None  # None: no end but the sequence's
    next_duration: float = 0.0  # seconds the next frame takes (delay + exposure)
    finished: bool = False  # the sequence has no frame left
    busy: str | None = None  # the long action under way in this state, if any
    stop_requested: bool = False
    weather_status: str | None = None  # last WEATHER_STATUS seen: ok | busy | alert
    weather_lost: str | None = None  # why the weather device is gone, while it is
    last_weather: float | None = None  # when the last weather update came (epoch s)
    safe_since: float | None = None  # start of the current run of safe weather
    retry_at: float | None = None  # when a failed park is tried again
    warnings: list = field(default_factory=list)  # e.g. nodes that missed their cooling setpoint
    ha_hours: float | None = None  # the target's hour angle (h, negative east) as last measured...
    ha_at: float | None = None  # ...at this time (epoch s); carried on at the sidereal rate
    pier_side: str | None = None  # "east" | "west" (INDI's TELESCOPE_PIER_SIDE) as last read
    flip_at: float | None = None  # when the flip under way (or held for) slews
    pending_refocus: str | None = None  # a refocus that came due with the flip (or a target switch): done after it
    refocus_held_for: str = "the meridian flip"  # what the pending refocus waits for (the log's words)
    secured: bool = False  # the night knows the mount parked and the dome closed (a park answered parked)
    must_park: bool = False  # the night ends on a failure, the window's end or rain: park whatever park_at_end says
    # Calibration (indisync.night.calib_steps). The sky flats' intervals, [start, end] epoch s (None: none tonight).
    flats_dusk: list | None = None
    flats_dawn: list | None = None
    flats_done: dict = field(default_factory=dict)  # "dusk"/"dawn" -> the end of the interval it was done for
    end_normal: bool = False  # the night ends normally (window closed, sequence or season done): dawn flats and
    calibrated: bool = False  # calibration follow; calibrated: the end-of-night calibration has run

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Snapshot":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def unsafe_reason(snap: Snapshot, plan: NightPlan, now: float) -> str | None:
    """Why the weather is unsafe now, or None when it is safe (or not watched)."""
    if not plan.weather:
        return None
    if snap.weather_lost:
        return f"weather device gone: {snap.weather_lost}"
    if snap.last_weather is None or now - snap.last_weather > plan.stale_after:
        age = "ever" if snap.last_weather is None else f"{now - snap.last_weather:.0f} s"
        return f"no weather data for {age} (safety.stale_after {plan.stale_after:g} s)"
    if snap.weather_status == "alert":
        return "weather alert (WEATHER_STATUS)"
    return None


def note_weather(snap: Snapshot, event: Ev, data, now: float, plan: NightPlan) -> None:
    """Keep the weather an event brings (WEATHER, WEATHER_LOST) and when the safe run began."""
    was_safe = unsafe_reason(snap, plan, now) is None
    if event is Ev.WEATHER:
        snap.weather_status = data.status
        snap.last_weather = now
        snap.weather_lost = None
    elif event is Ev.WEATHER_LOST:
        snap.weather_lost = str(data.reason or "no reason given")
    safe = unsafe_reason(snap, plan, now) is None
    if not safe:
        snap.safe_since = None
    elif not was_safe or snap.safe_since is None:
        snap.safe_since = now
