"""The night as a pure state machine: ``step(snapshot, event, now) -> (snapshot, actions)``.

No PyIndi, no paho, no wall clock: time is the ``now`` argument (seconds since the epoch), the
hardware is the executor's business (indisync.night.executor). The machine decides; the executor
runs the actions and feeds back what happened as events.

The transitions are the table ``TRANSITIONS`` below, read as "in STATE, on EVENT, go to TARGET".
Two guards are checked on *every* step, before and after the table:

- safety: while the weather is unsafe (an Alert, no weather data for ``stale_after`` s, or the
  weather device gone) the night can only be in an always-safe state (``ALWAYS_SAFE``); a step
  that would leave it in any other goes to ``unsafe`` instead (abort every exposure, stop guiding,
  park, close the dome). Back to safe, the night waits ``safe_for`` s of continuous safe weather in
  ``parked`` before it slews back and resumes.
  A rig that may be out (not ``secured`` by a park this night) counts as exposed in waiting_dark
  and cooling too: rain there parks it.
- the window (I2, I3): past the window's end every state that may have the mount out (imaging
  waiting for a guide star, cooling, unsafe, parked for rain) goes to ``parking``; before its start
  (a start or restart in daylight, a clock jump) an unsecured rig goes to ``securing`` (park and
  close), then waits for dark.
- stuck: every busy state has a deadline (``NightPlan.timeouts``); a state past it, and a snapshot
  naming a state this code does not know, go to ``parking``.

A park that fails (in securing, unsafe or parking) is asked for again every ``park_retry`` s until
it succeeds, never given up (I4). A failure, the window's end or rain parks whatever park_at_end
says (``must_park``). A frame not taken (``frame_done`` with ok false) is not counted: the same slot
is taken again after ``frame_retry`` s (I6).

The meridian flip (``NightPlan.flip``, indisync.night.meridian): the executor tells the machine the
target's hour angle and the mount's pier side with every ``slewed``, ``frame_done`` and ``flipped``;
the machine carries the hour angle on at the sidereal rate and, between frames only, goes to
``flipping`` when the flip is due or when the next frame would end past the flip's limit (then
the executor holds until the flip is possible). A flipped night re-centres (centering) and guides
again; a flip that left the pier side unchanged parks and ends the night. A refocus due at flip
time is done after the flip.

The season (indisync.season.runtime, a scheduler: section): a ``frame_done`` with ``switch`` (why,
in words) moves the night to the next target: stop_guider, then slewing -> centering -> (rotate) ->
starting_guider -> imaging, as after the start; a refocus due with it is done once there. The
scheduler decides; the machine only follows the frame's answer.

Calibration (flats:, darks:; decided in calib_steps.py, which says more). Sky flats have the mount
out outside the window, in their state and inside their interval only (the sun between
flats.sun_altitude), entered after ``safe_for`` s of safe weather; rain there is rain as anywhere:

    waiting_dark -> dusk_flats -> securing -> waiting_dark (or cooling, the window started) -> ...
    ... -> parking -> waiting_dawn -> dawn_flats -> parking -> calibrating -> warming -> done

Only a normal end (the window closed, the sequence or season finished) goes on to the dawn flats
and calibrating; a stop by hand or a failure warms. Parked for rain, darks (``darks_when_parked``).

Entering a state whose step is not configured (no cooling, no slew, no guider, no parking)
passes straight on to the next one (``_enter``), so a config without ``night:`` still images at once.

The snapshot is plain data (``to_dict``/``from_dict``); ``resume`` turns a snapshot read back after
a restart into the state to carry on in, making the rig safe for that hour first (I2).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import calib_steps as calib
from .calib_steps import utc_clock as _utc_clock
from .events import Ev, Payload, WeatherLost, WeatherUpdate, payload_for
from .meridian import FlipSettings, flip_decision, hour_angle_at, seconds_until_hour_angle
from .state import (ACTIVE, AFTER_NIGHT, ALWAYS_SAFE, ANSWERS, END_STATES, FLATS_STATES, INSTANT_ACTIONS,
                    PARKING_STATES, Action, Move, NightPlan, Snapshot, State, note_weather, unsafe_reason)

__all__ = ["ACTIVE", "ALWAYS_SAFE", "ANSWERS", "END_STATES", "INSTANT_ACTIONS", "PARKING_STATES", "Action", "Ev",
           "FlipSettings", "NightPlan", "Snapshot", "State", "describe", "resume", "start", "step"]


# ---- the table ------------------------------------------------------------------------------
# (state, event) -> target. A target in <angle brackets> is decided by a function (_DECIDE) from
# the event's data; every other step is the plain move. Pairs not listed leave the night where it
# is (e.g. a late frame_done of an exposure aborted for rain).
S, E = State, Ev
TRANSITIONS: dict[tuple[State, Ev], str] = {
    (S.WAITING_DARK, E.CLOCK): "<dark?>",            # -> cooling once the window has started
    (S.WAITING_DARK, E.WINDOW): "<dark?>",
    (S.WAITING_DARK, E.FLAT_WINDOWS): "<dark?>",      # -> dusk_flats inside the dusk interval (safe for safe_for)
    (S.DUSK_FLATS, E.FLATS_DONE): "<flats done>",    # -> securing before the window | cooling
    (S.DUSK_FLATS, E.CLOCK): "<flats over?>",        # past the interval's end + flats_overrun: left, done
    (S.COOLING, E.COOLED): S.SLEWING,
    (S.SLEWING, E.SLEWED): S.CENTERING,
    (S.SLEWING, E.SLEW_FAILED): "<failed: park>",    # never a hang: park and stop the night
    (S.CENTERING, E.CENTERED): "<centered?>",        # -> starting_guider | parking (acquire.on_failure: stop)
    (S.STARTING_GUIDER, E.GUIDER_STARTED): S.IMAGING,
    (S.IMAGING, E.FRAME_DONE): "<after frame>",      # -> imaging | dithering | refocusing | slewing (a switch) | parking
    (S.IMAGING, E.CLOCK): "<retry frame?>",          # a frame not taken (outage): the same slot again after frame_retry
    (S.DITHERING, E.DITHERED): "<next frame>",
    (S.REFOCUSING, E.REFOCUSED): "<next frame>",
    (S.FLIPPING, E.FLIPPED): S.CENTERING,            # re-centre, guide again (centering -> starting_guider)
    (S.FLIPPING, E.FLIP_FAILED): "<flip failed>",    # park and end the night, whatever park_at_end says
    (S.UNSAFE, E.PARKED): S.PARKED,
    (S.UNSAFE, E.PARK_FAILED): "<park failed>",     # try again after park_retry s
    (S.UNSAFE, E.CLOCK): "<retry park?>",
    (S.PARKED, E.CLOCK): "<safe again?>",            # -> slewing after safe_for s of safe weather
    (S.PARKED, E.WEATHER): "<safe again?>",          # (before the window inside the dusk interval: dusk_flats)
    (S.PARKED, E.DARKS_DONE): "<darks done>",        # stays parked; the reason says what the darks did
    (S.PARKING, E.PARKED): "<after the night>",      # -> waiting_dawn | calibrating (a normal end) | warming
    (S.PARKING, E.PARK_FAILED): "<park failed>",     # tried again until it parks (I4), never given up
    (S.PARKING, E.CLOCK): "<retry park?>",
    (S.SECURING, E.PARKED): "<dark?>",               # safe for this hour: wait for dark (or go on if it is)
    (S.SECURING, E.PARK_FAILED): "<park failed>",
    (S.SECURING, E.CLOCK): "<retry park?>",
    (S.WAITING_DAWN, E.CLOCK): "<dawn?>",            # -> dawn_flats inside the dawn interval (safe for safe_for);
                                                     #    past it: calibrating | warming
    (S.WAITING_DAWN, E.FLAT_WINDOWS): "<dawn?>",
    (S.DAWN_FLATS, E.FLATS_DONE): "<flats done>",    # -> parking (then calibrating | warming)
    (S.DAWN_FLATS, E.CLOCK): "<flats over?>",
    (S.CALIBRATING, E.CALIBRATED): "<calibrated>",   # -> warming
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
    S.SECURING: ("stop_guider", "park"),
    S.WARMING: ("warm",),
    S.DONE: ("finish",),
    S.DUSK_FLATS: ("sky_flats",),  # {"direction": "dusk"} (_entry)
    S.DAWN_FLATS: ("sky_flats",),
    S.CALIBRATING: ("calibrate",),
    S.PARKED: ("darks",),  # only with NightPlan.darks_when_parked (_entry)
}


def _entry(plan: NightPlan, state: State) -> list[Action]:
    if state is S.PARKED and not plan.darks_when_parked:
        return []
    args = {"direction": calib.DIRECTION[state]} if state in FLATS_STATES else {}
    return [Action(kind, args) for kind in ENTRY_ACTIONS.get(state, ())]


def _skip(plan: NightPlan, snap: Snapshot, state: State, now: float) -> State | None:
    """The state to go to instead of ``state`` when its step is not configured. Parking is skipped
    only when there is nothing to park, or when park_at_end is off and the night ends normally (the
    sequence finished, a stop by hand): a failure, the window's end or rain park anyway; so do dawn
    flats ahead (the rig waits for them parked). Skipped, it goes where its park answer would."""
    must_park = plan.can_park and (snap.must_park or (snap.end_normal and calib.pending(snap, plan, "dawn", now)))
    if state is S.PARKING and not (plan.park_at_end or must_park):
        return calib.after_night(snap, plan, now).target
    return {
        S.COOLING: None if plan.cool else S.SLEWING,
        S.SLEWING: None if plan.slew else S.STARTING_GUIDER,  # no slew: nothing to centre on either
        S.STARTING_GUIDER: None if plan.guide else S.IMAGING,
        S.SECURING: None if plan.can_park else S.WAITING_DARK,
        S.WARMING: None if plan.warm_at_end else S.DONE,
    }.get(state)


# ---- step -------------------------------------------------------------------------------------
_Move = Move


def step(snapshot: Snapshot, event: Ev | str, now: float, plan: NightPlan,
         data: Payload | dict | None = None) -> tuple[Snapshot, list[Action]]:
    """One event in (its payload, indisync.night.events, or a dict of the payload's fields), the new
    snapshot and the actions to run out. ``snapshot`` is not modified."""
    snap = dataclasses.replace(snapshot, warnings=list(snapshot.warnings), flats_done=dict(snapshot.flats_done))
    event = Ev(event)
    data = payload_for(event, data)
    try:
        state = State(snap.state)
    except ValueError:
        return _go(snap, _Move(S.PARKING, f"unknown state {snap.state!r}: parking"), now, plan)
    note_weather(snap, event, data, now, plan)
    if event is Ev.WINDOW:
        snap.window_start, snap.window_end = data.start, data.end
    if event is Ev.FLAT_WINDOWS:
        snap.flats_dusk, snap.flats_dawn = calib.span(data.dusk), calib.span(data.dawn)
    if event is Ev.FRAME_DONE:
        if data.finished is not None:
            snap.finished = bool(data.finished)
        if data.next_duration is not None:
            snap.next_duration = float(data.next_duration)
    if data.ha_hours is not None:
        snap.ha_hours = float(data.ha_hours)
        snap.ha_at = float(data.ha_at) if data.ha_at is not None else now
    if data.ha_at is not None or data.pier_side is not None:  # where the mount points, as read: None = not said
        snap.pier_side = data.pier_side
    if snap.busy and event in ANSWERS.get(snap.busy, ()):
        snap.busy = None
    if event is Ev.PARKED and state in PARKING_STATES:
        snap.secured = True

    move = _guards_before(snap, state, event, data, now, plan)
    if move is None:
        target = TRANSITIONS.get((state, event))
        if target is not None:
            move = _DECIDE[target](snap, state, data, now, plan) if target.startswith("<") else \
                _Move(State(target), _reason_for(event, data))
    if move is None:
        snap.until = _until(snap, state, plan, now)
        return snap, []
    return _go(snap, move, now, plan)


def _guards_before(snap, state, event, data, now, plan) -> _Move | None:
    """Checked on every step before the table: safety, stop by hand, stuck states."""
    why = unsafe_reason(snap, plan, now)
    if event is Ev.STOP and state not in END_STATES and why is not None:
        snap.stop_requested = True  # raining as well: abort, park and end, whatever --abort says
        return _Move(S.PARKING, f"stopped by hand ({why})", [Action("abort_exposures")] if state in ACTIVE else [],
                     must_park=True)
    exposed = state in ACTIVE or (not snap.secured and plan.can_park and state in (S.WAITING_DARK, S.COOLING,
                                                                                    S.WAITING_DAWN))
    if why is not None and exposed:  # I1: the mount may be out: park and close
        return _Move(S.UNSAFE, why)
    move = _outside_window(snap, state, now, plan)
    if move is not None:
        return move
    if event is Ev.STOP and state not in END_STATES:
        snap.stop_requested = True
        abort = bool(data.abort)
        if abort or state is not S.IMAGING or snap.busy != "expose":
            actions = [Action("abort_exposures")] if abort and state in ACTIVE else []
            return _Move(S.PARKING, "stopped by hand" + (" (frame aborted)" if abort else ""), actions)
        return None  # the frame under way finishes; the next decision parks
    limit = plan.timeouts.get(state.value)
    if event is Ev.CLOCK and limit is not None and now - snap.since > limit:
        if state is S.PARKING:  # never given up: a park without an answer is asked for again
            snap.since, snap.retry_at, snap.busy = now, None, "park"
            return _Move(S.PARKING, f"no answer to the park for {limit:g} s: parking again", [Action("park")])
        if state is S.WARMING:
            return _Move(S.DONE, f"stuck in warming for {now - snap.since:.0f} s")
        move = calib.stuck(snap, state, now, limit, plan)  # flats given up, calibration ended: the night goes on
        if move is not None:
            return move
        return _Move(S.PARKING, f"stuck in {state.value} for {now - snap.since:.0f} s (limit {limit:g} s): parking",
                     must_park=True)
    return None


def _outside_window(snap, state, now, plan) -> _Move | None:
    """I2 and I3: the mount is out only inside the usable window. Past its end every state that may
    have the mount out (imaging waiting for a guide star, parked or parking for rain) goes to the
    night's end; before its start (a restart or a clock jump) an unsecured rig is parked first. Sky
    flats are out of it inside their own interval (+ flats_overrun)."""
    if state in FLATS_STATES:  # out only inside its interval (+ flats_overrun): else left, as done
        return calib.outside_interval(snap, state, now, plan)
    if snap.window_end is not None and now >= snap.window_end:
        if state in ACTIVE or state in (S.COOLING, S.UNSAFE, S.PARKED):
            actions = [Action("abort_exposures")] if state in ACTIVE else []
            return _Move(S.PARKING, "end of the night: the window has closed", actions, must_park=True,
                         normal_end=True)
        return None
    if snap.window_start is not None and now < snap.window_start and not snap.secured and plan.can_park:
        if state in ACTIVE or state in (S.COOLING, S.WAITING_DARK):
            actions = [Action("abort_exposures")] if state in ACTIVE else []
            return _Move(S.SECURING, "outside the night's window: parking and closing before waiting for dark",
                         actions)
    return None


def _reason_for(event: Ev, data: Payload) -> str:
    if event is Ev.COOLED:
        missing = data.missing
        return "cooled" + (f"; setpoint not reached on {', '.join(missing)}" if missing else "")
    if data.reason:
        return f"{event.value}: {data.reason}"
    return event.value


def _decide_dark(snap, state, data, now, plan) -> _Move | None:
    if snap.finished:
        return _Move(S.PARKING, "the sequence is already finished: nothing to take tonight", normal_end=True)
    flats = calib.dusk_due(snap, plan, now, unsafe_reason(snap, plan, now))
    if flats is not None:
        return flats
    if snap.window_start is None or now >= snap.window_start:
        if snap.window_end is not None and now >= snap.window_end:
            return _Move(S.PARKING, "the night's window has already ended", must_park=True, normal_end=True)
        return _Move(S.COOLING, "dark: the window has started")
    if state is S.SECURING:
        return _Move(S.WAITING_DARK, "parked and closed: waiting for dark")
    return None


def _decide_failed_park(snap, state, data, now, plan) -> _Move | None:
    return _Move(S.PARKING, _reason_for(Ev.SLEW_FAILED, data), must_park=True)


def _decide_after_frame(snap, state, data, now, plan) -> _Move | None:
    if data.aborted:  # an aborted frame: whoever aborted it decides what comes next (a stop by hand: parking)
        return _Move(S.PARKING, "stopped by hand") if snap.stop_requested else None
    if not data.ok and not snap.stop_requested:  # I6: not taken, not counted: pause, then again
        snap.retry_at = now + plan.frame_retry
        snap.reason = (f"frame not taken ({data.reason or 'no reason given'}); the same slot again in "
                       f"{plan.frame_retry:g} s")[:500]
        return None
    if data.switch and not snap.stop_requested and not snap.finished:
        # The season moves on: stop guiding, slew, centre, guide, image there. No flip for the old
        # target, no dither; a refocus due now is done once there.
        snap.pending_refocus = data.refocus or snap.pending_refocus
        if snap.pending_refocus:
            snap.refocus_held_for = "the slew to the next target"
        return _Move(S.SLEWING, f"next target: {data.switch}"[:500], [Action("stop_guider")])
    flip = None if snap.stop_requested or snap.finished else _flip_due(snap, now, plan)
    if flip is not None:  # the flip first; a refocus due now waits for it, a dither is pointless
        snap.pending_refocus = data.refocus or snap.pending_refocus
        snap.refocus_held_for = "the meridian flip"
        return flip
    if data.refocus and not snap.stop_requested:  # after the last batch too (MaxIm's "... (focus)")
        return _Move(S.REFOCUSING, f"refocus: {data.refocus}")
    if data.dither and not snap.finished and not snap.stop_requested:
        return _Move(S.DITHERING, "dither")
    return _decide_next_frame(snap, state, data, now, plan)


def _decide_centered(snap, state, data, now, plan) -> _Move | None:
    attempts = data.attempts
    tried = f" in {attempts} attempt(s)" if attempts else ""
    if data.ok:
        error = data.error_arcsec
        what = f"centred: {error:.1f}\" from the target{tried}" if error is not None else \
            f"centring skipped: {data.reason or 'no acquisition configured'}"
        return _Move(S.STARTING_GUIDER, what)
    why = f"centring failed{tried}: {data.reason or 'no reason given'}"
    if plan.center_on_failure == "stop":
        return _Move(S.PARKING, f"{why}; parking (acquire.on_failure: stop)", must_park=True)
    snap.warnings = (snap.warnings + [why[:300]])[-20:]  # a long night of failed centrings stays readable
    return _Move(S.STARTING_GUIDER, f"{why}; imaging off-centre (acquire.on_failure: continue)")


def _decide_next_frame(snap, state, data, now, plan) -> _Move | None:
    if snap.stop_requested:
        return _Move(S.PARKING, "stopped by hand")
    if snap.finished:
        return _Move(S.PARKING, "the sequence is finished", normal_end=True)
    if snap.window_end is not None and now + snap.next_duration > snap.window_end:
        return _Move(S.PARKING, f"end of the night: the next frame ({snap.next_duration:g} s) would end after "
                                f"the window closes", normal_end=True)
    flip = _flip_due(snap, now, plan)
    if flip is not None:
        return flip
    if snap.pending_refocus:
        reason, snap.pending_refocus = snap.pending_refocus, None
        held_for, snap.refocus_held_for = snap.refocus_held_for, "the meridian flip"
        return _Move(S.REFOCUSING, f"refocus (held for {held_for}): {reason}")
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


def _decide_flip_failed(snap, state, data, now, plan) -> _Move | None:
    # Never a wait without end, never imaging on the wrong side of the pier: park (even with
    # park_at_end off) and end the night.
    snap.stop_requested = True
    return _Move(S.PARKING, f"meridian flip failed: {data.reason or 'no reason given'}; parking, the night "
                            "ends", [Action("stop_guider"), Action("park")], must_park=True)


def _decide_park_failed(snap, state, data, now, plan) -> _Move | None:
    snap.retry_at = now + plan.park_retry
    snap.reason = f"park failed ({data.reason or 'no reason given'}); trying again in {plan.park_retry:g} s"
    return None


def _decide_retry_park(snap, state, data, now, plan) -> _Move | None:
    if snap.retry_at is not None and snap.busy is None and now >= snap.retry_at:
        snap.retry_at = None
        snap.busy = "park"
        return _Move(state, "trying to park again", [Action("park")])
    return None


def _decide_retry_frame(snap, state, data, now, plan) -> _Move | None:
    if snap.retry_at is not None and snap.busy is None and now >= snap.retry_at:
        snap.retry_at = None
        return _decide_next_frame(snap, state, data, now, plan)
    return None


def _decide_safe_again(snap, state, data, now, plan) -> _Move | None:
    why = unsafe_reason(snap, plan, now)
    if why is not None or snap.safe_since is None:
        return None
    if snap.window_end is not None and now + snap.next_duration > snap.window_end:
        snap.end_normal = True  # already parked: on to the dawn flats, calibration or warming
        return calib.after_night(snap, plan, now, "safe again, but the night's window has ended (already parked)")
    if snap.window_start is not None and now < snap.window_start:
        return calib.parked_before_dark(snap, plan, now, why)
    if now - snap.safe_since >= plan.safe_for:
        return _Move(S.SLEWING, f"safe for {now - snap.safe_since:.0f} s: resuming")
    return None


_DECIDE = {"<dark?>": _decide_dark, "<failed: park>": _decide_failed_park, "<retry frame?>": _decide_retry_frame, "<after frame>": _decide_after_frame, "<next frame>": _decide_next_frame,
           "<park failed>": _decide_park_failed, "<flip failed>": _decide_flip_failed,
           "<centered?>": _decide_centered,
           "<retry park?>": _decide_retry_park, "<safe again?>": _decide_safe_again,
           **calib.DECIDE}  # the calibration's (calib_steps.py)


def _go(snap: Snapshot, move: _Move, now: float, plan: NightPlan) -> tuple[Snapshot, list[Action]]:
    """Enter ``move.target`` (passing over steps that are not configured), with the safety guard:
    while unsafe, a step into an active state goes to ``unsafe`` instead."""
    actions = list(move.actions)
    target, reason = move.target, move.reason
    snap.must_park = snap.must_park or move.must_park
    snap.end_normal = snap.end_normal or move.normal_end
    for _ in range(len(State)):
        skip = _skip(plan, snap, target, now)
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
        snap.retry_at = None  # a retry belongs to the state that scheduled it
        if target is S.SLEWING or target in FLATS_STATES:
            snap.secured = False  # the slew (the flats' slew to the flat spot) unparks and opens
        actions += [a for a in _entry(plan, target) if not any(b.kind == a.kind for b in actions)]
    if target is S.IMAGING and not any(a.kind == "expose" for a in actions):
        nxt = _decide_next_frame(snap, target, {}, now, plan)
        if nxt.target is not S.IMAGING:
            return _go(snap, nxt, now, plan)
        actions += nxt.actions
    snap.state, snap.reason = target.value, reason
    long = [a.kind for a in actions if a.kind in ANSWERS]
    snap.busy = long[-1] if long else (snap.busy if target is previous else None)
    snap.until = _until(snap, target, plan, now)
    return snap, actions


def _until(snap: Snapshot, state: State, plan: NightPlan, now: float) -> float | None:
    if state in (S.WAITING_DARK, S.WAITING_DAWN) or state in FLATS_STATES:
        return calib.waiting_until(snap, plan, state, now)
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
    S.PARKED: S.UNSAFE,  # parked for rain: park again (someone may have moved it), then safe_for from now
    S.SECURING: S.SECURING,
    S.PARKING: S.PARKING, S.WARMING: S.WARMING,
    S.DUSK_FLATS: S.WAITING_DARK,  # park and close first (securing), then the dusk flats again inside their interval
    # after a normal end: park again (we do not know where the mount is), then on where the night was
    S.WAITING_DAWN: S.PARKING, S.DAWN_FLATS: S.PARKING, S.CALIBRATING: S.PARKING,
}


def _first_weather(snap: Snapshot, weather: Payload | None, now: float) -> None:
    """The weather as read at (re)start, before any action: a fresh reading (WeatherUpdate), or the
    reason there is none (WeatherLost: unsafe until the watch has one). None: no reading was taken
    (scripted tests): stale_after of grace from now."""
    snap.last_weather, snap.weather_lost = now, None
    if isinstance(weather, WeatherUpdate):
        snap.weather_status = weather.status
    elif isinstance(weather, WeatherLost):
        snap.weather_lost = weather.reason or "no weather reading at the start"


def start(now: float, plan: NightPlan, window_start: float | None, window_end: float | None,
          next_duration: float = 0.0, finished: bool = False,
          weather: Payload | None = None, flats: tuple = (None, None)) -> tuple[Snapshot, list[Action]]:
    """A fresh night (``weather``: the reading taken before it, see ``_first_weather``; ``flats``:
    tonight's (dusk, dawn) sky-flats intervals, each (start, end) epoch s or None)."""
    snap = Snapshot(since=now, window_start=window_start, window_end=window_end, next_duration=next_duration,
                    finished=finished, secured=not plan.can_park,  # where the mount is, nobody knows yet
                    flats_dusk=calib.span(flats[0]), flats_dawn=calib.span(flats[1]))
    _first_weather(snap, weather, now)
    snap, actions = _go(snap, _Move(S.WAITING_DARK, "start of the night"), now, plan)
    more_snap, more = step(snap, Ev.CLOCK, now, plan)
    return more_snap, actions + more


def resume(saved: Snapshot, now: float, plan: NightPlan, window_start: float | None, window_end: float | None,
           next_duration: float = 0.0, finished: bool = False,
           weather: Payload | None = None, flats: tuple = (None, None)) -> tuple[Snapshot, list[Action]]:
    """Carry on after a restart from the snapshot read back, at whatever hour it is (I2). A finished
    night (done) starts afresh. Outside the window the rig is made safe first: before it, parked and
    closed (securing), then it waits for dark; after it, the night ends (parking). Inside it an active
    night points, guides and images again; one parked for the weather parks again and needs safe_for
    s of safe weather counted from now (we do not know what happened meanwhile). ``weather``: the
    reading taken before it (a restart in the rain parks at once, never opens first). After a normal
    end (waiting_dawn, dawn_flats, calibrating) it parks again, then goes on where it was."""
    try:
        state = State(saved.state)
    except ValueError:
        state = None
    if state is S.DONE:
        return start(now, plan, window_start, window_end, next_duration, finished, weather, flats)
    snap = dataclasses.replace(saved, window_start=window_start, window_end=window_end, next_duration=next_duration,
                               finished=finished, busy=None, safe_since=None, retry_at=None, warnings=[],
                               secured=not plan.can_park,  # we do not know what happened while we were down
                               flats_dusk=calib.span(flats[0]), flats_dawn=calib.span(flats[1]),
                               flats_done=dict(saved.flats_done))
    _first_weather(snap, weather, now)
    if state is None:
        return _go(snap, _Move(S.PARKING, f"unknown saved state {saved.state!r}: parking", must_park=True), now, plan)
    target, why = RESUME[state], f"restarted in {state.value}"
    if target not in END_STATES and window_end is not None and now >= window_end:
        target, why = S.PARKING, f"restarted in {state.value} after the night's window: parking"
        snap.must_park = snap.end_normal = True  # the window has closed: a normal end
    elif (target not in END_STATES or state in AFTER_NIGHT) and window_start is not None and now < window_start:
        target = S.SECURING if plan.can_park else S.WAITING_DARK  # (after a normal end: the next night's window)
        why = f"restarted in {state.value} before the night's window: parking and closing, then waiting for dark"
    if target not in END_STATES:  # the night is before its end: nothing of an earlier end carries over
        snap.end_normal = snap.calibrated = False
    snap.state = "restarting"  # so that entering ``target`` runs its entry actions again
    snap, actions = _go(snap, _Move(target, why), now, plan)
    if State(snap.state) is S.WAITING_DARK:
        more_snap, more = step(snap, Ev.CLOCK, now, plan)
        return more_snap, actions + more
    return snap, actions


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """The night's state as published (times stay epoch seconds; the executor formats them)."""
    return {"state": snapshot.state, "since": snapshot.since, "until": snapshot.until, "reason": snapshot.reason}
