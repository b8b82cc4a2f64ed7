"""The master's side of the season (a scheduler: section; indisync.season.runtime does the deciding):
its batch built from its own plan lines for the current target, each slave's lines for each
exposure, every frame recorded in the store (the master's with its own grade, a slave's from its
expose reply, pending until its ``frame_measured`` grade comes), and every node's wheel noted.

Wiring only: MasterNode calls these; the night sees them through MasterImaging.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..errors import IndisyncError
from ..protocol import messages, topics
from ..season.model import ACCEPTED, REJECTED
from ..sequence.plan import PlannedFrame, plan_signature
from ..sequence.state_store import save_master_progress

log = logging.getLogger(__name__)

IDLE_FALLBACK_S = 1.0  # an idle slot when no node says how long (never reached: the target would be complete)


@dataclass(frozen=True)
class SeasonFrame(PlannedFrame):
    """A frame of the master's season batch: one of its own plan lines, as surplus, or an idle slot
    (no frame of its own: it times the slaves' exposure)."""

    target: str = ""
    surplus: bool = False
    idle: bool = False


@dataclass
class IdleRecord:
    """What an idle master slot leaves: no file, no measurement."""

    duration: float
    path: None = None
    filter_name: None = None
    hfr: None = None
    stars: None = None
    grade: None = None


class SeasonMaster:
    def __init__(self, master, runtime, store):
        self.master, self.runtime, self.store = master, runtime, store
        self.batch_target: str | None = None  # the target the batch (master.plan) was built for...
        self.batch_number: int | None = None  # ...and the batch number it was built as
        self._wheels: dict[str, tuple] = {}  # node -> the wheel last noted

    # ---- the batch -----------------------------------------------------------------------------
    def next_frame(self, now: float) -> SeasonFrame:
        """The master's next frame for the current target: its batch, rebuilt for a new target, a
        completed batch, or the first frame of this process."""
        m = self.master
        target = self.runtime.current()
        if target is None:
            raise IndisyncError("the season has no current target")
        built = self.batch_target == target.name and self.batch_number == m.progress.batch
        frame = m.progress.next_frame(m.plan) if built else None
        if frame is None:
            self._build(target, now)
            frame = m.progress.next_frame(m.plan)
        return frame

    def _build(self, target, now: float) -> None:
        m, settings = self.master, self.runtime.settings
        mine = self.runtime.node_plan(m.name, now, target)
        frames: list[SeasonFrame] = []
        for slot, line in enumerate(mine.lines):
            count = settings.batch_frames if mine.surplus else \
                min(settings.batch_frames, max(1, self.runtime.needed(m.name, line.filter, target)))
            for r in range(count):
                frames.append(SeasonFrame(index=len(frames), slot_index=slot, repeat_index=r, type="light",
                                          filter=line.filter, exposure=float(line.exposure), binning=line.binning,
                                          suffix=line.filter, delay_before=0.0, target=target.name,
                                          surplus=mine.surplus))
        if not frames:
            longest = max((line.exposure for node in target.nodes if node != m.name
                           for line in self.runtime.node_plan(node, now, target).lines), default=IDLE_FALLBACK_S)
            frames.append(SeasonFrame(index=0, slot_index=0, repeat_index=0, type="light", filter=None,
                                      exposure=float(longest), binning=1, suffix=None, delay_before=0.0,
                                      target=target.name, idle=True))
        if m.progress.frame != 0 or self.batch_number == m.progress.batch:  # never reuse a batch's number
            m.progress.start_next_batch()
        m.plan = frames
        m.progress.plan = plan_signature(frames)
        save_master_progress(m.store, m.progress)
        self.batch_target, self.batch_number = target.name, m.progress.batch
        what = "idle (times the slaves' exposures)" if frames[0].idle else \
            ", ".join(f"{f.filter or 'unfiltered'} {f.exposure:g} s" for f in frames)
        log.info("season batch %d for %s: %s%s", m.progress.batch, target.name, what,
                 " (surplus)" if mine.surplus else "")

    def next_duration(self, now: float) -> float:
        """Seconds of the master's next frame (its batch's next, else its first needed line's)."""
        m = self.master
        target = self.runtime.current()
        if target is not None and self.batch_target == target.name and self.batch_number == m.progress.batch:
            frame = m.progress.next_frame(m.plan)
            if frame is not None:
                return frame.exposure
        if target is None:
            return 0.0
        lines = self.runtime.node_plan(m.name, now, target).lines
        if lines:
            return float(lines[0].exposure)
        return max((line.exposure for line in target.plan), default=0.0)

    # ---- per exposure --------------------------------------------------------------------------
    def slave_plans(self, slaves: list[str], now: float) -> dict:
        """node -> NodePlan for this exposure (each slave's own needed and allowed lines)."""
        self.note_wheels()
        target = self.runtime.current()
        return {node: self.runtime.node_plan(node, now, target) for node in slaves}

    def record_master(self, frame: SeasonFrame, record, exposure_id: str) -> None:
        if getattr(record, "path", None) is None:
            return  # an idle slot: nothing written
        grade = record.grade
        rejected = grade is not None and not grade.accepted
        self.runtime.record(_row(self.master.name, frame.target, record.filter_name, record.duration,
                                 str(record.path), REJECTED if rejected else ACCEPTED, exposure_id, frame.surplus,
                                 grade.reason[:500] if rejected else None))

    def record_slaves(self, target: str, replies: dict, plans: dict, exposure_id: str) -> None:
        """Each slave's frames from its expose reply (pending until graded when grading is on)."""
        for node, reply in replies.items():
            if not reply.ok or reply.result is None:
                continue
            result = reply.result
            plan = plans.get(node)
            for i, file in enumerate(result.files):
                filter_name = result.filters[i] if i < len(result.filters) else None
                duration = result.durations[i] if i < len(result.durations) else 0.0
                self.runtime.record(_row(node, target, filter_name, duration, file, self.runtime.slave_grade(),
                                         exposure_id if i == 0 else f"{exposure_id}.{i + 1}",
                                         bool(plan is not None and plan.surplus), None))

    # ---- listening ------------------------------------------------------------------------------
    def attach(self, link) -> None:
        """Every node's frame_measured (the slaves' grades) on the master's link."""
        link.transport.subscribe(link.topics.every(topics.EVENT), self._on_event)

    def _on_event(self, msg) -> None:
        try:
            env = messages.decode(msg.payload, kind=topics.EVENT)
            if env.type != "frame_measured" or env.sender == self.master.name:
                return
            p = env.payload
            self.runtime.grade(env.sender, p.get("file"), p.get("grade"), p.get("grade_reason"),
                               p.get("exposure_id"))
        except Exception:  # noqa: BLE001 - an MQTT callback never raises
            log.exception("season: a frame_measured could not be read")

    def note_wheels(self) -> None:
        """Every live node's wheel (its ``wheel`` state) into the store, when new or changed."""
        registry = self.master.registry
        if registry is None:
            return
        for info in registry.nodes():
            wheel = (info.state or {}).get("wheel")
            if not info.alive or wheel is None:
                continue
            self.note(info.name, info.role, list(wheel))

    def note(self, node: str, role: str | None, wheel: list[str]) -> None:
        if self._wheels.get(node) == tuple(wheel):
            return
        try:
            self.store.note_node(node, role, wheel)
            self._wheels[node] = tuple(wheel)
            log.info("season: %s's wheel noted: %s", node, wheel)
        except Exception as exc:  # noqa: BLE001 - a report for `indisync targets`, never the night's end
            log.error("season: could not note %s's wheel: %s", node, exc)


def _row(node, target, filter_name, exposure, path, grade, exposure_id, surplus, reason):
    from ..season.store import FrameRow

    return FrameRow(node=node, target=target, filter=filter_name, exposure=float(exposure), path=path, grade=grade,
                    taken_at=time.time(), exposure_id=exposure_id, surplus=surplus, reason=reason)
