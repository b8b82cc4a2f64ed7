from indisync.sequence.settings import RefocusSettings
from indisync.sequence.triggers import AFTER_BATCH, EVERY_FRAMES, HFR_RISE, TEMPERATURE, RefocusTriggers


def off(**kw):
    return RefocusSettings(after_batch=False, **kw)


def test_after_batch_only_when_enabled():
    assert RefocusTriggers(RefocusSettings()).batch_done().trigger == AFTER_BATCH
    assert RefocusTriggers(off()).batch_done() is None


def test_nothing_enabled_never_triggers():
    t = RefocusTriggers(off())
    assert all(t.frame_done(hfr=2.0 + i, temperature=10 - i) is None for i in range(50))


def test_every_n_frames_counts_from_last_focus():
    t = RefocusTriggers(off(every_frames=3))
    assert [t.frame_done() for _ in range(2)] == [None, None]
    assert t.frame_done().trigger == EVERY_FRAMES
    t.reset_after_focus()
    assert t.frame_done() is None and t.frame_done() is None
    assert t.frame_done().trigger == EVERY_FRAMES


def test_hfr_rise_over_median_baseline():
    t = RefocusTriggers(off(hfr_rise_pct=20, hfr_baseline_frames=3, hfr_recent_frames=3))
    for hfr in (2.0, 2.2, 2.1):  # baseline = median = 2.1
        assert t.frame_done(hfr=hfr, filter_name="L") is None
    assert t.hfr_baseline("L") == 2.1
    assert t.frame_done(hfr=3.0, filter_name="L") is None  # one bad frame: recent median 2.2
    assert t.frame_done(hfr=2.4, filter_name="L") is None  # (2.1, 3.0, 2.4) median 2.4: +14%
    reason = t.frame_done(hfr=2.6, filter_name="L")  # (3.0, 2.4, 2.6) median 2.6: +24%
    assert reason.trigger == HFR_RISE and "24%" in reason.detail and "2.10" in reason.detail


def test_hfr_needs_baseline_and_is_per_filter_and_reset():
    t = RefocusTriggers(off(hfr_rise_pct=10, hfr_baseline_frames=2, hfr_recent_frames=1))
    t.frame_done(hfr=2.0, filter_name="R"), t.frame_done(hfr=2.0, filter_name="R")
    assert t.frame_done(hfr=4.0, filter_name="B") is None  # no baseline for B yet
    assert t.frame_done(hfr=None, filter_name="R") is None  # not measured: ignored
    assert t.frame_done(hfr=2.3, filter_name="R").trigger == HFR_RISE
    t.reset_after_focus()
    assert t.hfr_baseline("R") is None
    assert t.frame_done(hfr=2.3, filter_name="R") is None


def test_temperature_delta_from_focus_temperature_either_way():
    t = RefocusTriggers(off(temperature_delta=1.5))
    t.reset_after_focus(temperature=10.0)
    assert t.frame_done(temperature=9.0) is None
    assert t.frame_done(temperature=8.5).trigger == TEMPERATURE
    t.reset_after_focus(temperature=None)  # unknown at focus: the first reading is the reference
    assert t.frame_done(temperature=5.0) is None
    assert t.frame_done(temperature=6.4) is None
    reason = t.frame_done(temperature=6.6)
    assert reason.trigger == TEMPERATURE and "+1.60" in reason.detail
