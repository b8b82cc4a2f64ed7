"""A season night on the real simulators, broker and astrometry.net (issue 16, "Done when"): two
targets whose windows open minutes apart, time factor 1, master + one slave.

The site's longitude is chosen from the clock so that it is local midnight now (as the other night
tests do: no dependence on the time of day or the date; the moon rule is off, the sun is far below
-12° at midnight at latitude 45 in any season). ALPHA sits an hour east of the meridian, 78° up;
BETA is low in the east (dec 0) and rises above its own min_altitude about 20 s after the master
starts (to the sky grid's minute), so the scheduler can only pick ALPHA first. Goals are tiny 2 s frames:

- ALPHA: master Luminance x3, slave Red x1; BETA: master Luminance x1, slave Blue x2;
  scheduler.when_ota_done: idle (the slave idles once its Red is met, the master times BETA's second
  slot without a frame of its own);
- the master is killed (SIGKILL) mid-ALPHA, while only it exposes, and started again: it resumes
  ALPHA (kept: chosen minutes ago, min_minutes 30, though BETA now scores more), the counts intact;
- ALPHA's plan met, the night switches: slewing (reason "next target: ..."), centring, imaging BETA;
  every target complete, the night parks and the master exits 0;
- the database's frames per node, target and filter equal the FITS files on disk (OBJECT, FILTER),
  and the slave never shot a filter its plan did not need.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from astropy.io import fits

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.season.model import ACCEPTED, PlanLine, Constraints, Project, Target
from indisync.season.store import SeasonStore
from indisync.sim.astrometry_index import ensure_index
from indisync.sim.night import (LATITUDE, longitude_for_local_hour, mount_parked, prepare_mount,
                                target_at_hour_angle, target_east_high)
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

RISE_HA_H = -3.15  # BETA's hour angle when it crosses its min_altitude (dec 0 at latitude 45: ~28.7° up)
RISES_AFTER_S = 20.0  # after the master's start: its first pick (~3 s) sees BETA below its min_altitude
SIDEREAL = 1.00273791  # hours of hour angle per hour of time


def altitude(ha_hours: float, dec: float, lat: float = LATITUDE) -> float:
    h, d, p = math.radians(ha_hours * 15.0), math.radians(dec), math.radians(lat)
    return math.degrees(math.asin(math.sin(p) * math.sin(d) + math.cos(p) * math.cos(d) * math.cos(h)))


def season_frames_on_disk(rig, node) -> Counter:
    """(target, filter) -> light frames of the season's targets on ``node``'s disk (FITS OBJECT, FILTER)."""
    found = Counter()
    for path in (rig.images / node).rglob("*.fits"):
        header = fits.getheader(path)
        if header.get("OBJECT") in ("ALPHA", "BETA"):
            found[(header["OBJECT"], header.get("FILTER"))] += 1
    return found


def season_frames_in_db(db, node) -> Counter:
    return Counter((row.target, row.filter) for row in db.frames(node=node))


def night_states(wire) -> list[tuple[str, str]]:
    return [(env.payload["to"], env.payload["reason"]) for _, env in wire.envelopes("night_state", "master")]


@pytest.mark.timeout(300)
def test_a_season_night_images_one_target_switches_to_the_next_and_a_restart_resumes(tmp_path):
    started_test = time.monotonic()
    lon = longitude_for_local_hour(0.0)
    ra_a, dec_a = target_east_high(lon)
    placed_at = time.time()
    ra_b, dec_b = target_at_hour_angle(lon, RISE_HA_H, dec=0.0, when=placed_at)
    indexes = [str(ensure_index(ra, dec, cache_dir=tmp_path / "index")) for ra, dec in ((ra_a, dec_a), (ra_b, dec_b))]
    night = {"min_altitude": 20, "cool": False, "park_at_end": True, "warm_at_end": False, "center": True}
    scheduler = {"min_minutes": 30, "replan_min": 15, "when_ota_done": "idle", "batch_frames": 5,
                 "sun_altitude": {"broadband": -12, "narrowband": -12},
                 "moon": {"broadband": {"distance": 0, "width": 14}, "narrowband": {"distance": 0, "width": 7}}}
    rig = SimRig(
        slaves=1, time_factor=1.0, workdir=tmp_path / "rig",
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0}, "night": night,
                         "scheduler": scheduler, "safety": {"frame_retry": 5}},
        acquire_section={"index_dirs": indexes, "exposure": 1.0, "settle": 0.5, "tolerance_arcsec": 60,
                         "attempts": 3, "solve_timeout": 5},  # the slave (its own mount at the pole) never solves
        master_section={"target": "unused", "batches": None, "refocus": {"after_batch": False}},
        slave_section={"filters": ["Red", "Green", "Blue"], "exposure": 2.0},
    )
    with rig:
        master_indi = rig.nodes["master"].indi
        prepare_mount(master_indi, lon, dec_a)
        db_file = rig.images / "master" / "indisync.db"
        with SeasonStore(db_file) as db:
            db.upsert_project(Project("spring", priority=5))
            db.add_target(Target("spring", "ALPHA", ra_a, dec_a, priority=5, plan=(
                PlanLine("master", "Luminance", 2.0, 3), PlanLine("slave1", "Red", 2.0, 1))))
        wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
        db = SeasonStore(db_file)
        try:
            rig.start_slaves()
            # BETA's window opens RISES_AFTER_S from now: its min_altitude is where it will be then
            rises_at = time.time() + RISES_AFTER_S
            ha_then = RISE_HA_H + (rises_at - placed_at) * SIDEREAL / 3600.0
            db.add_target(Target("spring", "BETA", ra_b, dec_b, priority=10,
                                 constraints=Constraints(min_altitude=round(altitude(ha_then, 0.0), 3)), plan=(
                                     PlanLine("master", "Luminance", 2.0, 1), PlanLine("slave1", "Blue", 2.0, 2))))
            rig.start_node("master")

            def alpha(node):
                return [r for r in db.frames(target="ALPHA", node=node)]

            # mid-ALPHA: the slave's Red is met (it idles from now on), the master has one of three frames
            wait_until(lambda: len(alpha("master")) == 1 and len(alpha("slave1")) == 1, 120,
                       "ALPHA's first exposure recorded", 0.05, detail=rig.logs)
            rig.kill_node("master")
            before = season_frames_in_db(db, "master"), season_frames_in_db(db, "slave1")
            assert db.get_state("runtime")["target"] == "ALPHA"
            assert time.time() < rises_at + 60, "ALPHA's first frame came too late for the test to mean anything"
            rig.start_node("master")
            assert rig.wait_node("master", 200) == 0, rig.logs()

            # the restart resumed ALPHA with its counts
            second = rig.nodes["master"].log_text()
            assert "season: the last target was ALPHA" in second, second[-3000:]
            assert "kept ALPHA" in second, second[-3000:]
            states = night_states(wire)
            restarted = [i for i, (to, why) in enumerate(states) if why.startswith("restarted in")]
            assert restarted, states
            after_restart = states[restarted[0]:]
            switch = [i for i, (to, why) in enumerate(after_restart)
                      if to == "slewing" and why.startswith("next target")]
            assert switch and "BETA" in after_restart[switch[0]][1], after_restart
            assert [to for to, _ in after_restart[switch[0]:switch[0] + 4]] == \
                ["slewing", "centering", "starting_guider", "imaging"] or \
                [to for to, _ in after_restart[switch[0]:switch[0] + 3]] == ["slewing", "centering", "imaging"], \
                after_restart
            assert after_restart[-1][0] == "done" and any(to == "parking" for to, _ in after_restart)
            assert mount_parked(master_indi)
            centred = [env.payload for _, env in wire.envelopes("center_done", "master")]
            assert len(centred) >= 3 and all(c["ok"] for c in centred), centred  # ALPHA, ALPHA again, BETA

            # the database counts equal the files on disk, per node, target and filter
            for node in ("master", "slave1"):
                assert season_frames_in_db(db, node) == season_frames_on_disk(rig, node), node
            master_counts, slave_counts = season_frames_in_db(db, "master"), season_frames_in_db(db, "slave1")
            assert before == (Counter({("ALPHA", "Luminance"): 1}), Counter({("ALPHA", "Red"): 1}))
            # exactly the goals (every frame is accepted: fewer than grading.min_history per filter), no more:
            # the slave idled once its Red was met, the master idled BETA's second slot
            assert master_counts == Counter({("ALPHA", "Luminance"): 3, ("BETA", "Luminance"): 1}), master_counts
            assert slave_counts == Counter({("ALPHA", "Red"): 1, ("BETA", "Blue"): 2}), slave_counts
            assert "the master idles for 2 s" in second
            assert "nothing of this node's plan needs a frame now: idle" in rig.nodes["slave1"].log_text()
            for name in ("ALPHA", "BETA"):
                target = db.target(name)
                progress = db.progress(target)
                assert progress.complete(target), (name, progress.to_dict())
                for line in target.plan:
                    count = progress.get(line.node, line.filter)
                    assert count.accepted >= line.count and count.pending == 0, (name, line, count)
            assert all(r.grade == ACCEPTED or r.reason for r in db.frames()), "a rejected frame says why"
            # ALPHA's frames all before BETA's: one switch, no thrashing
            rows = db.frames(node="master")
            assert [r.target for r in rows] == sorted((r.target for r in rows), key=["ALPHA", "BETA"].index)

            # the season state the master published: BETA with its progress, complete at the end
            seasons = [messages.decode(m.payload).payload.get("season") for m in wire.messages("indisync/master/state")]
            seasons = [s for s in seasons if s]
            assert any(s.get("target") == "BETA" and s.get("progress") for s in seasons)
            assert [s["target"] for s in seasons if s.get("target")][0] == "ALPHA"
            wheels = db.nodes()
            assert "Blue" in wheels["slave1"].filters and wheels["master"].filters, wheels
        finally:
            wire.close()
            db.close()
    print(f"season night test: {time.monotonic() - started_test:.0f} s")
