"""The night's state machine, driven with scripted events and a fake clock (no servers).

Every (state, event) pair of the transition table is exercised, the safety and stuck guards on
every kind of step, and a restart from a snapshot saved in each state.
"""

import json

import pytest

from indisync.night.machine import (ACTIVE, ALWAYS_SAFE, RESUME, TRANSITIONS, Ev, NightPlan, Snapshot, State,
                                    resume, start, step)

FULL = NightPlan(cool=True, slew=True, guide=True, park_at_end=True, warm_at_end=True, weather=True,
                 safe_for=60, stale_after=30)
BARE = NightPlan()  # a config without night:/site:/weather: image at once, end with the sequence


class Night:
    """The real machine with a fake clock; records every state and action."""

    def __init__(self, plan=FULL, window=(1000.0, 5000.0), now=0.0, next_duration=100.0, finished=False):
        self.plan, self.now = plan, now
        self.fair = True  # a weather update (ok) just before every scripted event; False: only those sent
        self.snap, actions = start(now, plan, window[0], window[1], next_duration, finished)
        self.actions = [a.kind for a in actions]
        self.states = [self.snap.state]

    def send(self, event, dt=0.0, **data):
        self.now += dt
        if self.fair and event not in (Ev.WEATHER, Ev.WEATHER_LOST):
            self.snap, _ = step(self.snap, Ev.WEATHER, self.now, self.plan, {"status": "ok"})
        self.snap, actions = step(self.snap, event, self.now, self.plan, data)
        self.actions += [a.kind for a in actions]
        if self.snap.state != self.states[-1]:
            self.states.append(self.snap.state)
        return [a.kind for a in actions]

    def weather_ok(self, dt=0.0):
        return self.send(Ev.WEATHER, dt, status="ok")

    def clear_for(self, seconds):
        """Safe weather updates every 5 s for ``seconds``; the actions of the last."""
        out = []
        for _ in range(int(seconds // 5)):
            out = self.weather_ok(5)
        return out

    @property
    def state(self):
        return State(self.snap.state)

    def to_imaging(self):
        self.weather_ok()
        self.send(Ev.CLOCK, 1000.0 - self.now)
        assert self.state is State.COOLING
        self.send(Ev.COOLED, 1, missing=[])
        self.send(Ev.SLEWED, 1)
        self.send(Ev.CENTERED, 1, ok=True)
        out = self.send(Ev.GUIDER_STARTED, 1, ok=True)
        assert self.state is State.IMAGING and out == ["expose"]
        return self


# ---- the table -----------------------------------------------------------------------------
def test_a_full_night_walks_every_state_in_order():
    night = Night().to_imaging()
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, next_duration=100) == ["expose"]
    assert night.send(Ev.FRAME_DONE, 100, ok=True, dither=True, next_duration=100) == ["dither"]
    assert night.send(Ev.DITHERED, 5) == ["expose"]
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, refocus="after batch", next_duration=100) == ["refocus"]
    assert night.send(Ev.REFOCUSED, 20) == ["expose"]
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, finished=True) == ["stop_guider", "park"]
    assert night.send(Ev.PARKED, 10) == ["warm"]
    assert night.send(Ev.WARMED, 1) == ["finish"]
    assert night.states == ["waiting_dark", "cooling", "slewing", "centering", "starting_guider", "imaging",
                            "dithering", "imaging", "refocusing", "imaging", "parking", "warming", "done"]


def test_no_frame_starts_that_would_end_after_the_window():
    night = Night(window=(1000.0, 1400.0)).to_imaging()  # imaging from t=1004, 100 s frames
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, next_duration=100) == ["expose"]  # 1104 + 100 <= 1400
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, next_duration=100) == ["expose"]  # 1204
    night.weather_ok()
    out = night.send(Ev.FRAME_DONE, 100, ok=True, next_duration=100)  # 1304 + 100 > 1400
    assert night.state is State.PARKING and "expose" not in out
    assert "would end after" in night.snap.reason


def test_waiting_for_dark_says_until_when_and_asks_for_nothing():
    night = Night(window=(1000.0, 5000.0))
    assert night.state is State.WAITING_DARK and night.snap.until == 1000.0 and night.actions == []
    night.weather_ok(500)
    night.send(Ev.CLOCK, 400)
    assert night.state is State.WAITING_DARK and night.actions == []
    night.send(Ev.CLOCK, 100)
    assert night.state is State.COOLING and night.actions == ["cool"]


def test_a_new_window_from_the_executor_is_taken_up():
    night = Night(window=(1000.0, 5000.0))
    night.send(Ev.WINDOW, 1, start=0.0, end=5000.0)
    assert night.state is State.COOLING


def test_started_after_the_window_ended_parks_at_once():
    night = Night(window=(1000.0, 5000.0), now=6000.0)
    assert night.states[-1] == "parking" and "already ended" in night.snap.reason


def test_bare_config_images_at_once_and_ends_with_the_sequence():
    night = Night(plan=BARE, window=(None, None))
    assert night.states == ["imaging"] and night.actions == ["expose"]
    night.send(Ev.WEATHER, 99999, status="alert")  # not watched without a weather device
    assert night.send(Ev.FRAME_DONE, 60, ok=True, finished=True) == ["finish"]  # no park, no warm configured
    assert night.states[-1] == "done"


def test_an_already_finished_sequence_ends_at_once():
    night = Night(plan=BARE, window=(None, None), finished=True)
    assert night.states[-1] == "done" and "expose" not in night.actions


def test_slew_failure_parks_and_ends_the_night():
    night = Night()
    night.weather_ok(1000)
    night.send(Ev.CLOCK)
    night.send(Ev.COOLED, 1)
    assert night.send(Ev.SLEW_FAILED, 1, reason="no arrival in 120 s") == ["stop_guider", "park"]
    assert night.state is State.PARKING and "no arrival" in night.snap.reason
    night.send(Ev.PARK_FAILED, 1, reason="mount alert")
    assert night.state is State.PARKING and "trying again in" in night.snap.reason  # I4: never given up
    assert night.send(Ev.CLOCK, FULL.park_retry) == ["park"]
    assert night.send(Ev.PARKED, 5) == ["warm"]


def test_cooling_misses_are_named_in_the_reason_and_the_night_goes_on():
    night = Night()
    night.weather_ok(1000)
    night.send(Ev.CLOCK)
    night.send(Ev.COOLED, 1, missing=["slave2"])
    assert night.state is State.SLEWING and "slave2" in night.snap.reason


def test_stop_by_hand_lets_the_frame_finish_then_parks():
    night = Night().to_imaging()
    assert night.send(Ev.STOP, 10) == []  # the frame under way finishes
    assert night.state is State.IMAGING
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 90, ok=True, refocus="every 2 frames") == ["stop_guider", "park"]
    assert night.state is State.PARKING


def test_stop_with_abort_aborts_at_once():
    night = Night().to_imaging()
    assert night.send(Ev.STOP, 10, abort=True) == ["abort_exposures", "stop_guider", "park"]
    assert night.state is State.PARKING


@pytest.mark.parametrize("state", [State.WAITING_DARK, State.COOLING, State.PARKED])
def test_stop_in_a_parked_state_ends_the_night(state):
    snap = Snapshot(state=state.value, since=0.0, last_weather=0.0, weather_status="ok")
    new, actions = step(snap, Ev.STOP, 1.0, FULL, {})
    assert new.state == "parking" and [a.kind for a in actions] == ["stop_guider", "park"]


# ---- safety ---------------------------------------------------------------------------------
def rain_then_clear(night):
    night.fair = False
    night.weather_ok()
    out = night.send(Ev.WEATHER, 10, status="alert")
    assert out == ["abort_exposures", "stop_guider", "park"] and night.state is State.UNSAFE
    night.send(Ev.FRAME_DONE, 1, ok=False, aborted=True)  # the aborted frame comes back: ignored
    assert night.state is State.UNSAFE
    night.send(Ev.PARKED, 2)
    assert night.state is State.PARKED and night.snap.until is None  # not safe yet: no time to give
    night.send(Ev.WEATHER, 5, status="ok")
    assert night.snap.until == night.now + 60
    night.send(Ev.WEATHER, 30, status="alert")  # a second shower: the safe run starts again
    night.send(Ev.WEATHER, 5, status="ok")
    night.clear_for(55)
    night.send(Ev.WEATHER, 4, status="ok")
    assert night.state is State.PARKED
    assert night.send(Ev.WEATHER, 1, status="ok") == ["slew"]
    assert night.state is State.SLEWING


@pytest.mark.parametrize("state", sorted(s.value for s in ACTIVE))
def test_rain_in_any_active_state_aborts_and_parks(state):
    snap = Snapshot(state=state, since=0.0, last_weather=0.0, weather_status="ok", busy="expose")
    new, actions = step(snap, Ev.WEATHER, 1.0, FULL, {"status": "alert"})
    assert new.state == "unsafe" and [a.kind for a in actions] == ["abort_exposures", "stop_guider", "park"]


@pytest.mark.parametrize("state", sorted(s.value for s in ALWAYS_SAFE))
def test_rain_in_an_always_safe_state_changes_nothing(state):
    snap = Snapshot(state=state, since=0.0, last_weather=0.0, weather_status="ok")
    new, actions = step(snap, Ev.WEATHER, 1.0, FULL, {"status": "alert"})
    assert new.state == state and actions == []


def test_rain_mid_night_resumes_the_sequence_after_safe_for():
    night = Night().to_imaging()
    rain_then_clear(night)
    night.send(Ev.SLEWED, 5)
    night.send(Ev.CENTERED, 1)
    assert night.send(Ev.GUIDER_STARTED, 1) == ["expose"]


def test_stale_weather_is_unsafe():
    night = Night().to_imaging()
    night.fair = False
    night.weather_ok()
    night.send(Ev.CLOCK, 30)
    assert night.state is State.IMAGING
    assert night.send(Ev.CLOCK, 1) == ["abort_exposures", "stop_guider", "park"]
    assert "no weather data" in night.snap.reason


def test_weather_device_gone_is_unsafe_at_once_and_back_counts_from_then():
    night = Night().to_imaging()
    night.fair = False
    night.send(Ev.WEATHER_LOST, 1, reason="driver exited")
    assert night.state is State.UNSAFE and "gone" in night.snap.reason
    night.send(Ev.PARKED, 1)
    night.send(Ev.WEATHER, 1, status="ok")
    night.clear_for(55)
    night.weather_ok(4)
    assert night.state is State.PARKED
    night.weather_ok(1)
    assert night.state is State.SLEWING


def test_cooled_while_raining_goes_to_unsafe_not_slewing():
    night = Night()
    night.weather_ok(1000)
    night.send(Ev.CLOCK)
    night.fair = False
    night.send(Ev.WEATHER, 1, status="alert")
    assert night.state is State.COOLING  # always safe: the mount is still parked
    assert night.send(Ev.COOLED, 1) == ["abort_exposures", "stop_guider", "park"]
    assert night.state is State.UNSAFE


def test_safe_again_after_the_window_warms_without_unparking():
    night = Night(window=(1000.0, 1150.0)).to_imaging()
    night.fair = False
    night.send(Ev.WEATHER, 1, status="alert")
    night.send(Ev.PARKED, 1)
    night.clear_for(200)
    assert night.state is State.WARMING and "slew" not in night.actions[-3:]


def test_a_failed_park_in_the_rain_is_tried_again():
    night = Night().to_imaging()
    night.fair = False
    night.send(Ev.WEATHER, 1, status="alert")
    night.send(Ev.PARK_FAILED, 1, reason="mount alert")
    assert night.state is State.UNSAFE and "trying again" in night.snap.reason
    night.send(Ev.WEATHER, 10, status="alert")
    assert night.send(Ev.CLOCK, 21) == ["park"]
    night.send(Ev.PARKED, 5)
    assert night.state is State.PARKED


# ---- stuck and unknown ----------------------------------------------------------------------
@pytest.mark.parametrize("state", ["cooling", "slewing", "centering", "starting_guider", "dithering", "refocusing"])
def test_a_stuck_busy_state_parks(state):
    limit = FULL.timeouts[state]
    snap = Snapshot(state=state, since=0.0, last_weather=limit - 1, weather_status="ok")
    new, _ = step(snap, Ev.CLOCK, limit - 1, FULL, {})
    assert new.state == state
    snap = Snapshot(state=state, since=0.0, last_weather=limit + 1, weather_status="ok")
    new, actions = step(snap, Ev.CLOCK, limit + 1, FULL, {})
    assert new.state == "parking" and "stuck" in new.reason and "park" in [a.kind for a in actions]


def test_stuck_parking_asks_again_and_stuck_warming_ends():
    new, actions = step(Snapshot(state="parking", since=0.0, busy="park"), Ev.CLOCK, 601, FULL, {})
    assert new.state == "parking" and [a.kind for a in actions] == ["park"] and new.since == 601
    new, actions = step(Snapshot(state="warming", since=0.0), Ev.CLOCK, 601, FULL, {})
    assert new.state == "done" and [a.kind for a in actions] == ["finish"]


def test_an_unknown_state_parks():
    new, actions = step(Snapshot(state="meridian_flip_v9"), Ev.CLOCK, 1.0, FULL, {})
    assert new.state == "parking" and "unknown state" in new.reason and "park" in [a.kind for a in actions]


def test_every_table_entry_moves_as_written():
    """Each (state, event) of the table, from a snapshot in that state, goes where the table says
    (or to where the decision function sends it, for the bracketed entries)."""
    seen = set()
    for (state, event), target in TRANSITIONS.items():
        snap = Snapshot(state=state.value, since=0.0, last_weather=10.0, weather_status="ok", window_start=0.0,
                        window_end=10_000.0, safe_since=0.0, retry_at=5.0, next_duration=10.0)
        data = {"status": "ok"} if event is Ev.WEATHER else {}
        new, _ = step(snap, event, 10.0, FULL, data)
        if not target.startswith("<"):
            assert new.state == State(target).value, (state, event)
        seen.add((state, event))
    assert seen == set(TRANSITIONS)


# ---- restart --------------------------------------------------------------------------------
@pytest.mark.parametrize("state", [s for s in State])
def test_restart_in_each_state(state, tmp_path):
    saved = Snapshot(state=state.value, since=10.0, reason="before the restart", weather_status="ok",
                     safe_since=5.0, last_weather=10.0, busy="expose")
    path = tmp_path / "night.json"
    path.write_text(json.dumps(saved.to_dict()))
    back = Snapshot.from_dict(json.loads(path.read_text()))
    assert back == saved
    snap, actions = resume(back, 100.0, FULL, window_start=0.0, window_end=10_000.0, next_duration=60.0)
    kinds = [a.kind for a in actions]
    if state is State.DONE:
        assert snap.state == "cooling" and kinds == ["cool"]  # a finished night: the next one starts afresh
        return
    expected = RESUME[state]
    if expected in (State.WAITING_DARK, State.SECURING):  # nothing to park in FULL: securing passes  # the window (from 0) has started: on to cooling at once
        assert snap.state == "cooling" and kinds == ["cool"]
        return
    assert snap.state == expected.value, state
    assert snap.busy in (None, *kinds)
    if expected is State.SLEWING:
        assert kinds == ["slew"]  # point and guide again before the next frame
    if expected in (State.UNSAFE,):
        assert kinds == ["abort_exposures", "stop_guider", "park"]
    if expected is State.PARKED:
        assert kinds == [] and snap.safe_since is None  # safe_for counts again from the restart


def test_restart_parked_for_rain_parks_again_and_stays_parked_until_safe_for():
    saved = Snapshot(state="parked", since=10.0, weather_status="ok", safe_since=0.0, last_weather=50.0)
    snap, actions = resume(saved, 100.0, FULL, 0.0, 10_000.0, 60.0)
    assert snap.state == "unsafe" and "park" in [a.kind for a in actions]  # someone may have moved it
    snap, _ = step(snap, Ev.PARKED, 100.0, FULL, {})
    assert snap.state == "parked"
    for now in range(101, 161, 10):
        snap, actions = step(snap, Ev.WEATHER, float(now), FULL, {"status": "ok"})
        assert snap.state == "parked"
    snap, actions = step(snap, Ev.WEATHER, 161.0, FULL, {"status": "ok"})
    assert snap.state == "slewing" and [a.kind for a in actions] == ["slew"]


def test_restart_before_dusk_of_an_active_night_waits_for_dark():
    saved = Snapshot(state="imaging", since=10.0, weather_status="ok", last_weather=10.0)
    snap, actions = resume(saved, 100.0, FULL, window_start=500.0, window_end=10_000.0)
    assert snap.state == "waiting_dark" and actions == [] and snap.until == 500.0


def test_restart_in_an_unknown_state_parks():
    snap, actions = resume(Snapshot(state="nonsense"), 100.0, FULL, 0.0, 1000.0)
    assert snap.state == "parking" and "park" in [a.kind for a in actions]


def test_bare_restart_mid_sequence_images_at_once():
    saved = Snapshot(state="imaging", since=10.0)
    snap, actions = resume(saved, 100.0, BARE, None, None, 60.0)
    assert snap.state == "imaging" and [a.kind for a in actions] == ["expose"]


def test_step_does_not_modify_its_input():
    snap = Snapshot(state="imaging", since=0.0, last_weather=0.0, weather_status="ok")
    copy = Snapshot.from_dict(snap.to_dict())
    step(snap, Ev.WEATHER, 1.0, FULL, {"status": "alert"})
    assert snap == copy


def test_the_machine_reads_no_clock_and_no_hardware():
    import ast
    import inspect

    from indisync.night import calib_steps, events, machine, state

    for module in (machine, events, state, calib_steps):
        tree = ast.parse(inspect.getsource(module))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) or not node.module  # from . import x
                                  else [ast.alias(node.module)])}
        # meridian: pure maths; events: the typed payloads; calib_steps: the calibration's decisions
        assert imported <= {"__future__", "dataclasses", "enum", "typing", "meridian", "events", "state",
                            "calib_steps"}, imported


def test_status_shows_the_night_and_the_cooling():
    from indisync.commands.status import render_table

    row = {"name": "ota1", "role": "master", "online": True, "phase": "idle", "filter": None, "exposure": None,
           "hfr": None, "focuser_position": None, "frames": 3, "seconds_since_heartbeat": 0.5,
           "temperature": -2.9, "cooling": {"setpoint": -10.0, "temperature": -2.9, "reached": False, "eta_s": 840},
           "night": {"state": "parked", "since": "2026-12-03T23:10:04Z", "until": "2026-12-03T23:20:04Z",
                     "reason": "weather alert (WEATHER_STATUS)"}}
    text = render_table([row])
    assert "-2.9→-10°C 14 min" in text
    assert "night (ota1): parked since 23:10:04 until 23:20:04 UTC: weather alert (WEATHER_STATUS)" in text


def test_stop_while_it_rains_ends_the_night_and_does_not_resume():
    night = Night().to_imaging()
    night.fair = False
    night.weather_ok()
    night.snap.weather_status = "alert"  # the alert and the stop arrive in the same step
    assert night.send(Ev.STOP, 1) == ["abort_exposures", "stop_guider", "park"]
    assert night.state is State.PARKING and night.snap.stop_requested
    night.clear_for(120)
    assert night.state is State.PARKING  # no resuming after safe_for: the night was stopped
    night.send(Ev.PARKED, 1)
    assert night.state is State.WARMING


# ---- the meridian flip ------------------------------------------------------------------------
from indisync.night.meridian import SIDEREAL_RATE, FlipSettings  # noqa: E402

FLIP = NightPlan(cool=False, slew=True, guide=True, park_at_end=True, warm_at_end=False, weather=False,
                 flip=True, flip_settings=FlipSettings(after_meridian_min=5, max_wait_min=10))


def flip_night(ha_min_at_slew, next_duration=60.0, plan=FLIP):
    """A night imaging a target ``ha_min_at_slew`` minutes of hour angle from the meridian at t=0."""
    night = Night(plan=plan, window=(0.0, 100_000.0), next_duration=next_duration)
    night.fair = False
    assert night.state is State.SLEWING
    night.send(Ev.SLEWED, 0, ha_hours=ha_min_at_slew / 60.0, ha_at=night.now, pier_side="west")
    out = night.send(Ev.CENTERED, 1, ok=True)
    if plan.guide:
        out = night.send(Ev.GUIDER_STARTED, 1, ok=True)
    assert out == ["expose"]
    return night


def ha_min(night):
    return (night.snap.ha_hours + (night.now - night.snap.ha_at) * SIDEREAL_RATE / 3600) * 60


def test_the_flip_comes_between_frames_once_past_after_meridian_min():
    night = flip_night(-2.0)
    out = []
    while night.state is State.IMAGING:
        out = night.send(Ev.FRAME_DONE, 60, ok=True, next_duration=60)
    assert night.state is State.FLIPPING and out == ["flip"], night.states
    assert 5.0 <= ha_min(night) < 6.01 and "meridian flip" in night.snap.reason
    assert night.snap.busy == "flip"
    # the pier side changed: re-centre, guide again, image on; never a second flip
    assert night.send(Ev.FLIPPED, 30, pier_side="east", ha_hours=ha_min(night) / 60, ha_at=night.now) == ["center"]
    night.send(Ev.CENTERED, 5, ok=True)
    assert night.send(Ev.GUIDER_STARTED, 5, ok=True) == ["expose"]
    for _ in range(20):
        assert night.send(Ev.FRAME_DONE, 60, ok=True, next_duration=60) == ["expose"]
    assert night.states.count("flipping") == 1
    assert night.states[-4:] == ["flipping", "centering", "starting_guider", "imaging"]


def test_a_frame_that_would_end_past_the_limit_is_held_and_the_flip_said_when():
    night2 = flip_night(-30.0, next_duration=20 * 60.0)  # starts at -30, ends at -10: fine
    out = night2.send(Ev.FRAME_DONE, 20 * 60, ok=True, next_duration=20 * 60.0)  # now at ~-10 min: would end at +10
    assert out == ["expose"]
    out = night2.send(Ev.FRAME_DONE, 20 * 60, ok=True, next_duration=20 * 60.0)  # at ~+10: past after_meridian
    assert out == ["flip"]
    night3 = flip_night(-6.0, next_duration=20 * 60.0)  # the first frame ends at about 14 min: taken
    out = night3.send(Ev.FRAME_DONE, 150, ok=True, next_duration=20 * 60.0)  # at -3.5 min one would end at 16.6
    assert out == ["flip"] and night3.state is State.FLIPPING
    assert night3.snap.reason.startswith("waiting for the meridian flip at ") and " UTC" in night3.snap.reason
    assert night3.snap.until == pytest.approx(night3.now + (5 - ha_min(night3)) * 60 / SIDEREAL_RATE, abs=0.5)


def test_the_first_frame_is_held_too_and_the_wait_is_bounded():
    night = Night(plan=FLIP, window=(0.0, 100_000.0), next_duration=20 * 60.0)
    night.fair = False
    night.send(Ev.SLEWED, 0, ha_hours=-3 / 60, ha_at=0.0, pier_side="west")
    night.send(Ev.CENTERED, 1, ok=True)
    out = night.send(Ev.GUIDER_STARTED, 1, ok=True)
    assert out == ["flip"] and night.state is State.FLIPPING
    assert night.snap.flip_at == pytest.approx(8 * 60 / SIDEREAL_RATE, abs=1.0)
    # stuck past the flipping timeout: park
    night.send(Ev.CLOCK, FLIP.timeouts["flipping"] + 10)
    assert night.state is State.PARKING and "stuck in flipping" in night.snap.reason


def test_a_refocus_due_at_flip_time_waits_for_the_flip():
    night = flip_night(4.5)
    out = night.send(Ev.FRAME_DONE, 60, ok=True, refocus="after batch", dither=True, next_duration=60)
    assert out == ["flip"] and night.snap.pending_refocus == "after batch"
    night.send(Ev.FLIPPED, 30, pier_side="east", ha_hours=0.1, ha_at=night.now)
    night.send(Ev.CENTERED, 5, ok=True)
    assert night.send(Ev.GUIDER_STARTED, 5, ok=True) == ["refocus"]
    assert "held for the meridian flip" in night.snap.reason and night.snap.pending_refocus is None
    assert night.send(Ev.REFOCUSED, 60) == ["expose"]


def test_a_flip_that_kept_the_pier_side_parks_and_ends_even_without_park_at_end():
    plan = NightPlan(slew=True, park_at_end=False, flip=True, flip_settings=FlipSettings(0.5, 1.0))
    night = flip_night(0.2, plan=plan, next_duration=10)
    assert night.send(Ev.FRAME_DONE, 30, ok=True, next_duration=10) == ["flip"]
    out = night.send(Ev.FLIP_FAILED, 20, reason="pier side stayed west after the flip slew")
    assert "park" in out and "stop_guider" in out
    assert "meridian flip failed: pier side stayed west" in night.snap.reason
    assert night.state in (State.PARKING, State.WARMING, State.DONE) and night.snap.stop_requested


def test_no_flip_without_the_plan_flag_or_an_hour_angle_or_on_the_east_side():
    plan = NightPlan(slew=True, flip=False)
    night = flip_night(10.0, plan=plan)
    assert night.send(Ev.FRAME_DONE, 10, ok=True, next_duration=10) == ["expose"]
    night = Night(plan=FLIP, window=(0.0, 100_000.0), next_duration=60)
    night.fair = False
    night.send(Ev.SLEWED, 0)  # the mount reports no coordinates: nothing to decide on
    night.send(Ev.CENTERED, 1, ok=True)
    assert night.send(Ev.GUIDER_STARTED, 1, ok=True) == ["expose"]
    night = Night(plan=FLIP, window=(0.0, 100_000.0), next_duration=60)
    night.fair = False
    night.send(Ev.SLEWED, 0, ha_hours=0.5, ha_at=0.0, pier_side="east")  # started past the meridian
    night.send(Ev.CENTERED, 1, ok=True)
    assert night.send(Ev.GUIDER_STARTED, 1, ok=True) == ["expose"]


def test_the_frames_feed_the_hour_angle_and_the_pier_side():
    night = flip_night(-60.0)
    night.send(Ev.FRAME_DONE, 60, ok=True, next_duration=60, ha_hours=-0.9, ha_at=night.now + 60, pier_side="west")
    assert night.snap.ha_hours == -0.9 and night.snap.ha_at == night.now and night.snap.pier_side == "west"
