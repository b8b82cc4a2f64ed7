"""The night as a pure state machine: ``step(snapshot, event, now) -> (snapshot, actions)``.

No PyIndi, no paho, no wall clock: time is the ``now`` argument (seconds since the epoch), the
hardware is the executor's business (indisync.node.night_runner). The machine decides; the executor
runs the actions and feeds back what happened as events.

The transitions are the table ``TRANSITIONS`` below, read as "in STATE, on EVENT, go to TARGET".
Two guards are checked on *every* step, before and after the table:

- safety: while the weather is unsafe (an Alert, no weather data for ``stale_after`` s, or the
  weather device gone) the night can only be in an always-safe state (``ALWAYS_SAFE``); a step
  that would leave it in any other goes to ``unsafe`` instead (abort every exposure, stop guiding,
  park, close the dome). Back to safe, the night waits ``safe_for`` s of continuous safe weather in
  ``parked`` before it slews back and resumes.
- stuck: every busy state has a deadline (``NightPlan.timeouts``); a state past it, and a snapshot
  naming a state this code does not know, go to ``parking``.

The meridian flip (``NightPlan.flip``, indisync.night.meridian): the executor tells the machine the
target's hour angle and the mount's pier side with every ``slewed``, ``frame_done`` and ``flipped``;
the machine carries the hour angle on at the sidereal rate and, between frames only, goes to
``flipping`` when the flip is due or when the next frame would end past the flip's limit (then
the executor holds until the flip is possible). A flipped night re-centres (centering) and guides
again; a flip that left the pier side unchanged parks and ends the night. A refocus due at flip
time is done after the flip.

Entering a state whose step is not configured (no cooling, no slew, no guider, no parking)
passes straight on to the next one (``_enter``), so a config without ``night:`` still images at once.

The snapshot is plain data (``to_dict``/``from_dict``); ``resume`` turns a snapshot read back after
a restart into the state to carry on in (a night parked for rain stays parked until it is safe).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .meridian import FlipSettings, flip_decision, hour_angle_at, seconds_until_hour_angle


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
    UNSAFE = "unsafe"  # weather went bad: aborting, parking, closing
    PARKED = "parked"  # parked for the weather, waiting for safe_for s of safe weather
    PARKING = "parking"  # the night is over (dawn, window end, stop, error): parking for good
    WARMING = "warming"
    DONE = "done"


# States the night may be in whatever the weather: nothing is exposed, the mount is parked or
# being parked (waiting for dark and cooling happen parked, before the mount is unparked).
ALWAYS_SAFE = frozenset({State.WAITING_DARK, State.COOLING, State.UNSAFE, State.PARKED, State.PARKING,
                         State.WARMING, State.DONE})
# States in which the mount is out and the cameras may expose.
ACTIVE = frozenset(State) - ALWAYS_SAFE
END_STATES = frozenset({State.PARKING, State.WARMING, State.DONE})


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
    FRAME_DONE = "frame_done"  # data: {ok, aborted, refocus: reason|None, dither: bool, finished, next_duration}
    DITHERED = "dithered"
    FLIPPED = "flipped"  # data: {pier_side, ha_hours, ha_at}: the pier side changed
    FLIP_FAILED = "flip_failed"  # data: {reason}: it did not (or the slew failed)
    REFOCUSED = "refocused"
    PARKED = "parked"
    PARK_FAILED = "park_failed"  # data: {reason}
    WARMED = "warmed"
    STOP = "stop"  # data: {abort: bool}; `indisync stop`: end the night as at dawn


@dataclass(frozen=True)
class Action:
    """What the machine asks the executor to do. Long actions answer with the event in ``ANSWERS``."""

    kind: str
    args: dict = field(default_factory=dict)


ANSWERS = {  # action -> the event(s) that end it
    "cool": (Ev.COOLED,), "slew": (Ev.SLEWED, Ev.SLEW_FAILED), "center": (Ev.CENTERED,),
    "start_guider": (Ev.GUIDER_STARTED,), "expose": (Ev.FRAME_DONE,), "dither": (Ev.DITHERED,),
    "refocus": (Ev.REFOCUSED,), "flip": (Ev.FLIPPED, Ev.FLIP_FAILED), "park": (Ev.PARKED, Ev.PARK_FAILED), "warm": (Ev.WARMED,),
}
INSTANT_ACTIONS = ("abort_exposures", "stop_guider", "finish")  # no answer expected


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
    flip: bool = False  # watch the meridian (a flip: section, a mount and the target's coordinates)
    flip_settings: FlipSettings = field(default_factory=FlipSettings)
    center: bool = False  # plate-solved centring after each slew (night.center); off: centring passes at once
    center_on_failure: str = "continue"  # acquire.on_failure: continue (image off-centre) | stop (park)
    # Deadlines of busy states (seconds in the state); past it the night is stuck and parks.
    timeouts: dict = field(default_factory=lambda: {
        State.COOLING.value: 1800.0, State.SLEWING.value: 600.0, State.CENTERING.value: 600.0,
        State.STARTING_GUIDER.value: 600.0, State.DITHERING.value: 600.0, State.REFOCUSING.value: 3600.0,
        State.PARKING.value: 600.0, State.WARMING.value: 600.0, State.FLIPPING.value: 2400.0,
    })


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
    pending_refocus: str | None = None  # a refocus that came due with the flip: done after it

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Snapshot":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# ---- the table ------------------------------------------------------------------------------
# (state, event) -> target. A target in <angle brackets> is decided by a function (_DECIDE) from
# the event's data; every other step is the plain move. Pairs not listed leave the night where it
# is (e.g. a late frame_done of an exposure aborted for rain).
S, E = State, Ev
TRANSITIONS: dict[tuple[State, Ev], str] = {
    (S.WAITING_DARK, E.CLOCK): "<dark?>",            # -> cooling once the window has started
    (S.WAITING_DARK, E.WINDOW): "<dark?>",
    (S.COOLING, E.COOLED): S.SLEWING,
    (S.SLEWING, E.SLEWED): S.CENTERING,
    (S.SLEWING, E.SLEW_FAILED): S.PARKING,           # never a hang: park and stop the night
    (S.CENTERING, E.CENTERED): "<centered?>",        # -> starting_guider | parking (acquire.on_failure: stop)
    (S.STARTING_GUIDER, E.GUIDER_STARTED): S.IMAGING,
    (S.IMAGING, E.FRAME_DONE): "<after frame>",      # -> imaging (next frame) | dithering | refocusing | parking
    (S.DITHERING, E.DITHERED): "<next frame>",
    (S.REFOCUSING, E.REFOCUSED): "<next frame>",
    (S.FLIPPING, E.FLIPPED): S.CENTERING,            # re-centre, guide again (centering -> starting_guider)
    (S.FLIPPING, E.FLIP_FAILED): "<flip failed>",    # park and end the night, whatever park_at_end says
    (S.UNSAFE, E.PARKED): S.PARKED,
    (S.UNSAFE, E.PARK_FAILED): "<park failed>",     # try again after park_retry s
    (S.UNSAFE, E.CLOCK): "<retry park?>",
    (S.PARKED, E.CLOCK): "<safe again?>",            # -> slewing after safe_for s of safe weather
    (S.PARKED, E.WEATHER): "<safe again?>",
    (S.PARKING, E.PARKED): S.WARMING,
    (S.PARKING, E.PARK_FAILED): S.WARMING,           # reported; nothing more the machine can do
    (S.WARMING, E.WARMED): S.DONE,
}

# What entering a state asks for.
ENTRY_ACTIONS: dict[State, tuple[str, ...]] = {
    S.COOLING: ("cool",),
    S.SLEWING: ("slew",),
    S.CENTERING: ("center",),
    S.STARTING_GUIDER: ("start_guider",),
    S.DITHERING: ("dither",),
    S.REFOCUSING: ("refocus",),
    S.UNSAFE: ("abort_exposures", "stop_guider", "park"),
    S.PARKING: ("stop_guider", "park"),
    S.WARMING: ("warm",),
    S.DONE: ("finish",),
}


def _skip(plan: NightPlan, state: State) -> State | None:
    """The state to go to instead of ``state`` when its step is not configured."""
    return {
        S.COOLING: None if plan.cool else S.SLEWING,
        S.SLEWING: None if plan.slew else S.STARTING_GUIDER,  # no slew: nothing to centre on either
        S.STARTING_GUIDER: None if plan.guide else S.IMAGING,
        S.PARKING: None if plan.park_at_end else S.WARMING,
        S.WARMING: None if plan.warm_at_end else S.DONE,
    }.get(state)


# ---- safety -----------------------------------------------------------------------------------
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


def _note_weather(snap: Snapshot, event: Ev, data: dict, now: float, plan: NightPlan) -> None:
    was_safe = unsafe_reason(snap, plan, now) is None
    if event is Ev.WEATHER:
        snap.weather_status = data.get("status")
        snap.last_weather = now
        snap.weather_lost = None
    elif event is Ev.WEATHER_LOST:
        snap.weather_lost = str(data.get("reason") or "no reason given")
    safe = unsafe_reason(snap, plan, now) is None
    if not safe:
        snap.safe_since = None
    elif not was_safe or snap.safe_since is None:
        snap.safe_since = now


# ---- step -------------------------------------------------------------------------------------
@dataclass
class _Move:
    target: State
    reason: str
    actions: list[Action] = field(default_factory=list)


def step(snapshot: Snapshot, event: Ev | str, now: float, plan: NightPlan,
         data: dict | None = None) -> tuple[Snapshot, list[Action]]:
    """One event in, the new snapshot and the actions to run out. ``snapshot`` is not modified."""
    snap = dataclasses.replace(snapshot, warnings=list(snapshot.warnings))
    event = Ev(event)
    data = data or {}
    try:
        state = State(snap.state)
    except ValueError:
        return _go(snap, _Move(S.PARKING, f"unknown state {snap.state!r}: parking"), now, plan)
    _note_weather(snap, event, data, now, plan)
    if event is Ev.WINDOW:
        snap.window_start, snap.window_end = data.get("start"), data.get("end")
    if event is Ev.FRAME_DONE:
        snap.finished = bool(data.get("finished", snap.finished))
        if data.get("next_duration") is not None:
            snap.next_duration = float(data["next_duration"])
    if data.get("ha_hours") is not None:
        snap.ha_hours = float(data["ha_hours"])
        snap.ha_at = float(data["ha_at"]) if data.get("ha_at") is not None else now
    if "pier_side" in data:
        snap.pier_side = data["pier_side"]
    if snap.busy and event in ANSWERS.get(snap.busy, ()):
        snap.busy = None

    move = _guards_before(snap, state, event, data, now, plan)
    if move is None:
        target = TRANSITIONS.get((state, event))
        if target is not None:
            move = _DECIDE[target](snap, state, data, now, plan) if target.startswith("<") else \
                _Move(State(target), _reason_for(event, data))
    if move is None:
        snap.until = _until(snap, state, plan)
        return snap, []
    return _go(snap, move, now, plan)


def _guards_before(snap, state, event, data, now, plan) -> _Move | None:
    """Checked on every step before the table: safety, stop by hand, stuck states."""
    why = unsafe_reason(snap, plan, now)
    if event is Ev.STOP and state not in END_STATES and why is not None:
        snap.stop_requested = True  # raining as well: abort, park and end, whatever --abort says
        return _Move(S.PARKING, f"stopped by hand ({why})", [Action("abort_exposures")] if state in ACTIVE else [])
    if why is not None and state in ACTIVE:
        return _Move(S.UNSAFE, why)
    if event is Ev.STOP and state not in END_STATES:
        snap.stop_requested = True
        abort = bool(data.get("abort"))
        if abort or state is not S.IMAGING or snap.busy != "expose":
            actions = [Action("abort_exposures")] if abort and state in ACTIVE else []
            return _Move(S.PARKING, "stopped by hand" + (" (frame aborted)" if abort else ""), actions)
        return None  # the frame under way finishes; the next decision parks
    limit = plan.timeouts.get(state.value)
    if event is Ev.CLOCK and limit is not None and now - snap.since > limit:
        if state is S.PARKING:
            return _Move(S.WARMING, f"stuck in parking for {now - snap.since:.0f} s; warming anyway")
        if state is S.WARMING:
            return _Move(S.DONE, f"stuck in warming for {now - snap.since:.0f} s")
        return _Move(S.PARKING, f"stuck in {state.value} for {now - snap.since:.0f} s (limit {limit:g} s): parking")
    return None


def _reason_for(event: Ev, data: dict) -> str:
    if event is Ev.COOLED:
        missing = data.get("missing") or []
        return "cooled" + (f"; setpoint not reached on {', '.join(missing)}" if missing else "")
    if data.get("reason"):
        return f"{event.value}: {data['reason']}"
    return event.value


def _decide_dark(snap, state, data, now, plan) -> _Move | None:
    if snap.finished:
        return _Move(S.PARKING, "the sequence is already finished: nothing to take tonight")
    if snap.window_start is None or now >= snap.window_start:
        if snap.window_end is not None and now >= snap.window_end:
            return _Move(S.PARKING, "the night's window has already ended")
        return _Move(S.COOLING, "dark: the window has started")
    return None


def _decide_after_frame(snap, state, data, now, plan) -> _Move | None:
    if data.get("aborted"):
        return None  # an aborted frame: whoever aborted it decides what comes next
    flip = None if snap.stop_requested or snap.finished else _flip_due(snap, now, plan)
    if flip is not None:  # the flip first; a refocus due now waits for it, a dither is pointless
        snap.pending_refocus = data.get("refocus") or snap.pending_refocus
        return flip
    if data.get("refocus") and not snap.stop_requested:  # after the last batch too (MaxIm's "... (focus)")
        return _Move(S.REFOCUSING, f"refocus: {data['refocus']}")
    if data.get("dither") and not snap.finished and not snap.stop_requested:
        return _Move(S.DITHERING, "dither")
    return _decide_next_frame(snap, state, data, now, plan)


def _decide_centered(snap, state, data, now, plan) -> _Move | None:
    attempts = data.get("attempts")
    tried = f" in {attempts} attempt(s)" if attempts else ""
    if data.get("ok", True):
        error = data.get("error_arcsec")
        what = f"centred: {error:.1f}\" from the target{tried}" if error is not None else \
            f"centred ({data.get('reason') or 'no acquisition configured'})"
        return _Move(S.STARTING_GUIDER, what)
    why = f"centring failed{tried}: {data.get('reason') or 'no reason given'}"
    if plan.center_on_failure == "stop":
        return _Move(S.PARKING, f"{why}; parking (acquire.on_failure: stop)")
    snap.warnings = (snap.warnings + [why[:300]])[-20:]  # a long night of failed centrings stays readable
    return _Move(S.STARTING_GUIDER, f"{why}; imaging off-centre (acquire.on_failure: continue)")


def _decide_next_frame(snap, state, data, now, plan) -> _Move | None:
    if snap.stop_requested:
        return _Move(S.PARKING, "stopped by hand")
    if snap.finished:
        return _Move(S.PARKING, "the sequence is finished")
    if snap.window_end is not None and now + snap.next_duration > snap.window_end:
        return _Move(S.PARKING, f"end of the night: the next frame ({snap.next_duration:g} s) would end after "
                                f"the window closes")
    flip = _flip_due(snap, now, plan)
    if flip is not None:
        return flip
    if snap.pending_refocus:
        reason, snap.pending_refocus = snap.pending_refocus, None
        return _Move(S.REFOCUSING, f"refocus (held for the meridian flip): {reason}")
    return _Move(S.IMAGING, "next frame", [Action("expose")])


def _flip_due(snap, now, plan) -> _Move | None:
    """The move to ``flipping`` when the flip is due or the next frame would end past its limit."""
    if not plan.flip or snap.ha_hours is None:
        return None
    settings = plan.flip_settings
    ha = hour_angle_at(snap.ha_hours, snap.ha_at if snap.ha_at is not None else now, now)
    decision = flip_decision(ha, snap.pier_side, snap.next_duration, settings)
    if decision == "go":
        return None
    snap.flip_at = now + seconds_until_hour_angle(ha, settings.after_meridian_min / 60.0)
    where = f"hour angle {ha * 60:+.1f} min, pier side {snap.pier_side or 'not reported'}"
    if decision == "flip":
        reason = f"meridian flip ({where})"
    else:
        at = _utc_clock(snap.flip_at)
        reason = (f"waiting for the meridian flip at {at} UTC ({where}; the next {snap.next_duration:g} s frame would "
                  f"end past flip.after_meridian_min + max_wait_min = {settings.limit_min:g} min)")
    return _Move(S.FLIPPING, reason, [Action("flip", {"at": snap.flip_at})])


def _utc_clock(epoch: float) -> str:
    """HH:MM:SS (UTC) of an epoch, without reading any clock."""
    seconds = int(round(epoch)) % 86400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _decide_flip_failed(snap, state, data, now, plan) -> _Move | None:
    # Never a wait without end, never imaging on the wrong side of the pier: park (even with
    # park_at_end off) and end the night.
    snap.stop_requested = True
    return _Move(S.PARKING, f"meridian flip failed: {data.get('reason') or 'no reason given'}; parking, the night "
                            "ends", [Action("stop_guider"), Action("park")])


def _decide_park_failed(snap, state, data, now, plan) -> _Move | None:
    snap.retry_at = now + plan.park_retry
    snap.reason = f"park failed ({data.get('reason') or 'no reason given'}); trying again in {plan.park_retry:g} s"
    return None


def _decide_retry_park(snap, state, data, now, plan) -> _Move | None:
    if snap.retry_at is not None and snap.busy is None and now >= snap.retry_at:
        snap.retry_at = None
        snap.busy = "park"
        return _Move(S.UNSAFE, "trying to park again", [Action("park")])
    return None


def _decide_safe_again(snap, state, data, now, plan) -> _Move | None:
    if unsafe_reason(snap, plan, now) is not None or snap.safe_since is None:
        return None
    if snap.window_end is not None and now + snap.next_duration > snap.window_end:
        return _Move(S.WARMING, "safe again, but the night's window has ended (already parked)")
    if now - snap.safe_since >= plan.safe_for:
        return _Move(S.SLEWING, f"safe for {now - snap.safe_since:.0f} s: resuming")
    return None


_DECIDE = {"<dark?>": _decide_dark, "<after frame>": _decide_after_frame, "<next frame>": _decide_next_frame,
           "<park failed>": _decide_park_failed, "<flip failed>": _decide_flip_failed,
           "<centered?>": _decide_centered,
           "<retry park?>": _decide_retry_park, "<safe again?>": _decide_safe_again}


def _go(snap: Snapshot, move: _Move, now: float, plan: NightPlan) -> tuple[Snapshot, list[Action]]:
    """Enter ``move.target`` (passing over steps that are not configured), with the safety guard:
    while unsafe, a step into an active state goes to ``unsafe`` instead."""
    actions = list(move.actions)
    target, reason = move.target, move.reason
    for _ in range(len(State)):
        skip = _skip(plan, target)
        if skip is None:
            break
        target = skip
    if target in ACTIVE:
        why = unsafe_reason(snap, plan, now)
        if why is not None:  # the safety guard: entering unsafe aborts, stops guiding and parks anyway
            target, reason, actions = S.UNSAFE, why, []
    previous = State(snap.state) if snap.state in State._value2member_map_ else None
    if target is not previous:
        snap.since = now
        actions += [Action(kind) for kind in ENTRY_ACTIONS.get(target, ()) if not any(a.kind == kind for a in actions)]
    if target is S.IMAGING and not any(a.kind == "expose" for a in actions):
        nxt = _decide_next_frame(snap, target, {}, now, plan)
        if nxt.target is not S.IMAGING:
            return _go(snap, nxt, now, plan)
        actions += nxt.actions
    if target is S.UNSAFE:
        snap.retry_at = None
    snap.state, snap.reason = target.value, reason
    long = [a.kind for a in actions if a.kind in ANSWERS]
    snap.busy = long[-1] if long else (snap.busy if target is previous else None)
    snap.until = _until(snap, target, plan)
    return snap, actions


def _until(snap: Snapshot, state: State, plan: NightPlan) -> float | None:
    if state is S.WAITING_DARK:
        return snap.window_start
    if state is S.PARKED:
        return snap.safe_since + plan.safe_for if snap.safe_since is not None else None
    if state is S.FLIPPING and snap.flip_at is not None and snap.busy == "flip":
        return snap.flip_at
    if state in (S.IMAGING, S.DITHERING, S.REFOCUSING, S.STARTING_GUIDER, S.CENTERING, S.SLEWING, S.FLIPPING):
        return snap.window_end
    limit = plan.timeouts.get(state.value)
    return snap.since + limit if limit is not None else None


# ---- restart ----------------------------------------------------------------------------------
RESUME: dict[State, State] = {  # the saved state -> where a restarted master carries on
    S.WAITING_DARK: S.WAITING_DARK,
    S.COOLING: S.COOLING,  # cool again: the cameras may have warmed while we were down
    S.SLEWING: S.SLEWING, S.CENTERING: S.SLEWING, S.STARTING_GUIDER: S.SLEWING,  # the mount may have moved:
    S.IMAGING: S.SLEWING, S.DITHERING: S.SLEWING, S.REFOCUSING: S.SLEWING,      # point, guide, image again
    S.FLIPPING: S.SLEWING,  # the slew lands on whichever side the hour angle puts it; the machine checks
    S.UNSAFE: S.UNSAFE,  # park again (idempotent): we do not know it finished
    S.PARKED: S.PARKED,  # parked for rain stays parked until safe for safe_for
    S.PARKING: S.PARKING, S.WARMING: S.WARMING,
}


def start(now: float, plan: NightPlan, window_start: float | None, window_end: float | None,
          next_duration: float = 0.0, finished: bool = False) -> tuple[Snapshot, list[Action]]:
    """A fresh night."""
    snap = Snapshot(since=now, window_start=window_start, window_end=window_end, next_duration=next_duration,
                    finished=finished, last_weather=now)  # weather: stale_after of grace from the start
    snap, actions = _go(snap, _Move(S.WAITING_DARK, "start of the night"), now, plan)
    more_snap, more = step(snap, Ev.CLOCK, now, plan)
    return more_snap, actions + more


def resume(saved: Snapshot, now: float, plan: NightPlan, window_start: float | None, window_end: float | None,
           next_duration: float = 0.0, finished: bool = False) -> tuple[Snapshot, list[Action]]:
    """Carry on after a restart from the snapshot read back. A finished night (done) starts afresh;
    an active one whose new window has not started yet waits for dark; one parked for the weather
    needs safe_for s of safe weather counted from now (we do not know what happened meanwhile)."""
    try:
        state = State(saved.state)
    except ValueError:
        state = None
    if state is S.DONE:
        return start(now, plan, window_start, window_end, next_duration, finished)
    snap = dataclasses.replace(saved, window_start=window_start, window_end=window_end, next_duration=next_duration,
                               finished=finished, busy=None, safe_since=None, retry_at=None, last_weather=now,
                               weather_lost=None, weather_status=saved.weather_status, warnings=[])
    if state is None:
        return _go(snap, _Move(S.PARKING, f"unknown saved state {saved.state!r}: parking"), now, plan)
    target = RESUME[state]
    if target in ACTIVE and window_start is not None and now < window_start:
        target = S.WAITING_DARK
    snap.state = "restarting"  # so that entering ``target`` runs its entry actions again
    snap, actions = _go(snap, _Move(target, f"restarted in {state.value}"), now, plan)
    if State(snap.state) is S.WAITING_DARK:
        more_snap, more = step(snap, Ev.CLOCK, now, plan)
        return more_snap, actions + more
    return snap, actions


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """The night's state as published (times stay epoch seconds; the executor formats them)."""
    return {"state": snapshot.state, "since": snapshot.since, "until": snapshot.until, "reason": snapshot.reason}
