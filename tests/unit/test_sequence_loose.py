import pytest

from indisync.errors import ConfigError
from indisync.sequence.loose import check_loose, check_strict, check_sync, fits, plan_loose
from indisync.sequence.rotation import FilterRotation


def test_equal_exposures_count():
    # 600 s master, 120 s slave frames + 5 s overhead: 4 x 125 = 500 fits, a 5th would end at 625
    fit = plan_loose(600, FilterRotation(["R", "G", "B"]).upcoming(), lambda f: 120, 5)
    assert fit.filters == ["R", "G", "B", "R"] and fit.count == 4 and fit.busy == 500


def test_per_filter_lengths_follow_rotation_and_stop_at_first_misfit():
    lengths = {"R": 100, "G": 100, "B": 250}
    r = FilterRotation(["R", "G", "B"])
    r.next()  # next is G
    fit = plan_loose(600, r.upcoming(), lengths.__getitem__, 10)
    # G 110, B 260 (370), R 110 (480), G 110 (590); B would need 260 more
    assert fit.filters == ["G", "B", "R", "G"] and fit.busy == pytest.approx(590)


def test_exact_fit_is_allowed_and_none_fit():
    assert plan_loose(300, iter(["R", "R", "R"]), lambda f: 95, 5).count == 3
    assert plan_loose(60, iter(["R"] * 3), lambda f: 120, 5).count == 0
    assert fits(100, 95, 5) and not fits(99.9, 95, 5)


def test_zero_cost_frame_is_refused():
    with pytest.raises(ValueError):
        plan_loose(10, iter(["R"] * 3), lambda f: 0, 0)


def test_strict_error_names_filter_and_lengths():
    check_strict({"Red": 300, "Blue": 600}, [600, 600])
    with pytest.raises(ConfigError) as info:
        check_strict({"Red": 300, "Blue": 900}, [600, 600])
    text = str(info.value)
    assert "Blue 900 s" in text and "600 s" in text and "Red" not in text
    with pytest.raises(ConfigError, match="Red 300 s"):
        check_strict({"Red": 300}, [600, 120])  # shortest master frame counts


def test_loose_check_and_dispatch():
    check_loose({"Red": 120}, [600], 5)
    with pytest.raises(ConfigError, match="Red exposure .600 s \\+ 5 s overhead."):
        check_loose({"Red": 600}, [600], 5)
    check_sync("strict", {"Red": 600}, [600], 5)
    with pytest.raises(ConfigError):
        check_sync("loose", {"Red": 600}, [600], 5)
    with pytest.raises(ConfigError, match="allowed: strict, loose"):
        check_sync("lax", {}, [600], 5)
