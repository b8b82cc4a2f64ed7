"""The machine's safety rules (README: the invariants I1-I7), each with scripted events and a fake
clock: a rig that may be out is parked outside the window, every state has an exit at the window's
end, a park is never given up, a frame not taken is never counted."""

from indisync.night.machine import Ev, NightPlan, Snapshot, State, resume, start, step

RIG = NightPlan(cool=True, slew=True, guide=True, park_at_end=True, warm_at_end=True, weather=True,
                safe_for=60, stale_after=30, can_park=True, frame_retry=20)
WINDOW = (1000.0, 5000.0)


def kinds(actions):
    return [a.kind for a in actions]


def drive(snap, plan, now, *events):
    """Send (event, data) pairs at ``now``, with a safe weather update before each; all actions."""
    out = []
    for event, data in events:
        snap, _ = step(snap, Ev.WEATHER, now, plan, {"status": "ok"})
        snap, actions = step(snap, event, now, plan, data)
        out += kinds(actions)
    return snap, out


def imaging(plan=RIG, now=1000.0):
    """A night imaging at ``now`` (secured in daylight first)."""
    snap, _ = start(0.0, plan, *WINDOW, next_duration=100.0)
    snap, _ = drive(snap, plan, 0.0, (Ev.PARKED, {}))
    snap, _ = drive(snap, plan, now, (Ev.CLOCK, {}), (Ev.COOLED, {}), (Ev.SLEWED, {}), (Ev.CENTERED, {"ok": True}),
                    (Ev.GUIDER_STARTED, {"ok": True}))
    assert snap.state == "imaging" and snap.busy == "expose"
    return snap


def test_a_start_in_daylight_parks_and_closes_first_then_waits_for_dark():
    snap, actions = start(0.0, RIG, *WINDOW)
    assert snap.state == "securing" and kinds(actions) == ["stop_guider", "park"]
    snap, actions = step(snap, Ev.PARKED, 3.0, RIG, {})
    assert snap.state == "waiting_dark" and snap.secured and actions == []
    snap, actions = step(snap, Ev.CLOCK, 1000.0, RIG, {})
    assert snap.state == "cooling" and kinds(actions) == ["cool"]


def test_a_restart_in_daylight_from_imaging_parks_and_never_slews():
    saved = Snapshot(state="imaging", since=10.0, weather_status="ok", last_weather=10.0, busy="expose",
                     secured=False)
    snap, actions = resume(saved, 100.0, RIG, *WINDOW)
    assert snap.state == "securing" and "park" in kinds(actions) and "slew" not in kinds(actions)
    seen = []
    for now in range(101, 990, 30):  # a failed park is tried again; no slew however long it takes
        event = Ev.PARK_FAILED if snap.busy == "park" else Ev.CLOCK
        snap, actions = step(snap, event, float(now), RIG, {"reason": "alert"})
        seen += kinds(actions)
    assert "slew" not in seen and seen.count("park") >= 2 and snap.state == "securing"
    snap, _ = step(snap, Ev.PARKED, 995.0, RIG, {})
    assert snap.state == "waiting_dark"


def test_a_saved_parked_or_cooling_state_resumed_before_dark_never_slews():
    for state in ("parked", "unsafe", "cooling"):
        saved = Snapshot(state=state, since=10.0, weather_status="ok", last_weather=10.0, safe_since=0.0)
        snap, actions = resume(saved, 100.0, RIG, *WINDOW)
        out = kinds(actions)
        for now in range(101, 900, 50):  # safe weather for far longer than safe_for, still before dark
            snap, actions = step(snap, Ev.WEATHER, float(now), RIG, {"status": "ok"})
            out += kinds(actions)
            if snap.state == "securing" and snap.busy == "park":
                snap, actions = step(snap, Ev.PARKED, float(now), RIG, {})
                out += kinds(actions)
        assert "slew" not in out and snap.state == "waiting_dark", (state, snap.state, out)


def test_rain_before_the_first_slew_parks_a_rig_nobody_has_secured():
    snap, _ = start(1000.0, RIG, *WINDOW)  # in the window: cooling at once, the mount where it was left
    assert snap.state == "cooling" and not snap.secured
    snap, actions = step(snap, Ev.WEATHER, 1001.0, RIG, {"status": "alert"})
    assert snap.state == "unsafe" and "park" in kinds(actions)


def test_imaging_waiting_for_a_guide_star_ends_at_the_window_end():
    snap = imaging()
    snap, _ = step(snap, Ev.WEATHER, WINDOW[1] - 1, RIG, {"status": "ok"})
    snap, actions = step(snap, Ev.CLOCK, WINDOW[1], RIG, {})
    assert snap.state == "parking" and kinds(actions) == ["abort_exposures", "stop_guider", "park"]
    snap, actions = step(snap, Ev.PARKED, WINDOW[1] + 5, RIG, {})
    assert kinds(actions) == ["warm"]


def test_parked_or_unsafe_for_rain_until_the_window_end_still_ends_the_night():
    for rained in ("parked", "unsafe"):
        snap = imaging()
        snap, _ = step(snap, Ev.WEATHER, 2000.0, RIG, {"status": "alert"})
        if rained == "parked":
            snap, _ = step(snap, Ev.PARKED, 2005.0, RIG, {})
        assert snap.state == rained
        snap, _ = step(snap, Ev.WEATHER, WINDOW[1], RIG, {"status": "alert"})
        assert snap.state == "parking", rained
        snap, actions = step(snap, Ev.PARKED, WINDOW[1] + 5, RIG, {})
        snap, actions = step(snap, Ev.WARMED, WINDOW[1] + 50, RIG, {})
        assert snap.state == "done" and kinds(actions) == ["finish"]


def test_a_failed_slew_parks_even_with_park_at_end_off():
    plan = NightPlan(slew=True, park_at_end=False, can_park=True)
    snap, _ = start(1000.0, plan, *WINDOW)
    assert snap.state == "slewing"
    snap, actions = step(snap, Ev.SLEW_FAILED, 1001.0, plan, {"reason": "no arrival"})
    assert snap.state == "parking" and "park" in kinds(actions)
    # ...while a sequence that simply finishes leaves the mount where park_at_end: false says
    plan2 = NightPlan(park_at_end=False, can_park=True)
    snap, _ = start(1000.0, plan2, *WINDOW, next_duration=10.0)
    snap, actions = step(snap, Ev.FRAME_DONE, 1020.0, plan2, {"ok": True, "finished": True})
    assert snap.state == "done"


def test_a_frame_not_taken_pauses_the_sequence_and_takes_the_same_slot_again():
    snap = imaging()
    snap, _ = step(snap, Ev.WEATHER, 1099.0, RIG, {"status": "ok"})
    snap, actions = step(snap, Ev.FRAME_DONE, 1100.0, RIG, {"ok": False, "reason": "indiserver gone"})
    assert snap.state == "imaging" and actions == [] and "indiserver gone" in snap.reason
    snap, actions = step(snap, Ev.WEATHER, 1110.0, RIG, {"status": "ok"})
    assert actions == []  # paused for frame_retry
    snap, _ = step(snap, Ev.WEATHER, 1119.0, RIG, {"status": "ok"})
    snap, actions = step(snap, Ev.CLOCK, 1121.0, RIG, {})
    assert kinds(actions) == ["expose"]


def test_stop_during_a_paused_sequence_parks():
    snap = imaging()
    snap, _ = step(snap, Ev.WEATHER, 1099.0, RIG, {"status": "ok"})
    snap, _ = step(snap, Ev.FRAME_DONE, 1100.0, RIG, {"ok": False, "reason": "camera gone"})
    snap, actions = step(snap, Ev.STOP, 1101.0, RIG, {"abort": False})
    assert snap.state == "parking"
