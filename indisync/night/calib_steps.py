"""The night's calibration steps, pure: when the machine (machine.py) goes to sky flats at dusk and
dawn, what follows a normal end (waiting_dawn, dawn_flats, calibrating), and how those states end.
machine.py names these decisions in its table; this module only decides (no clock, no hardware).

- Sky flats (``NightPlan.sky_flats``) happen only inside their interval (``Snapshot.flats_dusk`` /
  ``flats_dawn``: the sun between flats.sun_altitude, from planning) and only after the weather has
  been safe for ``safe_for`` s (counted from the night's (re)start at the earliest: a (re)start inside
  an interval waits that long too). Each is done once a night: its answer (``flats_done``), its
  interval's end (+ ``flats_overrun``) or its deadline marks it done, whatever it kept; failed
  flats never end the night. The window's guard lets a flats state have the mount out inside its
  interval (+ flats_overrun) only: found outside it, on any event, it is left.
- Dusk: waiting_dark (or securing's parked answer, or parked for rain once safe for safe_for) ->
  dusk_flats -> securing (park and close until dark) | cooling (the window has started).
- A normal end (``Move.normal_end``: the window closed, the sequence or season finished) parks, then
  ``after_night``: waiting_dawn (dawn flats wanted, not done, their interval not over) -> dawn_flats
  -> parking -> calibrating (``end_calibration``: panel flats, darks) -> warming. A stop by hand or a
  failure goes from its park straight to warming.
- Parked for rain with ``darks_when_parked``: the ``darks`` action (entered with parked, cancelled
  when the night leaves it); its answer only changes the reason.
"""

from __future__ import annotations

from .state import FLATS_STATES, Move, NightPlan, Snapshot, State, unsafe_reason

S = State
DIRECTION = {S.DUSK_FLATS: "dusk", S.DAWN_FLATS: "dawn"}
SAME_NIGHT_S = 3600.0  # a "done" mark belongs to the interval whose end is this close (not yesterday's)


def utc_clock(epoch: float) -> str:
    """HH:MM:SS (UTC) of an epoch, without reading any clock."""
    seconds = int(round(epoch)) % 86400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---- the intervals ----------------------------------------------------------------------------
def span(value) -> list | None:
    """An interval as the snapshot keeps it (JSON: a list), from a tuple or list; None stays None."""
    return None if value is None else [float(value[0]), float(value[1])]


def interval(snap: Snapshot, direction: str) -> tuple[float, float] | None:
    span = snap.flats_dusk if direction == "dusk" else snap.flats_dawn
    return None if span is None else (float(span[0]), float(span[1]))


def wanted(plan: NightPlan, direction: str) -> bool:
    return plan.dusk_flats if direction == "dusk" else plan.dawn_flats


def done(snap: Snapshot, direction: str) -> bool:
    """Done (or given up) for tonight's interval; a mark left by an earlier night does not count."""
    at, span = snap.flats_done.get(direction), interval(snap, direction)
    return at is not None and (span is None or abs(float(at) - span[1]) < SAME_NIGHT_S)


def mark_done(snap: Snapshot, direction: str) -> None:
    span = interval(snap, direction)
    snap.flats_done = {**snap.flats_done, direction: span[1] if span is not None else 0.0}


def pending(snap: Snapshot, plan: NightPlan, direction: str, now: float) -> bool:
    """Wanted tonight, with an interval, not done, and the interval not over."""
    span = interval(snap, direction)
    return wanted(plan, direction) and span is not None and not done(snap, direction) and now < span[1]


def inside(snap: Snapshot, direction: str, now: float, overrun: float = 0.0) -> bool:
    span = interval(snap, direction)
    return span is not None and span[0] <= now < span[1] + overrun


def may_be_out(snap: Snapshot, state: State, plan: NightPlan, now: float) -> bool:
    """A flats state inside its own interval (+ flats_overrun): the mount is out outside the window there."""
    return state in FLATS_STATES and inside(snap, DIRECTION[state], now, plan.flats_overrun)


def safe_long_enough(snap: Snapshot, plan: NightPlan, now: float, why: str | None) -> bool:
    if not plan.weather:
        return True
    return why is None and snap.safe_since is not None and now - snap.safe_since >= plan.safe_for


def waiting_until(snap: Snapshot, plan: NightPlan, state: State, now: float) -> float | None:
    """What ``Snapshot.until`` says in the calibration states (and waiting_dark with dusk flats ahead)."""
    if state is S.WAITING_DARK:
        span = interval(snap, "dusk")
        if pending(snap, plan, "dusk", now) and (snap.window_start is None or span[0] < snap.window_start):
            return span[0] if span[0] > now else snap.window_start
        return snap.window_start
    if state in FLATS_STATES:
        span = interval(snap, DIRECTION[state])
        return None if span is None else span[1]
    if state is S.WAITING_DAWN:
        span = interval(snap, "dawn")
        return None if span is None else span[0]
    return None


# ---- the decisions ----------------------------------------------------------------------------
def dusk_due(snap: Snapshot, plan: NightPlan, now: float, why: str | None) -> Move | None:
    """waiting_dark, securing's parked answer, parked for rain: dusk flats now? (None: not now)."""
    if not pending(snap, plan, "dusk", now) or not inside(snap, "dusk", now):
        return None
    if not safe_long_enough(snap, plan, now, why):
        return None
    end = interval(snap, "dusk")[1]
    return Move(S.DUSK_FLATS, f"dusk flats: the sun between flats.sun_altitude until {utc_clock(end)} UTC")


def flats_words(data) -> str:
    direction = data.direction or "sky"
    if data.ok:
        words = f"{direction} flats done: {data.kept} frame(s) kept of {data.taken} taken"
    else:
        words = f"{direction} flats failed"
    return f"{words} ({data.reason})" if data.reason else words


def after_dusk(snap: Snapshot, plan: NightPlan, now: float, reason: str) -> Move:
    """dusk_flats is over (answered, its interval over, stuck): park and close until dark, or go on."""
    mark_done(snap, "dusk")
    if snap.finished:
        return Move(S.PARKING, f"{reason}; the sequence is already finished", normal_end=True)
    if snap.window_end is not None and now >= snap.window_end:
        return Move(S.PARKING, f"{reason}; the night's window has already ended", must_park=True, normal_end=True)
    if snap.window_start is not None and now < snap.window_start:
        if plan.can_park:
            return Move(S.SECURING, f"{reason}; parking and closing until dark")
        return Move(S.WAITING_DARK, f"{reason}; waiting for dark")
    return Move(S.COOLING, f"{reason}; dark: the window has started")


def leave_flats(snap: Snapshot, state: State, plan: NightPlan, now: float, reason: str) -> Move:
    if state is S.DUSK_FLATS:
        return after_dusk(snap, plan, now, reason)
    mark_done(snap, "dawn")  # dawn: the night is over; park (the sky is bright), then calibrate or warm
    return Move(S.PARKING, f"{reason}; parking", must_park=True, normal_end=True)


def flats_done(snap: Snapshot, state: State, data, now: float, plan: NightPlan) -> Move:
    return leave_flats(snap, state, plan, now, flats_words(data))


def flats_over(snap: Snapshot, state: State, data, now: float, plan: NightPlan) -> Move | None:
    """A clock tick in a flats state: past its interval's end + flats_overrun it is left (the action
    is cancelled with the state: frames kept so far stay)."""
    direction = DIRECTION[state]
    span = interval(snap, direction)
    if span is not None and now < span[1] + plan.flats_overrun:
        return None
    when = f"ended at {utc_clock(span[1])} UTC" if span is not None else "is unknown"
    return leave_flats(snap, state, plan, now, f"{direction} flats stopped: their interval {when}")


def outside_interval(snap: Snapshot, state: State, now: float, plan: NightPlan) -> Move | None:
    """The window's guard for a flats state: inside its interval (+ flats_overrun) it may be out,
    outside it (its end passed, a clock jump, a restart) it is left as done."""
    if may_be_out(snap, state, plan, now):
        return None
    return flats_over(snap, state, None, now, plan) or leave_flats(
        snap, state, plan, now, f"{DIRECTION[state]} flats stopped: outside their interval")


def stuck(snap: Snapshot, state: State, now: float, limit: float, plan: NightPlan) -> Move | None:
    """Past a calibration state's deadline: flats are given up (the night goes on), calibration ends."""
    took = f"{now - snap.since:.0f} s (limit {limit:g} s)"
    if state in FLATS_STATES:
        return leave_flats(snap, state, plan, now, f"{DIRECTION[state]} flats given up: no answer in {took}")
    if state is S.CALIBRATING:
        snap.calibrated = True
        return Move(S.WARMING, f"calibration given up: no answer in {took}")
    return None


def calibrate_or_warm(snap: Snapshot, plan: NightPlan, reason: str) -> Move:
    if plan.end_calibration and not snap.calibrated:
        return Move(S.CALIBRATING, f"{reason}; calibrating (panel flats, darks)")
    return Move(S.WARMING, reason)


def after_night(snap: Snapshot, plan: NightPlan, now: float, reason: str = "parked") -> Move:
    """The night's park answered (or it needed none): dawn flats ahead, calibration, or warming. Only a
    normal end goes on to calibrate; a stop by hand or a failure warms and ends."""
    if snap.stop_requested or not snap.end_normal:
        return Move(S.WARMING, reason)
    if pending(snap, plan, "dawn", now):
        start = interval(snap, "dawn")[0]
        return Move(S.WAITING_DAWN, f"{reason}; waiting for the dawn flats from {utc_clock(start)} UTC")
    return calibrate_or_warm(snap, plan, reason)


def dawn_due(snap: Snapshot, state: State, data, now: float, plan: NightPlan) -> Move | None:
    """waiting_dawn: the dawn flats once inside their interval and safe for safe_for s; past it (or not
    wanted, or done) calibrating or warming; else wait."""
    why = unsafe_reason(snap, plan, now)
    if not pending(snap, plan, "dawn", now):
        why_not = "dawn flats done" if done(snap, "dawn") else "the dawn flats' interval is over"
        return calibrate_or_warm(snap, plan, why_not)
    if not inside(snap, "dawn", now) or not safe_long_enough(snap, plan, now, why):
        return None
    end = interval(snap, "dawn")[1]
    return Move(S.DAWN_FLATS, f"dawn flats: the sun between flats.sun_altitude until {utc_clock(end)} UTC")


def parked_before_dark(snap: Snapshot, plan: NightPlan, now: float, why: str | None) -> Move | None:
    """Parked for rain before the window, safe again: back to the dusk flats inside their interval
    (once safe for safe_for s: None until then), else wait for dark."""
    if pending(snap, plan, "dusk", now) and inside(snap, "dusk", now):
        move = dusk_due(snap, plan, now, why)
        if move is not None:
            move.reason = f"safe for {now - snap.safe_since:.0f} s: back to the dusk flats" \
                if snap.safe_since is not None else move.reason
        return move
    return Move(S.WAITING_DARK, "safe again, before the night's window: waiting for dark (parked)")


def parked_after_night(snap: Snapshot, state: State, data, now: float, plan: NightPlan) -> Move:
    return after_night(snap, plan, now, f"parked: {data.reason}" if data.reason else "parked")


def calibrated(snap: Snapshot, state: State, data, now: float, plan: NightPlan) -> Move:
    snap.calibrated = True
    return Move(S.WARMING, f"calibrated: {data.reason}" if data.reason else "calibrated")


def darks_done(snap: Snapshot, state: State, data, now: float, plan: NightPlan) -> None:
    """Parked for the weather, the darks ended: said in the reason; the night stays parked."""
    snap.reason = f"parked for the weather; darks: {data.reason or 'done'}"[:500]


# The machine's table names these (machine.TRANSITIONS): (snap, state, data, now, plan) -> Move | None.
DECIDE = {"<flats done>": flats_done, "<flats over?>": flats_over, "<after the night>": parked_after_night,
          "<dawn?>": dawn_due, "<calibrated>": calibrated, "<darks done>": darks_done}
