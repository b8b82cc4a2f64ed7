"""Filter and temperature focus offsets (pure arithmetic)."""

from indisync.focus.offsets import FocusBase, default_base, focus_position, offset_move
from indisync.focus.settings import FocusSettings


def make(**kw):
    return FocusSettings(offsets={"L": 0, "R": 30, "B": 70, "Ha": -40}, **kw)


def test_filter_offsets_are_relative_to_the_filter_focus_was_found_in():
    s = make()
    base = FocusBase(10000, "R", None)
    assert focus_position(base, "R", None, s) == 10000
    assert focus_position(base, "L", None, s) == 9970
    assert focus_position(base, "B", None, s) == 10040
    assert focus_position(base, "Ha", None, s) == 9930
    assert focus_position(base, "unlisted", None, s) == 9970  # offset 0, like L
    assert focus_position(base, None, None, s) == 9970


def test_temperature_term_needs_both_temperatures():
    s = make(temp_coefficient=-12.5)
    base = FocusBase(10000, "L", 15.0)
    assert focus_position(base, "L", 11.0, s) == 10050
    assert focus_position(base, "R", 11.0, s) == 10080
    assert focus_position(base, "L", None, s) == 10000
    assert focus_position(FocusBase(10000, "L", None), "L", 11.0, s) == 10000


def test_temporary_offset_adds():
    assert focus_position(FocusBase(10000, "L", None), "L", None, make(), temporary=-15) == 9985


def test_small_changes_do_not_move_and_do_not_accumulate():
    s = make(temp_coefficient=-10.0, min_offset_move=5)
    base = FocusBase(10000, "L", 10.0)
    current = 10000
    moves = []
    for step in range(1, 21):  # cooling 0.1 °C at a time: 1 step each, 20 steps over 2 °C
        target = offset_move(current, base, "L", 10.0 - 0.1 * step, s)
        if target is not None:
            moves.append(target)
            current = target
    assert moves == [10005, 10010, 10015, 10020]
    assert offset_move(current, base, "B", 8.0, s) == 10090  # a filter change always moves


def test_default_position_base():
    assert default_base(make()) is None
    base = default_base(make(default_position=20000, reference_temperature=5.0, temp_coefficient=2.0))
    assert base.source == "default"
    assert focus_position(base, "R", 10.0, make(temp_coefficient=2.0)) == 20040
