"""The night's executor (indisync.night.executor) on the fake rig: the real machine and the real
actions over stand-in devices, the loop on its own thread. Each test is one of the safety issue's
cases: actions never outlive their state, a park pre-empts any motion, a failed park is retried with
an error each time, the dome closes whatever the mount does, no exception ends the night without a
park, a frame not taken is never counted, a start in daylight parks first."""

from __future__ import annotations

import time

import pytest

from indisync.config import load_config
from indisync.night import executor as executor_module
from indisync.night.events import WeatherUpdate
from tests.fakes.night import NightRun
from tests.fakes.rig import fake_rig

pytestmark = pytest.mark.timeout(60)


def config(**extra):
    data = {"node": {"name": "master", "role": "master"},
            "master": {"target": {"name": "T", "ra": 90.0, "dec": 30.0}, "batches": 1,
                       "sequence": {"slots": [{"type": "light", "filter": "L", "exposure": 0.05, "repeat": 4}]},
                       "refocus": {"after_batch": False}},
            "night": {"cool": True, "park_at_end": True, "warm_at_end": True},
            "indi": {"weather": "Weather", "dome": "Dome"},
            "safety": {"safe_for": 0.5, "stale_after": 30, "park_retry": 0.2, "frame_retry": 0.2, "poll": 0.02}}
    for key, value in extra.items():
        data.setdefault(key, {}).update(value)
    return load_config(data=data)


class Night(NightRun):
    """An executor on the fake rig, running on a thread; the window is relative to now."""

    def __init__(self, monkeypatch, cfg=None, window=(-10.0, 3600.0), **rig_options):
        self.cfg = cfg or config()
        super().__init__(monkeypatch, fake_rig(self.cfg, **rig_options), window)

    def rain(self):
        self.rig.parts.weather.set("alert")


def test_rain_during_the_first_slew_parks_at_once_and_the_slew_never_fights_the_park(monkeypatch):
    night = Night(monkeypatch, latency=0.3).start()  # a slow mount: the rain lands mid-slew
    mount, dome = night.rig.parts.mount, night.rig.parts.dome
    night.wait(lambda: night.rig.arbiter.holder == "slew", what="the slew under way")
    night.rain()
    rained = time.monotonic()
    night.wait(lambda: mount.parked and dome.shutter_open is False, what="parked and closed")
    took = time.monotonic() - rained
    assert took < 1.5, took  # one park's travel (0.3 s here) plus the abort of the slew
    assert mount.conflicts == []  # no slew or unpark ran into the park
    assert "slewed" not in [e for _, _, e in night.rig.parts.log]  # the slew was cancelled, not finished
    time.sleep(0.5)  # and it stays so: nothing of the old state moves the mount again
    assert mount.parked and dome.shutter_open is False and night.executor.snapshot.state in ("unsafe", "parked")
    night.stop()
    assert night.error is None


def test_a_refused_park_is_retried_with_an_error_each_time_and_the_dome_closes_anyway(monkeypatch):
    night = Night(monkeypatch).start()
    night.wait(lambda: night.executor.snapshot.state == "imaging", what="imaging")
    night.rig.parts.faults.park_refusals = 3
    night.rain()
    night.wait(lambda: night.rig.parts.dome.shutter_open is False, what="the dome closed")
    assert not night.rig.parts.mount.parked  # the mount refused, the dome closed all the same (I4)
    night.wait(lambda: night.rig.parts.mount.parked, what="parked after three refusals")
    park_errors = [e for e in night.rig.report.errors if e.startswith("park failed")]
    assert len(park_errors) == 3, night.rig.report.errors
    night.stop()


def test_a_roll_off_roof_stays_open_until_the_mount_has_parked(monkeypatch):
    night = Night(monkeypatch, cfg=config(dome={"requires_mount_parked": True})).start()
    night.wait(lambda: night.executor.snapshot.state == "imaging", what="imaging")
    night.rig.parts.faults.park_refusals = 2
    night.rain()
    night.wait(lambda: len(night.rig.report.errors) >= 1, what="the first refusal")
    assert night.rig.parts.dome.shutter_open is True  # the roof would hit the telescope
    assert "requires_mount_parked" in night.rig.report.errors[0]
    night.wait(lambda: night.rig.parts.mount.parked and night.rig.parts.dome.shutter_open is False,
               what="parked, then closed")
    night.stop()


def test_a_start_in_daylight_parks_and_closes_first_and_never_slews(monkeypatch):
    night = Night(monkeypatch, window=(3600.0, 7200.0)).start()
    mount = night.rig.parts.mount
    assert not mount.parked  # left out by a crash
    night.wait(lambda: mount.parked, what="parked")
    night.wait(lambda: night.executor.snapshot.state == "waiting_dark", what="waiting for dark")
    time.sleep(0.3)
    assert [e for _, who, e in night.rig.parts.log if e in ("slew_start", "unparked")] == []
    assert night.states()[:2] == ["securing", "waiting_dark"]
    night.stop()


def test_a_frame_not_taken_is_not_counted_and_the_same_slot_is_taken_again(monkeypatch):
    night = Night(monkeypatch).start()
    night.wait(lambda: night.executor.snapshot.state == "imaging", what="imaging")
    night.rig.parts.faults.frame_failures = 5  # an outage: five attempts without a frame
    imaging = night.rig.parts.imaging
    night.wait(lambda: night.executor.snapshot.state == "done", timeout=20, what="the night done")
    assert imaging.frames_on_disk == 4 and imaging.progress.batch >= 1  # every slot has its frame
    assert any("frame not taken" in s.get("night", {}).get("reason", "") for s in night.rig.report.states)
    night.thread.join(5)
    assert night.error is None


def test_a_full_disk_and_a_reason_with_a_tab_do_not_end_the_night(monkeypatch):
    night = Night(monkeypatch)
    night.rig.store.full = True
    night.start()
    night.wait(lambda: night.executor.snapshot.state == "imaging", what="imaging")
    night.executor.post(WeatherUpdate(status="alert"))
    # every reason is published cleaned: a driver's "\t" or "\n" never reaches the state schema
    assert executor_module.clean("Telescope\trefused\nPARK") == "Telescope refused PARK"
    night.wait(lambda: night.rig.parts.mount.parked, what="parked on a full disk")
    assert any("could not save the state" in e for e in night.rig.report.errors)
    night.stop()
    assert night.error is None


def test_an_exception_in_the_loop_parks_and_closes_before_it_ends_the_master(monkeypatch):
    night = Night(monkeypatch)
    night.start()
    night.wait(lambda: night.executor.snapshot.state == "imaging", what="imaging")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the machine")

    monkeypatch.setattr(executor_module, "step", broken)
    night.thread.join(5)
    assert isinstance(night.error, RuntimeError)
    assert night.rig.parts.mount.parked and night.rig.parts.dome.shutter_open is False
    assert any("executor failed" in e for e in night.rig.report.errors)
    assert night.executor.finished.is_set()  # the weather watch ends with the loop
    night.stop()


def test_an_answer_from_a_state_the_night_has_left_is_ignored(monkeypatch):
    night = Night(monkeypatch, latency=0.2).start()
    night.wait(lambda: night.rig.arbiter.holder == "slew", what="the slew under way")
    night.rain()
    night.wait(lambda: night.executor.snapshot.state == "parked", what="parked")
    night.rig.parts.weather.set("ok")
    time.sleep(0.1)
    # the cancelled slew answered nothing, or its answer was dropped: the night never took it for its own
    assert "centering" not in night.states()
    night.stop()


def test_a_frame_still_in_its_delay_when_the_night_resumes_never_runs_beside_the_new_one(monkeypatch):
    cfg = config(master={"sequence": {"delay_between": 0.4, "slots": [{"type": "light", "filter": "L",
                                                                       "exposure": 0.05, "repeat": 6}]}},
                 safety={"safe_for": 0.1})
    night = Night(monkeypatch, cfg=cfg).start()
    imaging = night.rig.parts.imaging
    night.wait(lambda: imaging.frames_on_disk >= 2, what="two frames")
    night.rain()  # the next frame is in its 0.4 s delay
    night.wait(lambda: night.executor.snapshot.state == "parked", what="parked")
    on_disk = imaging.frames_on_disk
    night.rig.parts.weather.set("ok")
    night.wait(lambda: night.executor.snapshot.state == "done", timeout=20, what="the night done")
    assert imaging.most_at_once == 1
    assert imaging.frames_on_disk == 6 and on_disk < 6  # every slot once, none twice, none lost
    night.thread.join(5)
