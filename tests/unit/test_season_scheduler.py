"""The scheduler over whole simulated nights (indisync.season.scheduler): the time is an argument (a
fake clock), fixed dates at 48° N, astropy offline; nothing depends on the time of day or the date."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from indisync.season.constraints import table_for
from indisync.season.ephem import alt_az
from indisync.season.model import Constraints, PlanLine, Progress, Target
from indisync.season.scheduler import (allowed_filters, naive_pick, next_eligible, pick, plan_night,
                                       simulate_night, utc_hm)
from indisync.season.settings import SchedulerSettings

from .season_skies import SITE, epoch, full_moon, march1  # noqa: F401 - fixtures

M42 = (83.82, -5.39)  # low in the south in March evenings: below 30° by ~20:30 UTC
WEST = (92.0, 24.0)  # near M35: high in the evening, below 30° at ~00:20 UTC
M51 = (202.47, 47.2)  # rises through the evening, transits ~01:30 UTC
M13 = (250.42, 36.46)  # up after midnight


def target(name, where, count=4, exposure=300.0, nodes=("ota1", "ota3"), **kw) -> Target:
    filters = {"ota1": "Luminance", "ota2": "Red", "ota3": "Ha"}
    plan = tuple(PlanLine(node, filters[node], exposure, count) for node in nodes)
    return Target("p", name, where[0], where[1], plan, **kw)


def done(progress: Progress, t: Target) -> bool:
    return progress.complete(t)


def test_switches_when_the_target_completes(march1):
    settings = SchedulerSettings()
    a = target("M42", WEST, count=3, priority=9)
    b = target("M51", M51, count=3, priority=5)
    plan = plan_night([a, b], {}, march1, settings, start=epoch(2027, 3, 1, 21))  # dark, both up
    assert [blk.target for blk in plan.blocks] == ["M42", "M51"]
    assert plan.blocks[0].frames == {"ota1": {"Luminance": 3}, "ota3": {"Ha": 3}}
    assert plan.blocks[1].start >= plan.blocks[0].end
    assert any(d.reason.startswith("M42 complete; M51: highest score") for d in plan.decisions)
    assert plan.decisions[-1].reason == "M51 complete; every target is complete"
    assert done(plan.progress["M42"], a) and done(plan.progress["M51"], b)


def test_progress_given_is_not_modified(march1):
    a = target("M42", M42, count=3)
    progress = {"M42": Progress.for_target(a)}
    plan_night([a], progress, march1, SchedulerSettings())
    assert progress["M42"].get("ota1", "Luminance").accepted == 0


def test_switches_when_the_target_sets(march1):
    settings = SchedulerSettings(min_altitude=30)
    a = target("M42", WEST, count=200, priority=10)  # more than a night's worth
    b = target("M51", M51, count=200, priority=1)
    plan = plan_night([a, b], {}, march1, settings)
    assert plan.blocks[0].target == "M42"
    second = next(blk for blk in plan.blocks if blk.target == "M51")
    assert second.reason.startswith("M42 left its constraints (altitude ")
    alt, _ = alt_az(np.array([WEST[0]]), np.array([WEST[1]]), march1)
    # every M42 frame ended with M42 above 30°
    for shot in (s for s in plan.shots if s.target == "M42"):
        end = shot.start + shot.exposure
        assert np.interp(end, march1.times, alt[0]) > 30.0


def test_min_minutes_keeps_the_current_target(march1):
    settings = SchedulerSettings(min_minutes=30)
    a = target("M42", WEST, priority=1)
    b = target("M51", M51, priority=10)
    now = epoch(2027, 3, 1, 22)
    free = pick(now, [a, b], {}, march1, settings)
    assert free.target == "M51"
    kept = pick(now, [a, b], {}, march1, settings, current="M42", current_since=now - 12 * 60)
    assert kept.target == "M42" and not kept.switch
    assert kept.reason == "kept M42: chosen 12 min ago (min_minutes 30)"
    later = pick(now, [a, b], {}, march1, settings, current="M42", current_since=now - 31 * 60)
    assert later.target == "M51" and later.switch
    assert later.reason.startswith("M51: highest score ")


def test_replans_every_replan_min(march1):
    settings = SchedulerSettings(replan_min=20, min_minutes=0)
    a = target("M51", M51, count=500)
    plan = plan_night([a], {}, march1, settings)
    chosen = [d for d in plan.decisions if d.target is not None]
    gaps = np.diff([d.at for d in chosen])
    assert len(chosen) > 10
    assert gaps.max() <= 20 * 60 + 300 + 1  # at most one frame past replan_min
    assert gaps.min() >= 20 * 60 or "left its constraints" in chosen[-1].reason


def test_moon_excludes_broadband_not_narrowband(full_moon):
    settings = SchedulerSettings()
    near = target("Near", (175.0, 70.0), count=50)
    now = epoch(2027, 3, 21, 23)
    progress = {"Near": Progress.for_target(near)}
    assert allowed_filters(near, "ota1", progress["Near"], full_moon, now, settings) == []
    assert [ln.filter for ln in allowed_filters(near, "ota3", progress["Near"], full_moon, now, settings)] == ["Ha"]
    decision = pick(now, [near], progress, full_moon, settings)
    assert decision.target == "Near"  # narrowband keeps it eligible
    plan = plan_night([near], progress, full_moon, settings, start=now, end=now + 3600)
    assert plan.blocks[0].frames == {"ota3": {"Ha": 12}}  # ota1's Luminance waits for a darker sky
    broadband_only = target("Near", (175.0, 70.0), nodes=("ota1",))
    refused = pick(now, [broadband_only], {}, full_moon, settings)
    assert refused.target is None
    assert refused.candidates[0].excluded_by.endswith("(Lorentzian, broadband)")


def test_include_met_gives_every_allowed_line_for_surplus(march1):
    settings = SchedulerSettings()
    a = target("M51", M51, count=2)
    progress = Progress.for_target(a)
    progress.get("ota1", "Luminance").accepted = 2
    now = epoch(2027, 3, 1, 23)
    assert allowed_filters(a, "ota1", progress, march1, now, settings) == []
    assert [ln.filter for ln in allowed_filters(a, "ota1", progress, march1, now, settings, include_met=True)] \
        == ["Luminance"]


def test_horizon_profile_holds_a_target_back(march1):
    a = target("M51", M51, count=500)
    open_sky = plan_night([a], {}, march1, SchedulerSettings(min_altitude=20))
    behind_trees = SchedulerSettings(min_altitude=20, horizon=[[0, 20], [90, 50], [180, 20]])
    trees = plan_night([a], {}, march1, behind_trees)
    assert trees.blocks[0].start > open_sky.blocks[0].start + 1800  # M51 rises in the north-east, behind trees
    first = pick(open_sky.blocks[0].start, [a], {}, march1, behind_trees)
    assert first.target is None and "< horizon" in first.candidates[0].excluded_by


def test_before_flip_ends_at_the_meridian(march1):
    settings = SchedulerSettings()
    a = target("M51", M51, count=500, constraints=Constraints(before_flip=True))
    plan = plan_night([a], {}, march1, settings)
    table = table_for(march1, [a], settings)
    transit = float(march1.times[int(np.argmax(table.alt[0]))])
    assert plan.blocks and max(s.start + s.exposure for s in plan.shots) <= transit + 150  # the grid's resolution
    assert plan.decisions[-1].target is None
    assert "past the meridian (before_flip)" in plan.decisions[-1].reason


def test_date_range_excludes_the_whole_night(march1):
    settings = SchedulerSettings()
    over = target("Over", M51, end_date="2027-02-28")
    early = target("Early", M42, start_date="2027-03-05")
    decision = pick(epoch(2027, 3, 1, 23), [over, early], {}, march1, settings)
    assert decision.target is None
    words = {c.target: c.excluded_by for c in decision.candidates}
    assert words == {"Over": "after its end date 2027-02-28", "Early": "before its start date 2027-03-05"}
    assert next_eligible(march1.start, [over, early], {}, march1, settings) is None
    assert plan_night([over, early], {}, march1, settings).blocks == []


def test_nothing_observable_gives_a_reason_and_next_eligible(march1):
    settings = SchedulerSettings()
    late = target("M13", M13)
    now = epoch(2027, 3, 1, 20)
    decision = pick(now, [late], {}, march1, settings)
    assert decision.target is None
    found = next_eligible(now, [late], {}, march1, settings)
    assert found is not None and found[0] == "M13" and found[1] > now
    assert decision.reason == f"no target observable now (next: M13 from {utc_hm(found[1])})"
    assert decision.candidates[0].excluded_by.startswith("altitude ")
    then = pick(found[1], [late], {}, march1, settings)
    assert then.target == "M13"
    before = pick(found[1] - march1.step_s, [late], {}, march1, settings)
    assert before.target is None


def test_every_target_complete(march1):
    a = target("M51", M51, count=1)
    progress = Progress.for_target(a)
    for count in progress.counts.values():
        count.accepted = 1
    decision = pick(epoch(2027, 3, 1, 23), [a], {"M51": progress}, march1, SchedulerSettings())
    assert decision.target is None and decision.reason == "every target is complete"
    assert decision.candidates[0].excluded_by == "complete"


def test_disabled_target_is_never_picked(march1):
    a = target("M51", M51, enabled=False)
    decision = pick(epoch(2027, 3, 1, 23), [a], {}, march1, SchedulerSettings())
    assert decision.target is None and decision.candidates[0].excluded_by == "disabled"


def test_naive_keeps_its_target_until_done(march1):
    settings = SchedulerSettings()
    a = target("M42", WEST, priority=2, count=2)
    b = target("M51", M51, priority=9, count=500)
    now = epoch(2027, 3, 1, 21)
    assert naive_pick(now, [a, b], {}, march1, settings).target == "M51"
    kept = naive_pick(now, [a, b], {}, march1, settings, current="M42", current_since=now - 7200)
    assert kept.target == "M42" and not kept.switch
    plan = simulate_night([a, b], {}, march1, settings, picker="naive", start=now)
    assert plan.blocks[0].target == "M51"
    assert [blk.target for blk in plan.blocks] == ["M51"]  # kept until done or gone: M42 waits all night


def test_clouds_lose_frames_and_replan(march1):
    settings = SchedulerSettings()
    a = target("M51", M51, count=500)
    cloud = (epoch(2027, 3, 1, 23), epoch(2027, 3, 2, 0))

    def clear(t0, t1):
        return not (cloud[0] < t1 + 1e-6 and t0 < cloud[1]) if t1 > t0 else not (cloud[0] <= t0 < cloud[1])

    plan = simulate_night([a], {}, march1, settings, clear=clear)
    assert all(not (cloud[0] <= s.start < cloud[1]) or s.lost for s in plan.shots)
    assert any(s.lost for s in plan.shots)  # the frame running into the cloud
    assert len(plan.blocks) == 2 and plan.blocks[0].end <= cloud[0] + 300 and plan.blocks[1].start >= cloud[1]
    lost = sum(1 for s in plan.shots if s.lost)
    assert plan.progress["M51"].get("ota1", "Luminance").rejected + plan.progress["M51"].get("ota3", "Ha").rejected \
        == lost


def test_scores_favour_the_target_that_sets_first(march1):
    settings = SchedulerSettings()
    a = target("M42", WEST)
    b = target("M51", M51)
    decision = pick(epoch(2027, 3, 1, 20, 30), [a, b], {}, march1, settings)
    parts = {c.target: c.parts for c in decision.candidates}
    assert parts["M42"]["urgency"] > parts["M51"]["urgency"]
    assert decision.target == "M42"
    assert decision.reason.startswith("M42: highest score ") and "urgency" in decision.reason


def test_progress_favours_the_target_closer_to_completion(march1):
    settings = SchedulerSettings()
    a = target("A", M51, count=10)
    b = target("B", (M51[0] + 0.5, M51[1]), count=10)
    pa = Progress.for_target(a)
    for count in pa.counts.values():
        count.accepted = 8
    decision = pick(epoch(2027, 3, 2, 1), [a, b], {"A": pa}, march1, settings)
    assert decision.target == "A"
    parts = {c.target: c.parts for c in decision.candidates}
    assert parts["A"]["progress"] == pytest.approx(0.8) and parts["B"]["progress"] == 0.0


def test_planning_1000_targets_is_vectorised(march1):
    """Not a timing test (the benchmark measures it): the whole night plans without error and every
    chosen target was eligible when chosen."""
    rng = np.random.default_rng(3)
    targets = [target(f"T{i:04d}", (float(rng.uniform(0, 360)), float(rng.uniform(-30, 85))),
                      priority=int(rng.integers(1, 11))) for i in range(1000)]
    settings = SchedulerSettings()
    plan = plan_night(targets, {}, march1, settings)
    assert len(plan.blocks) > 10
    first = next(d for d in plan.decisions if d.target is not None)
    assert len(first.candidates) == 1000  # the first choice explains every candidate
    table = table_for(march1, targets, settings)
    for shot in plan.shots:
        row = table.index[shot.target]
        assert table.window_ok([row], shot.start, shot.exposure, shot.kind)[0]


def test_targets_changed_between_calls_rebuild_the_table(march1):
    settings = SchedulerSettings()
    a = target("M51", M51)
    now = epoch(2027, 3, 2, 1)
    assert pick(now, [a], {}, march1, settings).target == "M51"
    moved = dataclasses.replace(a, dec=-80.0)
    assert pick(now, [moved], {}, march1, settings).target is None
