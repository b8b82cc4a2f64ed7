"""The night machine's target switch (issue 16): a ``frame_done`` with ``switch`` moves the night to
the season's next target: stop_guider, slewing -> centering -> starting_guider -> imaging. Scripted
events and a fake clock (no servers); the table stays the table (no new pair)."""

from indisync.night.events import FrameDone
from indisync.night.machine import TRANSITIONS, Ev, NightPlan, Snapshot, State, step
from tests.unit.test_night_machine import BARE, FULL, Night

FLIP = NightPlan(cool=True, slew=True, guide=True, park_at_end=True, warm_at_end=True, weather=True,
                 safe_for=60, stale_after=30, flip=True)


def test_a_switch_stops_guiding_then_slews_centres_guides_and_images_the_next_target():
    night = Night().to_imaging()
    night.weather_ok()
    out = night.send(Ev.FRAME_DONE, 100, ok=True, dither=True, next_duration=100,
                     switch="M101: highest score 2.31")
    assert out == ["stop_guider", "slew"]  # no dither at a target being left
    assert night.state is State.SLEWING
    assert night.snap.reason == "next target: M101: highest score 2.31"
    assert night.snap.secured is False and night.snap.busy == "slew"
    assert night.send(Ev.SLEWED, 5) == ["center"]
    assert night.send(Ev.CENTERED, 5, ok=True, error_arcsec=3.0, attempts=1) == ["start_guider"]
    assert night.send(Ev.GUIDER_STARTED, 5, ok=True) == ["expose"]
    assert night.states[-5:] == ["imaging", "slewing", "centering", "starting_guider", "imaging"]


def test_a_refocus_due_with_the_switch_is_done_at_the_next_target():
    night = Night().to_imaging()
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, refocus="after batch", switch="M51 complete") == \
        ["stop_guider", "slew"]
    assert night.snap.pending_refocus == "after batch"
    night.send(Ev.SLEWED, 5)
    night.send(Ev.CENTERED, 5, ok=True)
    assert night.send(Ev.GUIDER_STARTED, 5, ok=True) == ["refocus"]
    assert night.snap.reason == "refocus (held for the slew to the next target): after batch"
    assert night.snap.pending_refocus is None and night.snap.refocus_held_for == "the meridian flip"
    assert night.send(Ev.REFOCUSED, 20) == ["expose"]


def test_the_end_of_the_season_or_a_stop_wins_over_a_switch():
    night = Night().to_imaging()
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, finished=True, switch="M101") == ["stop_guider", "park"]
    assert night.state is State.PARKING and night.snap.reason == "the sequence is finished"
    night = Night().to_imaging()
    night.weather_ok()
    night.send(Ev.STOP, 10)  # the frame under way finishes; then the night parks
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 90, ok=True, switch="M101") == ["stop_guider", "park"]
    assert night.state is State.PARKING and night.snap.reason == "stopped by hand"


def test_a_frame_not_taken_never_switches_it_is_taken_again():
    night = Night().to_imaging()
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=False, reason="camera gone", switch="M101") == []
    assert night.state is State.IMAGING and night.snap.retry_at is not None


def test_a_switch_when_the_flip_is_due_slews_to_the_next_target_instead_of_flipping():
    night = Night(plan=FLIP).to_imaging()
    night.weather_ok()
    # the old target is past the meridian: a flip would be due, but the night leaves it
    out = night.send(Ev.FRAME_DONE, 100, ok=True, switch="M101", ha_hours=0.5, pier_side="west")
    assert out == ["stop_guider", "slew"] and night.state is State.SLEWING
    night = Night(plan=FLIP).to_imaging()
    night.weather_ok()
    assert night.send(Ev.FRAME_DONE, 100, ok=True, ha_hours=0.5, pier_side="west") == ["flip"]


def test_a_switch_in_rain_goes_unsafe_not_slewing():
    night = Night().to_imaging()
    night.fair = False
    night.send(Ev.WEATHER, 0, status="alert")
    assert night.state is State.UNSAFE
    night = Night().to_imaging()
    night.fair = False
    # the weather went stale during the frame: the switch's slew is not allowed
    out = night.send(Ev.FRAME_DONE, 200, ok=True, switch="M101")
    assert night.state is State.UNSAFE and "park" in out


def test_without_a_mount_the_switch_goes_straight_on_imaging_the_next_target():
    night = Night(plan=BARE, window=(None, None))
    assert night.state is State.IMAGING
    assert night.send(Ev.FRAME_DONE, 100, ok=True, switch="M101") == ["stop_guider", "expose"]
    assert night.state is State.IMAGING


def test_a_switch_near_the_window_end_parks_instead_of_imaging_there():
    night = Night(window=(1000.0, 1400.0)).to_imaging()
    night.weather_ok()
    night.send(Ev.FRAME_DONE, 100, ok=True, switch="M101", next_duration=100)
    night.send(Ev.SLEWED, 100)
    night.send(Ev.CENTERED, 50, ok=True)
    assert night.send(Ev.GUIDER_STARTED, 50, ok=True) == ["stop_guider", "park"]
    assert night.state is State.PARKING and "window closes" in night.snap.reason


def test_the_switch_is_a_field_of_frame_done_and_the_table_has_no_new_pair():
    assert FrameDone(switch="why").switch == "why" and FrameDone().switch is None
    assert TRANSITIONS[(State.IMAGING, Ev.FRAME_DONE)] == "<after frame>"
    assert not [pair for pair in TRANSITIONS if pair[1] is Ev.FRAME_DONE and pair[0] is not State.IMAGING]


def test_the_held_refocus_survives_a_saved_snapshot():
    night = Night().to_imaging()
    night.weather_ok()
    night.send(Ev.FRAME_DONE, 100, ok=True, refocus="temperature", switch="M101")
    saved = Snapshot.from_dict(night.snap.to_dict())
    assert saved.pending_refocus == "temperature" and saved.refocus_held_for == "the slew to the next target"
    # an old snapshot (before this field) reads back with the default
    old = night.snap.to_dict()
    old.pop("refocus_held_for")
    assert Snapshot.from_dict(old).refocus_held_for == "the meridian flip"
    snap, _ = step(saved, Ev.SLEWED, night.now + 1, FULL)
    assert snap.state == "centering"
