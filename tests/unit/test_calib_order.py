"""The flat sets in the order the sky allows (calib.order)."""

from __future__ import annotations

import pytest

from indisync.calib.model import FlatSet
from indisync.calib.order import filter_rank, order_sets


def _sets(*names, binning=1):
    return [FlatSet.make(n, binning) for n in names]


def _names(sets):
    return [(s.filter, s.binning) for s in sets]


def test_dusk_needs_most_light_first_dawn_reversed():
    sets = _sets("L", "R", "G", "B", "Ha", "OIII", "SII", "Foo", None)
    dusk = order_sets(sets, "dusk")
    assert [s.filter for s in dusk] == ["Ha", "OIII", "SII", "B", "G", "R", "Foo", "L", None]
    dawn = order_sets(sets, "dawn")
    assert dawn == dusk[::-1]


def test_narrowband_names_are_recognised():
    for name in ("Ha", "H-alpha", "Halpha", "Ha 7nm", "OIII 3nm", "O3", "S2", "SII", "Hb", "L-eXtreme", "CH4 3.5nm"):
        assert filter_rank(name) == 0, name
    for name, rank in (("Red", 4), ("blue", 2), ("Green", 3), ("Lum", 6), ("Luminance", 6), ("Clear", 6),
                       (None, 6), ("UV/IR cut", 6), ("Mystery", 5)):
        assert filter_rank(name) == rank, name


def test_custom_narrowband_list():
    assert filter_rank("Ha", narrowband=["Methane"]) != 0
    assert filter_rank("methane", narrowband=["Methane"]) == 0


def test_filter_order_overrides():
    sets = _sets("L", "R", "G", "B", "Ha")
    dusk = order_sets(sets, "dusk", filter_order=["l", "Ha"])  # case-insensitive; the others after, built-in
    assert [s.filter for s in dusk] == ["L", "Ha", "B", "G", "R"]
    assert [s.filter for s in order_sets(sets, "dawn", filter_order=["l", "Ha"])] == ["R", "G", "B", "Ha", "L"]


def test_within_a_filter_binning_order_and_stable():
    sets = [FlatSet.make("R", 2), FlatSet.make("L", 1), FlatSet.make("R", 1), FlatSet.make("R", 1, 90.0)]
    dusk = order_sets(sets, "dusk")
    assert _names(dusk) == [("R", 1), ("R", 1), ("R", 2), ("L", 1)]
    assert dusk[0].rotator_angle is None and dusk[1].rotator_angle == 90.0  # stable among equals
    assert order_sets(sets, "dawn") == dusk[::-1]


def test_unknown_names_keep_their_order():
    sets = _sets("Zeta", "Alpha", "L")
    assert [s.filter for s in order_sets(sets, "dusk")] == ["Zeta", "Alpha", "L"]


def test_bad_direction():
    with pytest.raises(ValueError, match="dusk or dawn"):
        order_sets([], "noon")
    assert order_sets([], "dawn") == []
