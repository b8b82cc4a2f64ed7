"""Frame grading against the running medians of the same node and filter."""

from indisync.record.grading import FrameGrader, grade_frame, grade_header_cards
from indisync.record.settings import GradingSettings

S = GradingSettings(hfr_factor=1.3, stars_factor=0.6, window=5, min_history=3, max_guide_rms_arcsec=2.0)


def test_first_frames_accepted_for_want_of_history():
    grade = grade_frame(9.0, 5, [(2.0, 100)], S)
    assert grade.accepted and "history 1 < 3" in grade.reason


def test_hfr_above_factor_times_median_rejected_with_reason():
    history = [(2.0, 100), (2.2, 110), (2.1, 90)]
    assert grade_frame(2.7, 100, history, S).accepted  # 2.7 < 1.3 x 2.1 = 2.73
    bad = grade_frame(2.8, 100, history, S)
    assert not bad.accepted and bad.reason.startswith("hfr 2.80 > 1.3 x median 2.10")


def test_few_stars_rejected_with_reason():
    history = [(2.0, 100), (2.2, 110), (2.1, 90)]
    assert grade_frame(2.0, 60, history, S).accepted
    bad = grade_frame(2.0, 59, history, S)
    assert not bad.accepted and bad.reason == "stars 59 < 0.6 x median 100"


def test_guiding_rms_rejects_and_unmeasured_frame_is_not_graded():
    assert not grade_frame(2.0, 100, [], S, guide_rms_arcsec=2.5).accepted
    assert grade_frame(2.0, 100, [], S, guide_rms_arcsec=1.5).accepted
    assert grade_frame(None, None, [], S) is None


def test_grader_keeps_rejected_frames_out_of_history_per_filter():
    grader = FrameGrader(S)
    for _ in range(3):
        assert grader.grade("Red", 2.0, 100).accepted
    for _ in range(6):  # a long cloudy stretch never becomes the norm
        assert not grader.grade("Red", 2.0, 10).accepted
    assert grader.grade("Red", 2.0, 100).accepted
    assert grader.grade("Green", 5.0, 10).accepted  # another filter has its own history


def test_header_cards():
    grade = grade_frame(2.8, 100, [(2.0, 100)] * 3, S)
    cards = dict((k, v) for k, v, _ in grade_header_cards(grade))
    assert cards["GRADE"] == "rejected" and cards["GRADERSN"].startswith("hfr 2.80")
    assert grade_header_cards(None) == []
