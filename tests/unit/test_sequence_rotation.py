import itertools
import json
import logging

import pytest

from indisync.errors import UnknownFilter
from indisync.sequence.rotation import FilterRotation, exposure_for, validate_checked_filters
from indisync.sequence.settings import SlaveSettings
from indisync.sequence.state_store import StateStore

WHEEL = ["Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance"]


def test_checked_filters_keep_their_order():
    assert validate_checked_filters(["Blue", "Red"], WHEEL) == ["Blue", "Red"]


def test_unknown_filter_message_names_it_and_lists_the_wheel():
    with pytest.raises(UnknownFilter) as info:
        validate_checked_filters(["Red", "Ha", "Lum"], WHEEL)
    text = str(info.value)
    assert "'Ha'" in text and "'Lum'" in text and "'Red'" not in text.split("which")[0]
    for name in WHEEL:
        assert repr(name) in text


def test_rotation_loops_and_peek_does_not_move():
    r = FilterRotation(["R", "G", "B"])
    assert r.peek() == r.peek() == "R"
    assert [r.next() for _ in range(7)] == list("RGBRGBR")
    assert r.peek() == "G" and r.position == 1 and r.taken == 7
    assert list(itertools.islice(r.upcoming(), 5)) == list("GBRGB")
    assert r.peek() == "G"


def test_position_survives_restart(tmp_path):
    path = tmp_path / "slave.json"
    r = FilterRotation(["Red", "Green", "Blue"], StateStore(path))
    assert [r.next() for _ in range(4)] == ["Red", "Green", "Blue", "Red"]
    again = FilterRotation(["Red", "Green", "Blue"], StateStore(path))  # new process
    assert again.next() == "Green"
    assert again.taken == 5
    saved = json.loads(path.read_text())["sections"]["rotation"]
    assert saved["index"] == 2 and saved["last"] == "Green"


def test_peek_without_advance_retakes_the_filter_after_a_crash(tmp_path):
    path = tmp_path / "slave.json"
    r = FilterRotation(["Red", "Green", "Blue"], StateStore(path))
    r.next()
    assert r.peek() == "Green"  # exposing Green... the process dies before the frame is written
    assert FilterRotation(["Red", "Green", "Blue"], StateStore(path)).peek() == "Green"


def test_changed_checked_list_continues_after_last_taken_and_logs(tmp_path, caplog):
    path = tmp_path / "slave.json"
    r = FilterRotation(["Red", "Green", "Blue"], StateStore(path))
    r.next(), r.next()  # Red, Green
    with caplog.at_level(logging.WARNING):
        r2 = FilterRotation(["Green", "SII", "Red"], StateStore(path))
    assert r2.peek() == "SII"
    assert "changed" in caplog.text


def test_changed_list_without_last_filter_restarts_with_a_warning(tmp_path, caplog):
    path = tmp_path / "slave.json"
    r = FilterRotation(["Red", "Green"], StateStore(path))
    r.next()
    with caplog.at_level(logging.WARNING):
        r2 = FilterRotation(["OIII", "SII"], StateStore(path))
    assert r2.peek() == "OIII"
    assert "starts again" in caplog.text


def test_exposure_for_one_value_or_per_filter():
    assert exposure_for(SlaveSettings(exposure=120), "Blue") == 120
    per = SlaveSettings(filters=["Red", "Blue"], exposure={"Red": 300, "Blue": 400})
    assert exposure_for(per, "Red") == 300 and exposure_for(per, "Blue") == 400
