import pytest

from indisync.configtypes import ConfigValueError, build
from indisync.sequence.settings import MasterSettings, RefocusSettings, SequenceSettings, Slot, SlaveSettings


def test_defaults_match_the_issue_example():
    m = build(MasterSettings, {}, "master")
    assert m.sync == "strict" and m.batches is None
    assert m.sequence.delay_first == 0 and m.sequence.delay_between == 0
    assert m.sequence.slots == [Slot(type="light", filter="Luminance", suffix=None, exposure=600, binning=1, repeat=5)]
    assert m.refocus == RefocusSettings(after_batch=True, every_frames=None, hfr_rise_pct=None, temperature_delta=None)
    s = build(SlaveSettings, {}, "slave")
    assert s.filters == ["Red", "Green", "Blue"] and s.exposure == 600


@pytest.mark.parametrize(
    "data, path, words",
    [
        ({"sequence": {"slots": [{"repeat": 0}]}}, "master.sequence.slots[0].repeat", ">= 1"),
        ({"sequence": {"slots": [{"exposure": 0}]}}, "master.sequence.slots[0].exposure", "> 0"),
        ({"sequence": {"slots": [{"exposure": -1, "type": "bias"}]}}, "master.sequence.slots[0].exposure", "> 0"),
        ({"sequence": {"slots": [{"binning": 17}]}}, "master.sequence.slots[0].binning", "1..16"),
        ({"sequence": {"slots": [{"binning": 0}]}}, "master.sequence.slots[0].binning", "1..16"),
        ({"sequence": {"slots": [{"type": "science"}]}}, "master.sequence.slots[0].type", "'bias'"),
        ({"sequence": {"slots": [{"filter": "../../etc"}]}}, "master.sequence.slots[0].filter", "'/'"),
        ({"sequence": {"slots": [{"suffix": ".."}]}}, "master.sequence.slots[0].suffix", "'..'"),
        ({"sequence": {"slots": []}}, "master.sequence.slots", "at least one"),
        ({"sequence": {"delay_between": -5}}, "master.sequence.delay_between", ">= 0"),
        ({"target": "a\\b"}, "master.target", "'/'"),
        ({"target": " "}, "master.target", "empty"),
        ({"sync": "sloppy"}, "master.sync", "'loose'"),
        ({"batches": 0}, "master.batches", "until stopped"),
        ({"refocus": {"every_frames": 0}}, "master.refocus.every_frames", ">= 1"),
        ({"refocus": {"hfr_rise_pct": -3}}, "master.refocus.hfr_rise_pct", "> 0"),
        ({"refocus": {"temperature_delta": 0}}, "master.refocus.temperature_delta", "> 0"),
        ({"dither": {"pixels": 0}}, "master.dither.pixels", "positive"),
        ({"on_star_lost": "shrug"}, "master.on_star_lost", "pause"),
    ],
)
def test_master_bad_values_name_the_key_and_what_is_allowed(data, path, words):
    with pytest.raises(ConfigValueError) as info:
        build(MasterSettings, data, "master")
    assert info.value.path == path
    assert words in str(info.value)


def test_bias_may_have_zero_exposure():
    m = build(MasterSettings, {"sequence": {"slots": [{"type": "bias", "exposure": 0, "repeat": 10}]}}, "master")
    assert m.sequence.slots[0].exposure == 0


def test_direct_construction_is_validated_too():
    bad = MasterSettings(sequence=SequenceSettings(slots=[Slot(repeat=0)]))
    with pytest.raises(ConfigValueError) as info:
        bad.validate()
    assert info.value.path == "sequence.slots[0].repeat"


def test_slave_exposure_map_and_errors():
    s = build(SlaveSettings, {"filters": ["Red", "Blue"], "exposure": {"Red": 300, "Blue": 400, "Ha": 900}}, "slave")
    assert s.exposure_for("Red") == 300 and s.exposure_for("Blue") == 400
    with pytest.raises(ConfigValueError, match="no exposure for Blue"):
        build(SlaveSettings, {"filters": ["Red", "Blue"], "exposure": {"Red": 300}}, "slave")
    with pytest.raises(ConfigValueError, match=r"slave.exposure.Red: got -1"):
        build(SlaveSettings, {"filters": ["Red"], "exposure": {"Red": -1}}, "slave")
    with pytest.raises(ConfigValueError, match="slave.exposure: got 0"):
        build(SlaveSettings, {"exposure": 0}, "slave")
    with pytest.raises(ConfigValueError, match="listed twice"):
        build(SlaveSettings, {"filters": ["Red", "Red"]}, "slave")
    with pytest.raises(ConfigValueError, match="at least one"):
        build(SlaveSettings, {"filters": []}, "slave")
    with pytest.raises(ConfigValueError, match=r"slave.filters\[1\]"):
        build(SlaveSettings, {"filters": ["Red", "a/b"]}, "slave")
