"""The frames of one batch, and where the master is in the run (kept on disk to resume mid-batch).

A batch is the slots expanded in order: slot 0 ``repeat`` times, then slot 1, ... (as MaxIm runs
a sequence with "group by slot"). ``MasterProgress`` points at the next frame to take; it moves
only after a frame is written (``frame_done``), so a master that dies mid-exposure takes that frame
again on restart and one that dies between frames resumes at the next one, never the first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

from .settings import SequenceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedFrame:
    index: int  # position within the batch, 0-based
    slot_index: int  # which slot of the sequence, 0-based
    repeat_index: int  # which repeat of that slot, 0-based
    type: str  # light | dark | flat | bias
    filter: str | None
    exposure: float  # seconds
    binning: int
    suffix: str | None
    delay_before: float  # seconds to wait before starting it (delay_first for the first frame)


def expand_batch(sequence: SequenceSettings) -> list[PlannedFrame]:
    """The frames of one batch, in the order they are taken."""
    frames: list[PlannedFrame] = []
    for slot_index, slot in enumerate(sequence.slots):
        for repeat_index in range(slot.repeat):
            index = len(frames)
            frames.append(
                PlannedFrame(
                    index=index,
                    slot_index=slot_index,
                    repeat_index=repeat_index,
                    type=slot.type,
                    filter=slot.filter,
                    exposure=float(slot.exposure),
                    binning=slot.binning,
                    suffix=slot.suffix,
                    delay_before=float(sequence.delay_first if index == 0 else sequence.delay_between),
                )
            )
    return frames


def plan_signature(frames: list[PlannedFrame]) -> str:
    """A short fingerprint of a batch plan, stored with the progress to notice an edited sequence."""
    text = json.dumps([asdict(f) for f in frames], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class MasterProgress:
    """Where the master is: batch number (1-based), next frame within it, exposure ids issued."""

    batch: int = 1  # 1-based, as written to the BATCH header
    frame: int = 0  # index within the batch of the next frame to take
    exposure_id: int = 0  # last master exposure id issued; ids are unique across restarts
    plan: str = ""  # plan_signature of the batch this progress refers to

    def next_frame(self, frames: list[PlannedFrame]) -> PlannedFrame | None:
        """The frame to take now, or None when this batch is complete."""
        if self.frame < len(frames):
            return frames[self.frame]
        return None

    def batch_complete(self, frames: list[PlannedFrame]) -> bool:
        return self.frame >= len(frames)

    def new_exposure_id(self) -> int:
        """A fresh master exposure id (store the progress afterwards so it is never reused)."""
        self.exposure_id += 1
        return self.exposure_id

    def frame_done(self) -> None:
        """The current frame is written: point at the next one."""
        self.frame += 1

    def start_next_batch(self) -> None:
        self.batch += 1
        self.frame = 0

    def finished(self, batches: int | None) -> bool:
        """True when ``batches`` batches are done (never, for batches=None: until stopped)."""
        return batches is not None and self.batch > batches

    def align_with(self, frames: list[PlannedFrame]) -> bool:
        """Adopt ``frames`` as the plan. If the stored progress was for a different plan (the
        sequence was edited between runs), restart this batch at its first frame and say so.
        Returns True if the position was reset."""
        signature = plan_signature(frames)
        reset = bool(self.plan) and self.plan != signature and self.frame != 0
        if reset:
            log.warning(
                "the sequence changed since the saved progress (batch %d, frame %d): "
                "restarting batch %d at its first frame",
                self.batch, self.frame + 1, self.batch,
            )
            self.frame = 0
        self.plan = signature
        return reset

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MasterProgress":
        try:
            progress = cls(
                batch=int(data["batch"]),
                frame=int(data["frame"]),
                exposure_id=int(data.get("exposure_id", 0)),
                plan=str(data.get("plan", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"master progress {data!r} is missing or has a bad value: {exc}") from None
        if progress.batch < 1 or progress.frame < 0 or progress.exposure_id < 0:
            raise ValueError(f"master progress {data!r} is out of range")
        return progress
