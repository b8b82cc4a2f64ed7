"""The issue's worked example and restart behaviour, driven through the pure sequencing pieces.

A small loop plays the master's role (plan + progress + refocus triggers, state on disk) and a
slave's (filter rotation, state on disk); "restarting" means building new objects from the files.
"""

from pathlib import Path

from indisync.configtypes import build
from indisync.sequence.plan import expand_batch
from indisync.sequence.rotation import FilterRotation
from indisync.sequence.settings import MasterSettings, SlaveSettings
from indisync.sequence.state_store import StateStore, load_master_progress, save_master_progress
from indisync.sequence.triggers import RefocusTriggers

ISSUE_MASTER = {
    "target": "M42",
    "sync": "strict",
    "batches": 3,
    "sequence": {
        "delay_first": 0,
        "delay_between": 0,
        "slots": [{"type": "light", "filter": "Luminance", "suffix": None, "exposure": 600, "binning": 1, "repeat": 5}],
    },
    "refocus": {"after_batch": True, "every_frames": None, "hfr_rise_pct": None, "temperature_delta": None},
}
ISSUE_SLAVE = {"filters": ["Red", "Green", "Blue"], "exposure": 600}


class Night:
    """Master and one slave with their state files; ``run`` returns the slave's log of events."""

    def __init__(self, tmp: Path, master: dict = ISSUE_MASTER, slave: dict = ISSUE_SLAVE):
        self.master_settings = build(MasterSettings, master, "master")
        self.slave_settings = build(SlaveSettings, slave, "slave")
        self.master_state = tmp / "master.json"
        self.slave_state = tmp / "slave.json"
        self.log: list[str] = []
        self.master_frames: list[tuple[int, int, int]] = []  # (batch, frame index, exposure id)

    def run(self, stop_after_master_frames: int | None = None) -> bool:
        """Run until done (True) or until the 'power fails' after that many master frames (False)."""
        store = StateStore(self.master_state)  # fresh objects each run: a restart
        progress = load_master_progress(store)
        frames = expand_batch(self.master_settings.sequence)
        progress.align_with(frames)
        triggers = RefocusTriggers(self.master_settings.refocus)
        rotation = FilterRotation(self.slave_settings.filters, StateStore(self.slave_state))
        taken = 0
        while not progress.finished(self.master_settings.batches):
            frame = progress.next_frame(frames)
            if frame is None:
                if triggers.batch_done():
                    self.log.append("(focus)")
                    triggers.reset_after_focus()
                progress.start_next_batch()
                save_master_progress(store, progress)
                continue
            if stop_after_master_frames is not None and taken >= stop_after_master_frames:
                return False
            exposure_id = progress.new_exposure_id()
            save_master_progress(store, progress)
            filter_name = rotation.peek()  # slave exposes with the master
            assert self.slave_settings.exposure_for(filter_name) <= frame.exposure
            rotation.advance()  # slave frame written
            self.log.append(filter_name[0])
            self.master_frames.append((progress.batch, frame.index, exposure_id))
            progress.frame_done()
            save_master_progress(store, progress)
            taken += 1
            reason = triggers.frame_done(hfr=2.0, filter_name=frame.filter)
            if reason:
                self.log.append("(focus)")
                triggers.reset_after_focus()
        return True


def squash(log: list[str]) -> str:
    """['R','G','(focus)','B'] -> 'RG (focus) B'."""
    out = ""
    for item in log:
        out += f" {item} " if item == "(focus)" else item
    return " ".join(out.split())


def test_issue_example_rgbrg_focus_brgbr_focus_gbrgb_focus(tmp_path):
    night = Night(tmp_path)
    assert night.run() is True
    assert squash(night.log) == "RGBRG (focus) BRGBR (focus) GBRGB (focus)"
    assert [b for b, _, _ in night.master_frames] == [1] * 5 + [2] * 5 + [3] * 5
    assert [e for _, _, e in night.master_frames] == list(range(1, 16))


def test_power_cut_mid_batch_resumes_at_next_frame_and_rotation_continues(tmp_path):
    night = Night(tmp_path)
    assert night.run(stop_after_master_frames=7) is False  # batch 2, after its 2nd frame
    assert night.master_frames[-1][:2] == (2, 1)
    assert night.run() is True  # new objects, state read back from the files
    assert squash(night.log) == "RGBRG (focus) BRGBR (focus) GBRGB (focus)"
    # batch 2 resumed at its 3rd frame (index 2), not its first; no frame taken twice
    assert [(b, i) for b, i, _ in night.master_frames][5:10] == [(2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
    ids = [e for _, _, e in night.master_frames]
    assert ids == sorted(set(ids)), "master exposure ids must never be reused after a restart"


def test_several_restarts_give_the_same_frames_as_one_uninterrupted_night(tmp_path):
    straight = Night(tmp_path / "a")
    straight.run()
    interrupted = Night(tmp_path / "b")
    for _ in range(10):
        if interrupted.run(stop_after_master_frames=2):
            break
    assert interrupted.log == straight.log
    assert interrupted.master_frames == straight.master_frames


def test_every_frames_trigger_refocuses_mid_batch(tmp_path):
    master = {**ISSUE_MASTER, "batches": 1, "refocus": {"after_batch": False, "every_frames": 2}}
    night = Night(tmp_path, master=master)
    night.run()
    assert squash(night.log) == "RG (focus) BR (focus) G"
