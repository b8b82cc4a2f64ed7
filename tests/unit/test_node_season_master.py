"""The master's season batches (issue 16, no server): built from its own needed lines for the current
target (scheduler.batch_frames each, no more than still needed), rebuilt after each batch and for a
new target; its plan met: surplus frames (counted apart) or an idle slot timed for the slaves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from indisync.night.settings import SiteSettings
from indisync.season.model import Project
from indisync.season.runtime import SeasonRuntime
from indisync.season.settings import MoonRule, MoonSettings, SchedulerSettings
from indisync.season.store import SeasonStore
from indisync.sequence.plan import MasterProgress
from indisync.sequence.state_store import StateStore
from indisync.node.season_master import SeasonMaster
from tests.unit.test_season_runtime import HIGH, LAT, RISING, T0, frame, synthetic_sky


def setup(tmp_path, **settings):
    store = SeasonStore(tmp_path / "indisync.db")
    store.upsert_project(Project("p"))
    store.add_target(HIGH)
    store.add_target(RISING)
    moon = MoonSettings(MoonRule(0, 14), MoonRule(0, 7))
    rt = SeasonRuntime(store, SchedulerSettings(min_altitude=30, moon=moon, **settings), SiteSettings(latitude=LAT),
                       sky=synthetic_sky)
    master = SimpleNamespace(name="master", progress=MasterProgress(), plan=[], store=StateStore(tmp_path / "m.json"),
                             registry=None)
    rt.choose(T0, "start")
    return rt, master, SeasonMaster(master, rt, store)


def take(sm, master, n, node="master", target="HIGH", filter_name="L"):
    """The expose action's bookkeeping after a frame: recorded, progress moved, a full batch closed."""
    frame(sm.runtime, node, target, filter_name, n)
    master.progress.frame_done()
    if master.progress.batch_complete(master.plan):
        master.progress.start_next_batch()


def test_a_batch_holds_no_more_than_needed_and_is_rebuilt_after_it_completes(tmp_path):
    rt, master, sm = setup(tmp_path, batch_frames=5, when_ota_done="idle")
    first = sm.next_frame(T0)
    assert (first.filter, first.exposure, first.target, first.surplus, first.idle) == ("L", 2.0, "HIGH", False, False)
    assert len(master.plan) == 2 and master.progress.batch == 1  # HIGH needs 2 L: not batch_frames 5
    take(sm, master, 1)
    assert sm.next_frame(T0).index == 1 and sm.next_duration(T0) == 2.0
    take(sm, master, 2)  # the batch is complete and so is the master's plan
    idle = sm.next_frame(T0)
    assert idle.idle and idle.filter is None and idle.exposure == 2.0  # timed for the slave's 2 s lines
    assert master.progress.batch == 2 and len(master.plan) == 1
    master.progress.frame_done()
    master.progress.start_next_batch()
    assert sm.next_frame(T0).idle and master.progress.batch == 3  # a fresh batch each time, never a reused one


def test_surplus_when_the_masters_plan_is_met(tmp_path):
    rt, master, sm = setup(tmp_path, batch_frames=3, when_ota_done="surplus")
    sm.next_frame(T0)
    take(sm, master, 1)
    take(sm, master, 2)
    surplus = sm.next_frame(T0)
    assert surplus.surplus and not surplus.idle and surplus.filter == "L" and len(master.plan) == 3


def test_a_new_target_gets_a_new_batch(tmp_path):
    rt, master, sm = setup(tmp_path, batch_frames=5, min_minutes=0)
    sm.next_frame(T0)
    take(sm, master, 1)  # mid-batch
    rt.store.upsert_target(HIGH.__class__(**{**HIGH.__dict__, "enabled": False}))
    assert rt.choose(T0 + 20 * 60, "replan").target == "RISING"
    nxt = sm.next_frame(T0 + 20 * 60)
    assert nxt.target == "RISING" and nxt.index == 0 and master.progress.batch == 2


def test_the_season_frame_is_a_planned_frame_the_night_can_read():
    from indisync.node.season_master import SeasonFrame

    f = SeasonFrame(index=0, slot_index=0, repeat_index=0, type="light", filter="L", exposure=2.0, binning=1,
                    suffix="L", delay_before=0.0, target="HIGH")
    assert f.delay_before + f.exposure == 2.0 and not f.idle and not f.surplus
    with pytest.raises(Exception):
        f.exposure = 3.0  # frozen like PlannedFrame
