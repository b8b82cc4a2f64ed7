"""The season's runtime in the night (issue 16), on the real store and scheduler over a synthetic sky
(no astropy, no servers, no wall clock): the first pick, keeping the target between frames, the
switch when its plan is met, a restart resuming the same target, each node's lines (needed, surplus,
idle), grades that arrive before their frame, and the ``season`` state field."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indisync.night.settings import SiteSettings
from indisync.protocol import messages
from indisync.season.ephem import JD_J2000, NightSky
from indisync.season.model import ACCEPTED, PENDING, REJECTED, Constraints, PlanLine, Project, Target
from indisync.season.runtime import SeasonRuntime
from indisync.season.settings import MoonRule, MoonSettings, SchedulerSettings
from indisync.season.store import FrameRow, SeasonStore

T0 = 1_803_000_000.0  # a fixed instant (2027): no test depends on the date or the time of day
STEP = 60.0
LAT = 45.0
LST0 = 100.0  # degrees at T0


def synthetic_sky(site, when):
    """A dark, moonless night of 10 h from T0 - 1 h at latitude 45 (J2000 = the date: no precession)."""
    start = T0 - 3600.0
    times = start + STEP * np.arange(600)
    lst = np.mod(LST0 + 360.98564736629 * (times - T0) / 86400.0, 360.0)
    n = len(times)
    return NightSky(times=times, sun_alt=np.full(n, -40.0), moon_ra=np.zeros(n), moon_dec=np.full(n, -80.0),
                    moon_alt=np.full(n, -50.0), moon_illum=np.zeros(n), moon_age_days=np.zeros(n), lst_deg=lst,
                    lat=LAT, lon=0.0, step_s=STEP, epoch_jd=JD_J2000, night_date="2027-02-18")


def ra_at_hour_angle(ha_hours: float) -> float:
    return (LST0 - ha_hours * 15.0) % 360.0


def altitude(ha_deg: float, dec: float) -> float:
    lat, d, h = map(math.radians, (LAT, dec, ha_deg))
    return math.degrees(math.asin(math.sin(lat) * math.sin(d) + math.cos(lat) * math.cos(d) * math.cos(h)))


SETTINGS = SchedulerSettings(min_altitude=30, min_minutes=30, replan_min=15,
                             moon=MoonSettings(MoonRule(0, 14), MoonRule(0, 7)))


def plan(**lines):
    out = []
    for node, items in lines.items():
        out += [PlanLine(node, f, e, c) for f, e, c in items]
    return tuple(out)


HIGH = Target("p", "HIGH", ra_at_hour_angle(-1.0), 45.0,
              plan(master=[("L", 2.0, 2)], slave1=[("Red", 2.0, 1), ("Green", 2.0, 1)]))
# low in the east: below 30° at T0, above it ~10 min later (dec 0, hour angle -3.15 h)
RISING = Target("p", "RISING", ra_at_hour_angle(-3.15), 0.0, plan(master=[("L", 2.0, 1)], slave1=[("Red", 2.0, 1)]),
                priority=9)


@pytest.fixture
def store(tmp_path):
    with SeasonStore(tmp_path / "indisync.db") as s:
        s.upsert_project(Project("p"))
        s.add_target(HIGH)
        s.add_target(RISING)
        yield s


def runtime(store, settings=SETTINGS, **kw):
    return SeasonRuntime(store, settings, SiteSettings(latitude=LAT), sky=synthetic_sky, **kw)


def frame(store_or_rt, node, target, filter_name, n, grade=ACCEPTED, surplus=False):
    row = FrameRow(node, target, filter_name, 2.0, f"/img/{node}/{target}_{filter_name}_{n}.fits", grade,
                   T0 + n, exposure_id=str(n), surplus=surplus)
    return store_or_rt.record(row) if isinstance(store_or_rt, SeasonRuntime) else store_or_rt.record_frame(row)


def test_the_geometry_of_the_two_targets():
    assert altitude(-15.0, 45.0) > 70
    assert altitude(-3.15 * 15, 0.0) < 30 < altitude(-3.15 * 15 + 15 * 0.25, 0.0)  # up within a quarter hour


def test_first_pick_the_target_that_is_up_and_resume_it_after_a_restart(store):
    rt = runtime(store)
    decision = rt.choose(T0, "start of the night")
    assert decision.target == "HIGH" and decision.switch
    assert rt.aim().name == "HIGH" and rt.aim().ra == pytest.approx(HIGH.ra) and rt.aim().pa is None
    rising = next(c for c in decision.candidates if c.target == "RISING")
    assert rising.score is None and "altitude" in rising.excluded_by
    # a restarted master: the same target, kept (chosen minutes ago, min_minutes 30) though RISING scores more now
    again = runtime(store)
    assert again.current().name == "HIGH"
    later = T0 + 20 * 60
    kept = again.choose(later, "restarted in imaging")
    assert kept.target == "HIGH" and not kept.switch and "kept HIGH" in kept.reason


def test_after_each_frame_the_target_is_kept_until_its_plan_is_met_then_the_next_one(store):
    rt = runtime(store)
    rt.choose(T0, "start")
    frame(rt, "master", "HIGH", "L", 1)
    frame(rt, "slave1", "HIGH", "Red", 2)
    kept = rt.after_frame(T0 + 60)
    assert kept.target == "HIGH" and not kept.switch
    frame(rt, "master", "HIGH", "L", 3)
    frame(rt, "slave1", "HIGH", "Green", 4, grade=PENDING)  # pending counts until graded
    switched = rt.after_frame(T0 + 15 * 60)
    assert switched.switch and switched.target == "RISING"
    assert switched.reason.startswith("HIGH complete; RISING: highest score")
    assert rt.current().name == "RISING" and store.get_state("runtime")["target"] == "RISING"
    # the pending frame rejected: HIGH needs Green again (its next turn)
    assert rt.grade("slave1", "HIGH_Green_4.fits", REJECTED, "hfr 4 > 1.3 x median") is True
    assert rt.needed("slave1", "Green", store.target("HIGH")) == 1


def test_a_target_that_leaves_its_constraints_is_left_at_the_next_frame(store):
    settings = SchedulerSettings(min_altitude=30, min_minutes=600, replan_min=600,
                                 moon=MoonSettings(MoonRule(0, 14), MoonRule(0, 7)))
    store.upsert_target(Target("p", "HIGH", HIGH.ra, HIGH.dec, HIGH.plan, constraints=Constraints(before_flip=True)))
    rt = runtime(store, settings)
    assert rt.choose(T0, "start").target == "HIGH"
    assert rt.after_frame(T0 + 600).target == "HIGH"  # min_minutes and replan_min far away: not even asked
    gone = rt.after_frame(T0 + 3600 + 120)  # HIGH crossed the meridian (before_flip)
    assert gone.switch and gone.target == "RISING" and "HIGH left its constraints" in gone.reason


def test_each_nodes_lines_needed_then_surplus_or_idle(store):
    rt = runtime(store)
    rt.choose(T0, "start")
    assert [(line.filter, line.count) for line in rt.node_lines("slave1", T0).lines] == [("Red", 1), ("Green", 1)]
    assert rt.node_lines("slave1", T0).wire() == [["Red", 2.0, 1], ["Green", 2.0, 1]]
    frame(rt, "slave1", "HIGH", "Red", 1)
    assert [line.filter for line in rt.node_lines("slave1", T0).lines] == ["Green"]
    frame(rt, "slave1", "HIGH", "Green", 2)
    surplus = rt.node_lines("slave1", T0)
    assert surplus.surplus and [line.filter for line in surplus.lines] == ["Red", "Green"]
    idle = runtime(store, SchedulerSettings(min_altitude=30, when_ota_done="idle",
                                            moon=MoonSettings(MoonRule(0, 14), MoonRule(0, 7))))
    assert idle.node_lines("slave1", T0).lines == () and not idle.node_lines("slave1", T0).surplus
    assert rt.master_lines(T0).lines[0].filter == "L" and rt.node_lines("nobody", T0).lines == ()


def test_a_grade_that_comes_before_its_frame_is_applied_when_the_frame_is_recorded(store):
    rt = runtime(store)
    rt.choose(T0, "start")
    assert rt.grade("slave1", "HIGH_Red_7.fits", "rejected", "no stars") is False  # the reply is still on its way
    frame(rt, "slave1", "HIGH", "Red", 7, grade=PENDING)
    row = store.frames(node="slave1")[-1]
    assert (row.grade, row.reason) == (REJECTED, "no stars")
    # not graded (grading off on the slave, or not measurable): accepted
    frame(rt, "slave1", "HIGH", "Red", 8, grade=PENDING)
    assert rt.grade("slave1", None, None, exposure_id="8") is True
    assert store.frames(node="slave1")[-1].grade == ACCEPTED


def test_finished_and_the_window(store):
    rt = runtime(store)
    assert rt.window(T0) == (T0, None)
    assert not rt.finished(T0)
    for n, (node, target, f) in enumerate([("master", "HIGH", "L"), ("master", "HIGH", "L"), ("slave1", "HIGH", "Red"),
                                           ("slave1", "HIGH", "Green"), ("master", "RISING", "L"),
                                           ("slave1", "RISING", "Red")]):
        frame(rt, node, target, f, n)
    assert rt.finished(T0 + 1)
    assert rt.window(T0) is None
    assert rt.choose(T0 + 2, "start").reason == "every target is complete"


def test_the_season_state_fits_the_schema(store):
    published = []
    rt = runtime(store, on_change=published.append)
    rt.choose(T0, "start")
    frame(rt, "master", "HIGH", "L", 1)
    rt.after_frame(T0 + 30)
    state = rt.state()
    assert state["target"] == "HIGH" and state["project"] == "p" and state["complete"] is False
    assert state["progress"]["master"]["L"] == {"desired": 2, "accepted": 1, "rejected": 0, "pending": 0,
                                                "surplus": 0}
    assert [c["target"] for c in state["candidates"]] == ["HIGH", "RISING"]
    messages.make("state", "master", {"role": "master", "phase": "idle", "frames": 0, "version": "x",
                                      "season": state})
    assert published and published[-1]["progress"]["master"]["L"]["accepted"] == 1


def test_needs_left_only_on_an_ota_that_is_down_do_not_hold_the_night(store):
    """HIGH's master lines are met; only slave1's Red and Green are left. With slave1 offline the
    night leaves HIGH at the next frame (replan not due, min_minutes not over) for a target the
    rig online can still work on; with slave1 back, HIGH is needed again."""
    live = {"slave1"}
    rt = runtime(store, live=lambda: set(live))
    assert rt.choose(T0, "start").target == "HIGH"
    frame(rt, "master", "HIGH", "L", 1)
    frame(rt, "master", "HIGH", "L", 2)
    assert rt.after_frame(T0 + 60).target == "HIGH"  # slave1 online: its Red and Green keep HIGH
    live.clear()  # slave1 gone
    left = rt.after_frame(T0 + 120)
    assert left.switch and left.target != "HIGH"  # RISING is not up yet: a gap
    assert rt.current() is None
    live.add("slave1")  # back online: HIGH's Red and Green are wanted again
    back = rt.after_frame(T0 + 180)
    assert back.target == "HIGH" and back.switch


def test_a_slew_in_a_gap_points_at_the_next_target_to_rise_never_fails_the_night(store, monkeypatch):
    """After rain or a restart with no target observable now, the slew points at the target that
    becomes eligible first (it is chosen when it is up), instead of failing and ending the night."""
    from types import SimpleNamespace

    from indisync.night.actions.motion import _where

    store.remove_target("HIGH")  # only RISING is left: below 30° at T0, up ~10 min later
    rt = runtime(store)
    ctx = SimpleNamespace(rig=SimpleNamespace(season=rt, cfg=None), memo=SimpleNamespace(aimed=None),
                          night=SimpleNamespace(snapshot=None))
    assert rt.choose(T0, "start").target is None
    aim = rt.upcoming_aim(T0)
    assert aim is not None and aim.name == "RISING" and aim.ra == pytest.approx(RISING.ra)
    import indisync.night.actions.motion as motion

    monkeypatch.setattr(motion.time, "time", lambda: T0)
    where = _where(ctx)
    assert where is not None and where.name == "RISING"
    assert rt.current() is None  # pointed at, not chosen: imaging chooses it once it is eligible
    frame(rt, "master", "RISING", "L", 1)
    frame(rt, "slave1", "RISING", "Red", 2)
    assert rt.upcoming_aim(T0) is None  # nothing left tonight
