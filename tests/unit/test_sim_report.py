"""The session report's pure helpers: interval unions and overlaps, start skews, shutter-open ratios."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indisync.sim.report import (
    FrameInfo,
    exptime_ratio,
    merge_intervals,
    missing_exposures,
    open_interval,
    overlap_length,
    paired_overlap,
    percentile,
    shutter_overlap,
    skew_summary,
    start_intervals,
    start_skews,
    total_length,
)

T0 = datetime(2026, 1, 1, 22, 0, 0)


def frame(node: str, exposure_id: int | None, start_s: float, exptime: float = 300.0) -> FrameInfo:
    return FrameInfo(Path(f"{node}_{exposure_id}.fits"), node, None, 1, exposure_id,
                     T0 + timedelta(seconds=start_s), exptime)


def session(skews_s: dict[str, list[float]], cycle: float = 4.0, exptime: float = 300.0) -> list[FrameInfo]:
    """A master frame every ``cycle`` s and, per slave, one frame per skew (None: missing)."""
    count = max(len(v) for v in skews_s.values())
    frames = [frame("master", i + 1, i * cycle, exptime) for i in range(count)]
    for node, skews in skews_s.items():
        frames += [frame(node, i + 1, i * cycle + s, exptime) for i, s in enumerate(skews) if s is not None]
    return sorted(frames, key=lambda f: f.start)


# ---- intervals -------------------------------------------------------------------------------------
def test_merge_joins_overlapping_and_touching_and_drops_empty():
    assert merge_intervals([(5, 6), (0, 2), (1, 3), (3, 4), (7, 7), (9, 8)]) == [(0, 4), (5, 6)]


def test_overlap_of_partly_overlapping_sets():
    a = [(0, 10), (20, 30)]
    b = [(5, 25)]
    assert overlap_length(a, b) == pytest.approx(10)
    assert overlap_length(b, a) == pytest.approx(10)
    assert overlap_length(a, []) == 0
    assert overlap_length(a, [(10, 20)]) == 0  # touching only


intervals = st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)).map(lambda t: (min(t), max(t))), max_size=8)


def brute_overlap(a, b) -> int:
    cells_a = {x for s, e in a for x in range(s, e)}
    cells_b = {x for s, e in b for x in range(s, e)}
    return len(cells_a & cells_b)


@given(intervals, intervals)
def test_overlap_matches_counting_unit_cells(a, b):
    assert overlap_length(a, b) == brute_overlap(a, b)
    assert total_length(a) == len({x for s, e in a for x in range(s, e)})


# ---- frames on the wall clock ----------------------------------------------------------------------
def test_open_interval_scales_exptime_by_time_factor():
    f = frame("master", 1, 0.0, exptime=300.0)
    start, end = open_interval(f, time_factor=0.01)
    assert end - start == pytest.approx(3.0)
    # DATE-OBS is UTC without a zone: it must not be read as local time.
    assert start == datetime(2026, 1, 1, 22, 0, 0, tzinfo=timezone.utc).timestamp()


def test_shutter_overlap_loses_the_skew_per_frame():
    # 300 s at time factor 0.01 = 3 s of wall time; a slave 0.06 s late loses 2 % of each frame.
    frames = session({"slave1": [0.06, 0.06, 0.06], "slave2": [-0.03, 0.0, 0.03]})
    overlap = shutter_overlap(frames, time_factor=0.01)
    assert overlap["slave1"] == pytest.approx(0.98)
    assert overlap["slave2"] == pytest.approx(1 - 0.02 / 3)


def test_missing_frame_counts_as_closed_shutter():
    frames = session({"slave1": [0.0, None, 0.0, 0.0]})
    assert shutter_overlap(frames, time_factor=0.01)["slave1"] == pytest.approx(0.75)
    assert paired_overlap(frames)["slave1"] == pytest.approx(0.75)
    assert exptime_ratio(frames)["slave1"] == pytest.approx(0.75)
    assert missing_exposures(frames, ["slave1", "slave2"]) == {"slave1": [2], "slave2": [1, 2, 3, 4]}


def test_at_real_length_the_union_credits_neighbours_and_paired_overlap_does_not():
    # Unscaled 300 s intervals 4 s apart would run together; paired_overlap compares like with like.
    frames = session({"slave1": [0.5, None, 0.5]})
    assert shutter_overlap(frames, time_factor=1.0)["slave1"] > 0.9  # the union hides the missing frame
    assert paired_overlap(frames, time_factor=1.0)["slave1"] == pytest.approx(2 * (300 - 0.5) / 900)


def test_exptime_ratio_uses_requested_seconds():
    frames = session({"slave1": [0.0, 0.0]}, exptime=300.0)
    frames = [f if f.node == "master" else FrameInfo(f.path, f.node, None, 1, f.exposure_id, f.start, 240.0)
              for f in frames]
    assert exptime_ratio(frames)["slave1"] == pytest.approx(0.8)


def test_start_intervals_are_master_start_to_start():
    frames = [frame("master", 1, 0.0), frame("master", 2, 3.5), frame("master", 3, 7.25), frame("slave1", 1, 0.1)]
    assert start_intervals(frames) == pytest.approx([3.5, 3.75])


def test_skews_and_summary_from_random_session():
    rng = random.Random(3)
    truth = {f"slave{n}": [rng.uniform(-0.2, 0.2) for _ in range(20)] for n in (1, 2)}
    skews = start_skews(session(truth))
    for node, values in truth.items():
        assert skews[node] == pytest.approx(values, abs=1e-6)  # datetime keeps microseconds
    summary = skew_summary(skews)
    every = [abs(v) for vs in truth.values() for v in vs]
    assert summary["pairs"] == 40
    assert summary["max_ms"] == pytest.approx(1000 * max(every), abs=0.1)
    assert summary["p50_ms"] == pytest.approx(1000 * percentile(every, 0.5), abs=0.1)


def test_start_skews_put_each_start_on_the_masters_clock_with_clkoffs():
    """A slave whose clock runs 250 ms ahead (CLKOFFS 0.25) and starts 10 ms late shows 10 ms, not 260."""
    import dataclasses

    frames = session({"slave1": [0.26, 0.26]})
    frames = [dataclasses.replace(f, clock_offset=0.25 if f.node == "slave1" else 0.0) for f in frames]
    corrected = start_skews(frames)["slave1"]
    raw = start_skews(frames, correct_clocks=False)["slave1"]
    assert all(abs(s - 0.01) < 1e-6 for s in corrected)
    assert all(abs(s - 0.26) < 1e-6 for s in raw)
