"""The coarse search's pure pieces (focus/search.py): which way focus lies, the walk, the bracket."""

import math

import pytest

from indisync.focus.fit import FocusPoint, fit_vcurve
from indisync.focus.search import Walk, downhill_side, parabola_vertex
from indisync.focus.settings import FocusSettings


def pt(position, hfr, stars=50):
    return FocusPoint(position, hfr, 0.1 * hfr if hfr else None, stars if hfr else 1)


def vcurve(focus, positions, blur=None):
    """A V (hyperbola) with focus at ``focus``; HFR above ``blur`` is too blurred to measure."""
    out = []
    for x in positions:
        h = math.sqrt(1.5 ** 2 + ((x - focus) / 1000) ** 2)
        out.append(pt(x, None) if blur is not None and h > blur else pt(x, h))
    return out


def test_one_flank_points_downhill():
    s = FocusSettings()
    pts = vcurve(20000, range(48400, 51601, 400))
    assert downhill_side(pts, fit_vcurve(pts, s.fit), s) == "low"
    pts = vcurve(80000, range(48400, 51601, 400))
    assert downhill_side(pts, fit_vcurve(pts, s.fit), s) == "high"


def test_blurred_frames_count_as_far():
    s = FocusSettings()
    pts = vcurve(52000, range(46400, 49601, 400), blur=4.0)  # the low end too blurred to measure
    assert any(not p.usable for p in pts) and pts[-1].usable
    assert downhill_side(pts, fit_vcurve(pts, s.fit), s) == "high"


def test_bracketed_and_flat_sweeps_do_not_walk():
    s = FocusSettings()
    pts = vcurve(50000, range(48400, 51601, 400))
    assert downhill_side(pts, fit_vcurve(pts, s.fit), s) is None
    flat = [pt(x, 2.0 * (1 + 0.01 * ((x // 400) % 3 - 1))) for x in range(48400, 51601, 400)]
    assert downhill_side(flat, fit_vcurve(flat, s.fit), s) is None


def test_walk_grows_its_stride_and_stops_at_the_limit():
    s = FocusSettings(step=400, search_growth=2.0)
    walk = Walk.start(vcurve(0, range(48400, 51601, 400)), "low", 400, s)
    assert walk.path[-1].position == 48400  # starts from the low edge
    positions = []
    for _ in range(4):
        nxt = walk.next_position(0, 100000)
        positions.append(nxt)
        walk.add(pt(nxt, 1.0 + nxt / 10000))
    assert positions == [47600, 46000, 42800, 36400]
    edge = Walk.start([pt(300, 2.0), pt(700, 2.5)], "low", 400, s)
    assert edge.next_position(0, 100000) == 0  # clipped into the range
    edge.add(pt(0, 1.9))
    assert edge.next_position(0, 100000) is None  # at the limit: nowhere to go


def test_walk_brackets_on_a_rise_or_a_blurred_frame_and_plans_the_vcurve():
    s = FocusSettings(step=400, points=9)
    sweep = vcurve(36700, range(48400, 51601, 400))
    walk = Walk.start(sweep, "low", 400, s)
    for x in (47600, 46000, 42800, 36400):
        walk.add(vcurve(36700, [x])[0])
        assert not walk.bracketed
    walk.add(vcurve(36700, [23600])[0])
    assert walk.bracketed
    centre, step = walk.plan_vcurve(s, 0, 100000)
    assert step == round((42800 - 23600) / 8) == 2400
    assert centre in (36400, 36400 + 2400, 36400 - 2400) and abs(centre - 36700) <= step / 2 + 1
    blurred = Walk.start(sweep, "low", 400, s)
    for x in (47600, 46000, 42800, 36400):
        blurred.add(vcurve(36700, [x])[0])
    blurred.add(pt(23600, None))  # too blurred: as good as a rise
    assert blurred.bracketed
    assert blurred.plan_vcurve(s, 0, 100000)[1] == 2400


def test_a_level_walk_stalls():
    s = FocusSettings()
    walk = Walk.start([pt(x, 2.0) for x in range(0, 1601, 400)], "high", 400, s)
    for _ in range(3):
        walk.add(pt(walk.next_position(0, 100000), 2.02))
    assert walk.stalled and not walk.bracketed


def test_parabola_vertex():
    assert parabola_vertex([0, 1, 2, 3], [4 + (x - 1.3) ** 2 for x in [0, 1, 2, 3]]) == pytest.approx(1.3)
    assert parabola_vertex([0, 1, 2], [0, 1, 0]) is None  # opens downwards
    assert parabola_vertex([0, 0, 1], [1, 1, 2]) is None  # two distinct positions
