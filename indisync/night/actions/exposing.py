"""The imaging sequence's frames: ``expose`` takes the next frame on every node (the rig's imaging
does the synchronised start), keeps the progress and the refocus triggers and says what comes next;
``abort_exposures`` aborts every participant's exposure at once.

A slot counts as done only when the master's frame is on disk (I6): a frame not taken (camera or
indiserver gone) answers ``ok: false`` with the reason, the progress is untouched and the machine
takes the same slot again after safety.frame_retry. A frame whose token was cancelled (rain, a stop
with --abort, the window's end) is aborted, never written and never counted.
"""

from __future__ import annotations

import logging
import time

from ...errors import IndisyncError
from ..events import FrameDone
from ..rig import Outcome, each
from ..token import AnyOf
from . import flip as flip_action
from . import guide

log = logging.getLogger(__name__)

ABORT_WAIT_S = 10.0


def expose(ctx):
    if getattr(ctx.rig, "season", None) is not None:
        return expose_season(ctx)
    im = ctx.rig.imaging
    progress, plan = im.progress, im.plan
    frame = progress.next_frame(plan)
    if frame is None:  # a batch completed by an earlier run: on to the next
        progress.start_next_batch()
        im.save_progress()
        frame = progress.next_frame(plan)
    stopped = _hold(ctx, frame)
    if stopped is not _GO:
        return stopped
    record, answer = _take(ctx, frame)
    if answer is not None:
        return answer
    refocus, dither = _account(ctx, frame, record)
    duration, finished = ctx.night.next_frame_facts()
    return FrameDone(ok=True, refocus=refocus, dither=dither, next_duration=duration, finished=finished)


def expose_season(ctx):
    """The season's frame: the master's next frame of its season batch for the current target (its
    own needed line, surplus, or an idle slot timed for the slaves), every slave through its own
    needed lines; then the season decides whether the night stays, switches (``switch``: slew,
    centre, guide, image there) or has nothing left (``finished``). No current target (a gap between
    windows): the frame is not taken and tried again after safety.frame_retry, asking the season
    anew; a target chosen since the last slew: the night slews there first."""
    season, facts = ctx.rig.season, ctx.night.next_frame_facts
    now = time.time()
    aim = season.aim()
    if aim is None:
        decision = season.choose(now, "no current target")
        if decision.target is None:
            duration, finished = facts()
            if finished:
                return FrameDone(ok=True, finished=True, next_duration=duration, reason=decision.reason[:500])
            return FrameDone(ok=False, reason=decision.reason[:500], next_duration=duration, finished=False)
        aim = season.aim()
    if ctx.memo.aimed is not None and aim is not None and aim.name != ctx.memo.aimed and ctx.plan.slew:
        duration, finished = facts()  # chosen since the last slew (after a gap): go there first
        return FrameDone(ok=True, switch=(season.last_decision.reason if season.last_decision else aim.name)[:500],
                         next_duration=duration, finished=finished)
    frame = ctx.rig.imaging.season_frame(now)
    stopped = _hold(ctx, frame)
    if stopped is not _GO:
        return stopped
    record, answer = _take(ctx, frame)
    if answer is not None:
        return answer
    refocus, dither = _account(ctx, frame, record)
    decision = season.after_frame(time.time())
    switch = decision.reason if decision.switch and decision.target is not None else None
    duration, finished = facts()
    return FrameDone(ok=True, refocus=refocus, dither=dither and switch is None, next_duration=duration,
                     finished=finished, switch=None if switch is None else switch[:500])


_GO = object()  # _hold's "take the frame now"


def _hold(ctx, frame):
    """The frame's delay and the guider's hold (leaving the state, or `indisync stop`, ends either).
    None: cancelled before it started (nothing taken, nothing counted); a FrameDone: stopped by hand
    before it began (it is not started); _GO: take it."""
    held = AnyOf(ctx.token, ctx.night.stopping)
    held.wait(frame.delay_before)
    if not held.is_set():
        guide.before_frame(ctx, held)
    if ctx.token.is_set():
        return None
    if ctx.night.stopping.is_set():
        duration, finished = ctx.night.next_frame_facts()
        return FrameDone(ok=False, aborted=True, reason="stopped before the frame started",
                         next_duration=duration, finished=finished)
    if ctx.memo.flip_report is not None:
        flip_action.report_flip(ctx)
    return _GO


def _take(ctx, frame):
    """Every node's exposure of ``frame``: (the master's record, None), or (None, the FrameDone that
    says why it is not counted: aborted, not taken, or taken again for grading.retake)."""
    rig, token, im = ctx.rig, ctx.token, ctx.rig.imaging
    batch, reason = im.progress.batch, None
    try:
        record = im.take(frame, token)  # returns once every slave's exposure has ended
    except IndisyncError as exc:  # no devices right now (indiserver lost), the camera refused, ...
        record, reason = None, str(exc)
        log.error("frame %d of batch %d: %s", frame.index + 1, batch, exc)
        rig.report.error(f"master frame not taken: {exc}"[:1000])
    duration, finished = ctx.night.next_frame_facts() if record is None else (None, None)
    if record is None and token.is_set():
        log.warning("frame %d of batch %d aborted: it is taken again when the night resumes", frame.index + 1, batch)
        return None, FrameDone(ok=False, aborted=True, next_duration=duration, finished=finished)
    if record is None:
        why = reason or "the master's frame was not written"
        log.error("frame %d of batch %d not taken (%s): not counted, taken again", frame.index + 1, batch, why)
        return None, FrameDone(ok=False, reason=why[:500], next_duration=duration, finished=finished)
    if im.retake_due(frame, record):
        # grading.retake: the same slot once more (no dither, no refocus); the rejected frame stays on disk
        duration, finished = ctx.night.next_frame_facts()
        return None, FrameDone(ok=True, refocus=None, dither=False, next_duration=duration, finished=finished)
    return record, None


def _account(ctx, frame, record) -> tuple[str | None, bool]:
    """A frame taken: the progress on, the refocus triggers fed; (why to refocus now, dither)."""
    im = ctx.rig.imaging
    progress = im.progress
    progress.frame_done()
    im.save_progress()
    refocus = im.triggers.frame_done(record.hfr, frame.filter, im.temperature())
    dither = False
    if progress.batch_complete(im.plan):
        refocus = im.triggers.batch_done()  # the last batch too: the example ends "GBRGB (focus)"
        progress.start_next_batch()
        im.save_progress()
    else:
        dither = refocus is None and ctx.rig.guiding() is not None
    ctx.memo.refocus_reason = str(refocus) if refocus is not None else None
    return ctx.memo.refocus_reason, dither


def abort_exposures(ctx):
    """Abort every node's exposure at once: each participant, the master's own camera first."""
    reason = (ctx.state and ctx.night.snapshot.reason) or "night"

    def abort(p) -> Outcome:
        p.abort(reason[:500])
        return Outcome(True)

    outcomes = each(ctx.rig.participants(), abort, ABORT_WAIT_S, "abort")
    failed = {name: o.reason for name, o in outcomes.items() if not o.ok}
    if failed:
        log.warning("abort: %s", failed)
    log.warning("every exposure aborted: %s", reason)
    return None
