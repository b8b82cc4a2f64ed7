import logging

from indisync.sequence.plan import MasterProgress, expand_batch, plan_signature
from indisync.sequence.settings import SequenceSettings, Slot


def two_slot_sequence(**kw):
    return SequenceSettings(
        delay_first=30,
        delay_between=5,
        slots=[
            Slot(type="light", filter="Red", exposure=300, binning=2, repeat=2, suffix="a"),
            Slot(type="dark", filter=None, exposure=300, binning=2, repeat=1, **kw),
        ],
    )


def test_expand_batch_orders_slots_and_repeats():
    frames = expand_batch(two_slot_sequence())
    assert [(f.index, f.slot_index, f.repeat_index) for f in frames] == [(0, 0, 0), (1, 0, 1), (2, 1, 0)]
    assert [f.filter for f in frames] == ["Red", "Red", None]
    assert [f.type for f in frames] == ["light", "light", "dark"]
    assert [f.delay_before for f in frames] == [30, 5, 5]
    assert frames[0].suffix == "a" and frames[2].suffix is None and frames[0].binning == 2


def test_progress_next_frame_and_batches():
    frames = expand_batch(two_slot_sequence())
    p = MasterProgress()
    seen = []
    while not p.finished(2):
        f = p.next_frame(frames)
        if f is None:
            assert p.batch_complete(frames)
            p.start_next_batch()
            continue
        seen.append((p.batch, f.index, p.new_exposure_id()))
        p.frame_done()
    assert seen == [(1, 0, 1), (1, 1, 2), (1, 2, 3), (2, 0, 4), (2, 1, 5), (2, 2, 6)]
    assert not MasterProgress(batch=10**6).finished(None)


def test_resume_mid_batch_from_dict():
    frames = expand_batch(two_slot_sequence())
    p = MasterProgress()
    p.align_with(frames)
    p.new_exposure_id(), p.frame_done()
    restored = MasterProgress.from_dict(p.to_dict())
    assert restored.align_with(frames) is False
    assert restored.next_frame(frames).index == 1
    assert restored.new_exposure_id() == 2


def test_edited_sequence_restarts_the_batch_with_a_warning(caplog):
    old = expand_batch(two_slot_sequence())
    new = expand_batch(two_slot_sequence(suffix="x"))
    assert plan_signature(old) != plan_signature(new)
    p = MasterProgress(batch=2, frame=2)
    p.align_with(old)
    with caplog.at_level(logging.WARNING):
        assert p.align_with(new) is True
    assert p.frame == 0 and p.batch == 2
    assert "sequence changed" in caplog.text
