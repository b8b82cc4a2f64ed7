"""The night's calibration states (indisync.night.calib_steps through the machine's table), with
scripted events and a fake clock (no servers): sky flats at dusk and dawn inside their intervals,
the end-of-night calibration, darks while parked for rain, and how each of them ends (answered, the
interval over, stuck, rain, a stop, a restart).

The night used: the window [10 000, 40 000), dusk flats [8 000, 9 500), dawn flats [40 500, 42 000).
"""

import json

import pytest

from indisync.night.machine import ALWAYS_SAFE, TRANSITIONS, Ev, NightPlan, Snapshot, State, resume, start, step

# stale_after: longer than the night, so that the fake clock's jumps between events never read as
# "no weather data" (which would restart the run of safe weather); rain is an explicit alert here.
SKY = NightPlan(cool=True, slew=True, guide=True, park_at_end=True, warm_at_end=True, weather=True, safe_for=60,
                stale_after=1e6, can_park=True, sky_flats="both", end_calibration=True, darks_when_parked=True)
WINDOW = (10_000.0, 40_000.0)
DUSK, DAWN = (8_000.0, 9_500.0), (40_500.0, 42_000.0)


class Night:
    """The real machine, a fake clock, a safe weather update before every event (``fair``)."""

    def __init__(self, plan=SKY, now=7_000.0, window=WINDOW, flats=(DUSK, DAWN), next_duration=100.0):
        self.plan, self.now, self.fair = plan, now, True
        self.snap, actions = start(now, plan, *window, next_duration=next_duration, flats=flats)
        self.actions = [a.kind for a in actions]
        self.args = [a.args for a in actions]
        self.states = [self.snap.state]

    def send(self, event, at=None, **data):
        if at is not None:
            self.now = at
        if self.fair and event not in (Ev.WEATHER, Ev.WEATHER_LOST):
            self.snap, _ = step(self.snap, Ev.WEATHER, self.now, self.plan, {"status": "ok"})
        self.snap, actions = step(self.snap, event, self.now, self.plan, data)
        self.actions += [a.kind for a in actions]
        self.args += [a.args for a in actions]
        if self.snap.state != self.states[-1]:
            self.states.append(self.snap.state)
        return [a.kind for a in actions]

    def tick(self, at):
        return self.send(Ev.CLOCK, at)

    @property
    def state(self):
        return State(self.snap.state)

    def to_dusk_flats(self):
        assert self.state is State.SECURING  # a start in daylight parks and closes first
        self.send(Ev.PARKED, 7_010.0)
        assert self.state is State.WAITING_DARK and self.snap.until == DUSK[0]
        assert self.tick(8_000.0) == ["sky_flats"]
        assert self.state is State.DUSK_FLATS and self.args[-1] == {"direction": "dusk"}
        assert not self.snap.secured and self.snap.until == DUSK[1]
        return self

    def to_imaging(self, at=10_000.0):
        assert self.tick(at) == ["cool"]
        self.send(Ev.COOLED, at + 1)
        self.send(Ev.SLEWED, at + 2)
        self.send(Ev.CENTERED, at + 3, ok=True)
        assert self.send(Ev.GUIDER_STARTED, at + 4, ok=True) == ["expose"]
        return self

    def to_end_of_window(self):
        """Imaging until the next frame would end past the window: parking (a normal end), parked."""
        out = self.send(Ev.FRAME_DONE, 39_950.0, ok=True, next_duration=100.0)
        assert self.state is State.PARKING and "park" in out and self.snap.end_normal
        return self.send(Ev.PARKED, 39_960.0)


# ---- the whole night ----------------------------------------------------------------------------
def test_a_night_with_dusk_flats_lights_dawn_flats_and_calibration_in_one_timeline():
    night = Night().to_dusk_flats()
    assert night.send(Ev.FLATS_DONE, 9_000.0, ok=True, direction="dusk", kept=40, taken=46) == ["stop_guider", "park"]
    assert night.state is State.SECURING and "dusk flats done: 40 frame(s) kept of 46 taken" in night.snap.reason
    night.send(Ev.PARKED, 9_010.0)
    assert night.state is State.WAITING_DARK and night.snap.until == WINDOW[0]  # the dusk flats are done
    night.tick(9_400.0)
    assert night.state is State.WAITING_DARK
    night.to_imaging()
    assert night.to_end_of_window() == []
    assert night.state is State.WAITING_DAWN and night.snap.until == DAWN[0]
    assert night.tick(40_400.0) == []
    assert night.tick(40_500.0) == ["sky_flats"] and night.args[-1] == {"direction": "dawn"}
    assert night.state is State.DAWN_FLATS and night.snap.until == DAWN[1]
    assert night.send(Ev.FLATS_DONE, 41_000.0, ok=True, direction="dawn", kept=20, taken=22) == ["stop_guider", "park"]
    assert night.send(Ev.PARKED, 41_010.0) == ["calibrate"]
    assert night.state is State.CALIBRATING
    assert night.send(Ev.CALIBRATED, 45_000.0, reason="darks: master: ok") == ["warm"]
    assert night.snap.reason == "calibrated: darks: master: ok"
    assert night.send(Ev.WARMED, 45_100.0) == ["finish"]
    assert night.states == ["securing", "waiting_dark", "dusk_flats", "securing", "waiting_dark", "cooling", "slewing",
                            "centering", "starting_guider", "imaging", "parking", "waiting_dawn", "dawn_flats",
                            "parking", "calibrating", "warming", "done"]


def test_without_calibration_the_night_ends_as_before():
    night = Night(plan=NightPlan(cool=True, slew=True, guide=True, park_at_end=True, warm_at_end=True, weather=True,
                                 safe_for=60, stale_after=1e6, can_park=True))
    night.send(Ev.PARKED, 7_010.0)
    night.tick(8_000.0)
    assert night.state is State.WAITING_DARK  # intervals given, but no sky flats in the plan
    night.to_imaging()
    night.to_end_of_window()
    assert night.state is State.WARMING and night.snap.reason == "parked"


# ---- dusk ---------------------------------------------------------------------------------------
def test_dusk_flats_wait_for_safe_for_seconds_of_safe_weather():
    night = Night()
    night.send(Ev.PARKED, 7_010.0)
    night.fair = False
    night.send(Ev.WEATHER, 7_990.0, status="alert")  # rain just before the interval: the rig stays parked
    night.tick(8_000.0)
    assert night.state is State.WAITING_DARK
    night.send(Ev.WEATHER, 8_010.0, status="ok")
    night.tick(8_060.0)
    assert night.state is State.WAITING_DARK  # safe for 50 s < safe_for 60
    assert night.tick(8_070.0) == ["sky_flats"] and night.state is State.DUSK_FLATS


def test_dusk_flats_are_left_when_their_interval_is_over_and_never_taken_again():
    night = Night().to_dusk_flats()
    night.fair = False
    night.tick(9_500.0 + SKY.flats_overrun - 1)
    assert night.state is State.DUSK_FLATS  # a late answer may still come within flats_overrun
    assert night.tick(9_500.0 + SKY.flats_overrun) == ["stop_guider", "park"]
    assert night.state is State.SECURING and "interval ended" in night.snap.reason
    night.send(Ev.FLATS_DONE, 9_561.0, ok=True)  # the cancelled action's late answer: nothing happens
    assert night.state is State.SECURING
    night.send(Ev.PARKED, 9_570.0)
    assert night.state is State.WAITING_DARK and night.snap.flats_done == {"dusk": DUSK[1]}


def test_failed_dusk_flats_do_not_end_the_night():
    night = Night().to_dusk_flats()
    night.send(Ev.FLATS_DONE, 8_100.0, ok=False, direction="dusk", reason="flats: no devices")
    assert night.state is State.SECURING and "dusk flats failed (flats: no devices)" in night.snap.reason
    assert not night.snap.must_park and not night.snap.end_normal


def test_dusk_flats_stuck_past_their_deadline_are_given_up_and_the_night_goes_on():
    plan = NightPlan(**{**SKY.__dict__, "timeouts": {**SKY.timeouts, "dusk_flats": 600.0}})
    night = Night(plan=plan).to_dusk_flats()
    night.tick(8_601.0)
    assert night.state is State.SECURING and "given up: no answer in 601 s" in night.snap.reason
    assert not night.snap.must_park


def test_dusk_flats_done_after_dark_began_go_on_to_cool():
    night = Night(window=(8_500.0, 40_000.0)).to_dusk_flats()
    assert night.send(Ev.FLATS_DONE, 8_600.0, ok=True, direction="dusk") == ["cool"]
    assert night.state is State.COOLING


def test_dusk_flats_before_the_window_are_not_parked_as_outside_it():
    night = Night().to_dusk_flats()
    for t in range(8_001, 9_500, 100):
        night.tick(float(t))
    assert night.state is State.DUSK_FLATS and "securing" not in night.states[2:]


def test_rain_in_dusk_flats_parks_takes_darks_and_goes_back_to_the_flats_once_safe():
    night = Night().to_dusk_flats()
    night.fair = False
    assert night.send(Ev.WEATHER, 8_100.0, status="alert") == ["abort_exposures", "stop_guider", "park"]
    assert night.state is State.UNSAFE
    assert night.send(Ev.PARKED, 8_120.0) == ["darks"]  # darks_when_parked: the dome is closed
    assert night.state is State.PARKED and night.snap.busy == "darks"
    night.send(Ev.DARKS_DONE, 8_200.0, reason="ok: darks: master: ok")
    assert night.state is State.PARKED and night.snap.reason == "parked for the weather; darks: ok: darks: master: ok"
    night.send(Ev.WEATHER, 8_300.0, status="ok")
    night.tick(8_350.0)
    assert night.state is State.PARKED  # not yet safe_for
    assert night.send(Ev.WEATHER, 8_360.0, status="ok") == ["sky_flats"]
    assert night.state is State.DUSK_FLATS and "back to the dusk flats" in night.snap.reason


def test_safe_again_after_the_dusk_interval_waits_for_dark_parked():
    night = Night().to_dusk_flats()
    night.fair = False
    night.send(Ev.WEATHER, 9_000.0, status="alert")
    night.send(Ev.PARKED, 9_010.0)
    night.send(Ev.WEATHER, 9_600.0, status="ok")
    assert night.send(Ev.WEATHER, 9_700.0, status="ok") == []
    assert night.state is State.WAITING_DARK and night.snap.secured


def test_a_stop_in_dusk_flats_parks_and_ends_without_dawn_flats_or_calibration():
    night = Night().to_dusk_flats()
    assert night.send(Ev.STOP, 8_100.0) == ["stop_guider", "park"]
    assert night.state is State.PARKING and night.snap.stop_requested
    assert night.send(Ev.PARKED, 8_110.0) == ["warm"]


def test_no_dusk_interval_tonight_means_no_dusk_flats():
    night = Night(flats=(None, DAWN))
    night.send(Ev.PARKED, 7_010.0)
    night.tick(8_000.0)
    assert night.state is State.WAITING_DARK and night.snap.until == WINDOW[0]
    night.send(Ev.FLAT_WINDOWS, 8_001.0, dusk=[8_000.0, 9_000.0], dawn=list(DAWN))  # new intervals are taken up
    assert night.state is State.DUSK_FLATS


# ---- the end of the night -------------------------------------------------------------------------
def night_at_the_end(plan=SKY, **kw):
    night = Night(plan=plan, **kw)
    night.send(Ev.PARKED, 7_010.0)
    night.snap.flats_done = {"dusk": DUSK[1]}  # (done)
    night.to_imaging()
    return night


def test_a_stop_or_a_failure_ends_without_dawn_flats_or_calibration():
    night = night_at_the_end()
    night.send(Ev.STOP, 20_000.0, abort=True)
    assert night.send(Ev.PARKED, 20_010.0) == ["warm"]
    night = night_at_the_end()
    night.send(Ev.FRAME_DONE, 20_000.0, ok=True, switch="next target", next_duration=100)
    night.send(Ev.SLEW_FAILED, 20_010.0, reason="no arrival")
    assert night.state is State.PARKING and night.snap.must_park and not night.snap.end_normal
    assert night.send(Ev.PARKED, 20_020.0) == ["warm"]


def test_the_sequence_finishing_is_a_normal_end():
    night = night_at_the_end()
    night.send(Ev.FRAME_DONE, 20_000.0, ok=True, finished=True)
    night.send(Ev.PARKED, 20_010.0)
    assert night.state is State.WAITING_DAWN and night.snap.until == DAWN[0]


def test_the_window_closing_while_parked_for_rain_goes_on_to_the_dawn_flats():
    night = night_at_the_end()
    night.fair = False
    night.send(Ev.WEATHER, 39_000.0, status="alert")
    assert night.send(Ev.PARKED, 39_010.0) == ["darks"]
    night.send(Ev.WEATHER, 40_000.0, status="alert")
    assert night.state is State.PARKING and night.snap.end_normal  # the window's end, parked for rain
    night.send(Ev.PARKED, 40_010.0)
    assert night.state is State.WAITING_DAWN
    night.send(Ev.WEATHER, 40_600.0, status="alert")  # rain through the dawn: it waits, parked
    night.send(Ev.WEATHER, 41_990.0, status="ok")
    night.tick(42_000.0)
    assert night.state is State.CALIBRATING and "interval is over" in night.snap.reason


def test_safe_again_after_the_window_while_parked_goes_on_to_the_dawn_flats():
    night = night_at_the_end()
    night.fair = False
    night.send(Ev.WEATHER, 39_000.0, status="alert")
    night.send(Ev.PARKED, 39_010.0)
    night.send(Ev.WEATHER, 39_950.0, status="ok")  # safe, but the next frame would not fit in the window
    assert night.state is State.WAITING_DAWN and "window has ended (already parked)" in night.snap.reason


def test_dawn_flats_wait_for_safe_weather_and_are_left_at_their_interval_end():
    night = night_at_the_end()
    night.to_end_of_window()
    night.fair = False
    night.send(Ev.WEATHER, 40_490.0, status="alert")
    night.send(Ev.WEATHER, 40_500.0, status="ok")
    night.tick(40_550.0)
    assert night.state is State.WAITING_DAWN  # safe for 50 s only
    assert night.tick(40_560.0) == ["sky_flats"]
    night.send(Ev.WEATHER, 40_600.0, status="ok")
    for t in range(40_700, 42_000, 100):
        night.send(Ev.WEATHER, float(t), status="ok")
    assert night.state is State.DAWN_FLATS  # past the window's end, inside its interval: not parked
    assert night.tick(42_000.0 + SKY.flats_overrun) == ["stop_guider", "park"]
    assert night.state is State.PARKING and night.snap.flats_done["dawn"] == DAWN[1]
    assert night.send(Ev.PARKED, 42_100.0) == ["calibrate"]


def test_rain_in_dawn_flats_parks_and_they_go_on_once_safe_for_safe_for():
    night = night_at_the_end()
    night.to_end_of_window()
    night.tick(40_500.0)
    night.fair = False
    assert night.send(Ev.WEATHER, 40_600.0, status="alert") == ["abort_exposures", "stop_guider", "park"]
    night.send(Ev.CLOCK, 40_601.0)
    assert night.state is State.PARKING  # unsafe past the window's end: the night's end
    night.send(Ev.PARKED, 40_610.0)
    assert night.state is State.WAITING_DAWN
    night.send(Ev.WEATHER, 40_700.0, status="ok")
    night.send(Ev.WEATHER, 40_750.0, status="ok")
    assert night.state is State.WAITING_DAWN
    night.send(Ev.WEATHER, 40_760.0, status="ok")
    assert night.tick(40_761.0) == ["sky_flats"] and night.state is State.DAWN_FLATS


def test_park_at_end_off_still_parks_for_dawn_flats_and_skips_the_park_without_them():
    lazy = NightPlan(**{**SKY.__dict__, "park_at_end": False})
    night = night_at_the_end(plan=lazy)
    night.send(Ev.FRAME_DONE, 20_000.0, ok=True, finished=True)
    assert night.state is State.PARKING  # dawn flats ahead: waiting for them parked
    no_dawn = NightPlan(**{**lazy.__dict__, "sky_flats": "dusk"})
    night = night_at_the_end(plan=no_dawn)
    assert night.send(Ev.FRAME_DONE, 20_000.0, ok=True, finished=True) == ["calibrate"]
    assert night.state is State.CALIBRATING


def test_calibrating_stuck_past_its_deadline_warms():
    snap = Snapshot(state="calibrating", since=0.0, last_weather=10.0, weather_status="ok")
    limit = SKY.timeouts["calibrating"]
    new, actions = step(snap, Ev.CLOCK, limit + 1, SKY, {})
    assert new.state == "warming" and [a.kind for a in actions] == ["warm"] and "given up" in new.reason


def test_rain_in_waiting_dawn_and_calibrating_changes_nothing():
    for state in ("waiting_dawn", "calibrating"):
        assert State(state) in ALWAYS_SAFE
        snap = Snapshot(state=state, since=0.0, last_weather=0.0, weather_status="ok", secured=True,
                        flats_dawn=list(DAWN))
        new, actions = step(snap, Ev.WEATHER, 1.0, SKY, {"status": "alert"})
        assert new.state == state and actions == []


# ---- restarts -------------------------------------------------------------------------------------
def resumed(saved_state, now, **saved):
    snap = Snapshot(state=saved_state, since=100.0, weather_status="ok", last_weather=now, **saved)
    back = Snapshot.from_dict(json.loads(json.dumps(snap.to_dict())))
    assert back == snap
    return resume(back, now, SKY, *WINDOW, next_duration=100.0, flats=(DUSK, DAWN))


def test_a_restart_in_dusk_flats_parks_first_then_takes_them_again():
    snap, actions = resumed("dusk_flats", 8_500.0)
    assert snap.state == "securing" and "park" in [a.kind for a in actions]
    snap, actions = step(snap, Ev.PARKED, 8_510.0, SKY, {})
    assert snap.state == "waiting_dark"  # safe_for counts from the first step after the restart
    snap, actions = step(snap, Ev.CLOCK, 8_569.0, SKY, {})
    assert snap.state == "waiting_dark"
    snap, actions = step(snap, Ev.CLOCK, 8_570.0, SKY, {})
    assert snap.state == "dusk_flats" and [a.kind for a in actions] == ["sky_flats"]


@pytest.mark.parametrize("state", ["waiting_dawn", "dawn_flats", "calibrating"])
def test_a_restart_after_a_normal_end_parks_again_and_goes_on(state):
    snap, actions = resumed(state, 40_600.0, end_normal=True)
    assert snap.state == "parking" and "park" in [a.kind for a in actions]
    snap, actions = step(snap, Ev.PARKED, 40_610.0, SKY, {})
    assert snap.state == "waiting_dawn"  # the dawn flats are not done: once safe for safe_for, taken
    snap, actions = step(snap, Ev.CLOCK, 40_670.0, SKY, {})
    assert snap.state == "dawn_flats"


def test_a_restart_the_next_afternoon_waits_for_the_new_night_not_for_dawn():
    """Saved in waiting_dawn yesterday, restarted before tonight's window: tonight's dusk flats and
    night; yesterday's flats done and normal end are not carried over."""
    snap, actions = resumed("waiting_dawn", 7_000.0, end_normal=True, calibrated=True,
                            flats_done={"dusk": DUSK[1] - 86_400.0, "dawn": DAWN[1] - 86_400.0})
    assert snap.state == "securing" and not snap.end_normal and not snap.calibrated
    snap, _ = step(snap, Ev.PARKED, 7_010.0, SKY, {})
    snap, actions = step(snap, Ev.CLOCK, 8_000.0, SKY, {})
    assert snap.state == "dusk_flats"


# ---- the table ------------------------------------------------------------------------------------
def test_every_calibration_entry_of_the_table_moves_as_its_decision_says():
    """Each new (state, event) pair, from a snapshot inside the dusk and the dawn interval, with the
    weather safe long enough: the target the table's comment names."""
    expected = {
        (State.WAITING_DARK, Ev.CLOCK): "dusk_flats", (State.WAITING_DARK, Ev.FLAT_WINDOWS): "dusk_flats",
        (State.DUSK_FLATS, Ev.FLATS_DONE): "securing", (State.DUSK_FLATS, Ev.CLOCK): "dusk_flats",
        (State.PARKED, Ev.DARKS_DONE): "parked", (State.PARKING, Ev.PARKED): "waiting_dawn",
        (State.WAITING_DAWN, Ev.CLOCK): "dawn_flats", (State.WAITING_DAWN, Ev.FLAT_WINDOWS): "dawn_flats",
        (State.DAWN_FLATS, Ev.FLATS_DONE): "parking", (State.DAWN_FLATS, Ev.CLOCK): "dawn_flats",
        (State.CALIBRATING, Ev.CALIBRATED): "warming",
    }
    for (state, event), target in expected.items():
        assert (state, event) in TRANSITIONS
        now = 41_000.0 if state in (State.WAITING_DAWN, State.DAWN_FLATS, State.PARKING) else 8_500.0
        snap = Snapshot(state=state.value, since=now - 10, last_weather=now, weather_status="ok", safe_since=0.0,
                        window_start=WINDOW[0], window_end=WINDOW[1], flats_dusk=list(DUSK), flats_dawn=list(DAWN),
                        secured=True, end_normal=True)
        data = {"dusk": DUSK, "dawn": DAWN} if event is Ev.FLAT_WINDOWS else {}
        new, _ = step(snap, event, now, SKY, data)
        assert new.state == target, (state, event, new.state, new.reason)


def test_a_flats_state_outside_its_interval_is_left_whatever_the_event():
    """The window's guard: a flats state has the mount out inside its interval (+ flats_overrun) only;
    found outside it (a clock jump back, a late event), it is left as done on any event."""
    snap = Snapshot(state="dusk_flats", since=7_000.0, last_weather=7_500.0, weather_status="ok", safe_since=0.0,
                    window_start=WINDOW[0], window_end=WINDOW[1], flats_dusk=list(DUSK), flats_dawn=list(DAWN))
    new, actions = step(snap, Ev.WEATHER, 7_500.0, SKY, {"status": "ok"})  # before the dusk interval
    assert new.state == "securing" and "park" in [a.kind for a in actions] and new.flats_done == {"dusk": DUSK[1]}
    snap = Snapshot(**{**snap.__dict__, "state": "dawn_flats", "last_weather": 43_000.0})
    new, actions = step(snap, Ev.WEATHER, 43_000.0, SKY, {"status": "ok"})  # past the dawn interval
    assert new.state == "parking" and new.must_park and new.flats_done == {"dawn": DAWN[1]}


def test_sky_flats_are_never_called_stuck_by_the_alarm_watch():
    from indisync.night.alarms import stuck

    for state in ("dusk_flats", "dawn_flats"):
        snap = Snapshot(state=state, since=0.0, window_end=50_000.0)
        assert stuck(snap, 4_000.0, 0.0, 1_800.0) is None  # bounded by their interval and deadline
    assert stuck(Snapshot(state="imaging", since=0.0, window_end=50_000.0), 4_000.0, 0.0, 1_800.0) is not None


@pytest.mark.parametrize("at, dusk, dawn", [
    ("2026-12-03T12:00:00Z", ("15:29", "16:23"), ("05:43", "06:37")),  # the afternoon: tonight's both
    ("2026-12-03T15:40:00Z", ("15:29", "16:23"), ("05:43", "06:37")),  # inside the dusk interval
    ("2026-12-04T02:00:00Z", None, ("05:43", "06:37")),  # after midnight: this morning's dawn only
    ("2026-12-04T06:20:00Z", ("15:29", "16:23"), ("05:44", "06:38")),  # dawn twilight: the next night's
])
def test_the_flats_intervals_are_tonights(at, dusk, dawn):
    """Munich, December (the sun -2..-10 deg): the intervals of the night whose window planning gives."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from indisync.config import load_config
    from indisync.night.planning import flat_intervals, night_window

    cfg = load_config(data={"site": {"latitude": 48.1, "longitude": 11.6}, "night": {}, "flats": {"sky": "both"}})
    now = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    devices = SimpleNamespace(mount=None)
    start_at, end_at, _ = night_window(cfg, devices, now)
    found = flat_intervals(cfg, devices, now, start_at, end_at)
    hhmm = lambda span: None if span is None else tuple(  # noqa: E731
        datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M") for t in span)
    assert (hhmm(found[0]), hhmm(found[1])) == (dusk, dawn)
    if found[0] is not None:
        assert found[0][1] <= start_at  # dusk flats end before the dark window starts (-12 deg)
    if found[1] is not None:
        assert found[1][0] >= end_at
