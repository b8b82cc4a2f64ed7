"""The night's meridian flip on the devices (``flip``), and where the mount points for the machine's
flip decision (``pointing``).

The flip runs between frames only (the machine sends no expose meanwhile): hold until the hour angle
reaches flip.after_meridian_min, stop guiding, slew to the target again (one motion of the arbiter
under the flipping state's token: rain or a stop cancels it), check that TELESCOPE_PIER_SIDE changed,
mirror the guider's calibration (or forget it: flip.recalibrate). Centring and the guider's restart
follow as night states. ``flip_done`` is sent with the first frame after the flip (``report_flip``),
so its total includes them.
"""

from __future__ import annotations

import logging
import time

from ...errors import IndisyncError
from ..events import FlipFailed, Flipped
from ..meridian import POST_FLIP_SIDE, hour_angle_hours
from ..planning import PIER_SIDE_WAIT_S, slew_timeout
from ..rig import aim_of
from . import guide

log = logging.getLogger(__name__)


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def pointing(ctx) -> dict:
    """{ha_hours, ha_at, pier_side} of where the mount points now, for the machine's flip decision;
    {} without a flip to watch or when the mount does not answer."""
    if ctx.plan is None or not ctx.plan.flip or ctx.memo.longitude is None:
        return {}
    try:
        mount = ctx.rig.devices().mount
        ra_hours, _ = mount.coordinates  # JNow, as the mount's own sidereal time sees it
        at = time.time()
        return {"ha_hours": hour_angle_hours(ra_hours * 15.0, ctx.memo.longitude, at), "ha_at": at,
                "pier_side": mount.pier_side}
    except Exception as exc:  # noqa: BLE001 - the next frame_done tries again
        log.warning("flip: could not read where the mount points: %s", exc)
        return {}


def flip(ctx, at: float | None = None):
    rig, token = ctx.rig, ctx.token
    settings = ctx.plan.flip_settings
    begun = time.time()
    rig.report.update_state(phase="flipping", exposure=None)
    if at is not None and at > begun:
        log.info("holding every node for the meridian flip at %s (%.0f s)", _stamp(at), at - begun)
        if token.wait(at - begun):
            return None  # the night moved on meanwhile (rain, stop): no slew now
    token.check("the meridian flip")
    waited = time.time() - begun
    guide.stop(ctx)
    mount = rig.devices().mount
    before = mount.pier_side
    where = pointing(ctx)
    ha_min = where["ha_hours"] * 60.0 if where.get("ha_hours") is not None else None
    log.info("meridian flip: hour angle %s min, pier side %s", "?" if ha_min is None else f"{ha_min:+.2f}", before)
    rig.report.event("flip_started", pier_side=before, ha_min=ha_min)
    target = aim_of(rig)  # master.target, or the season's current target
    slew_started = time.monotonic()
    try:
        rig.arbiter.move(token, "the flip slew",
                         lambda: mount.slew_j2000(target.ra, target.dec, slew_timeout(rig.cfg), cancel=token))
    except IndisyncError as exc:
        if token.is_set():
            return None  # cancelled (ActionCancelled, or the abort it caused): no failed flip to report
        return _flip_failed(ctx, f"the flip slew failed: {exc}", before, waited, time.monotonic() - slew_started,
                            begun)
    slew_s = time.monotonic() - slew_started
    after = before
    deadline = time.monotonic() + PIER_SIDE_WAIT_S
    while time.monotonic() < deadline:  # the slew ended Ok; the pier side may come a moment later
        after = mount.pier_side
        if after != before and after is not None:
            break
        if token.wait(0.1):
            return None
    if after == before or after != POST_FLIP_SIDE:
        hint = ("the mount does not report TELESCOPE_PIER_SIDE, so the flip cannot be verified"
                if after is None else
                f"pier side stayed {after} after the flip slew (our hour angle "
                f"{'?' if ha_min is None else f'{ha_min:+.2f}'} min): check that site: and the computer's "
                "clock agree with the mount's GEOGRAPHIC_COORD and time, or raise flip.after_meridian_min")
        return _flip_failed(ctx, hint, before, waited, slew_s, begun)
    guiding = rig.guiding()
    if guiding is not None:
        try:
            guiding.guider.after_meridian_flip(recalibrate=settings.recalibrate)
        except Exception as exc:  # noqa: BLE001 - the guider restarts (calibrating) or reports
            log.error("guider calibration not mirrored: %s", exc)
            rig.report.error(f"flip: guider calibration not mirrored: {exc}"[:1000])
    log.info("meridian flip: pier side %s -> %s, slew %.1f s", before, after, slew_s)
    ctx.memo.flip_report = {"pier_side_before": before, "pier_side_after": after, "wait_s": round(waited, 2),
                            "slew_s": round(slew_s, 2), "started": begun + waited,
                            "last_frame_end": ctx.memo.last_frame_end}
    rig.report.update_state(phase="idle")
    return Flipped().with_pointing({**pointing(ctx), "pier_side": after})


def _flip_failed(ctx, reason: str, before, waited: float, slew_s: float, begun: float):
    rig = ctx.rig
    if ctx.token.is_set():  # rain or a stop took the mount meanwhile (a park)
        log.warning("meridian flip given up (night now %s): %s", ctx.state, reason)
        return None
    log.error("meridian flip failed: %s", reason)
    rig.report.error(f"meridian flip failed: {reason}; parking, the night ends"[:1000])
    rig.report.event("flip_done", status="failed", pier_side_before=before, wait_s=round(waited, 2),
                     slew_s=round(slew_s, 2), total_s=round(time.time() - begun - waited, 2), reason=reason[:500])
    rig.report.update_state(phase="error", error=f"meridian flip failed: {reason}"[:500])
    return FlipFailed(reason=reason[:500])


def report_flip(ctx) -> None:
    """The first frame after a flip is about to start: flip_done with its durations."""
    report, ctx.memo.flip_report = ctx.memo.flip_report, None
    now = time.time()
    last = report.pop("last_frame_end")
    report["total_s"] = round(now - report.pop("started"), 2)
    log.info("meridian flip done: %s%s", report,
             f"; {now - last:.1f} s from the last frame's end to this frame" if last else "")
    report["since_last_frame_s"] = round(now - last, 2) if last else None
    ctx.memo.flips.append(report)
    ctx.rig.report.event("flip_done", status="ok", **report)
