"""The night's meridian flip on the devices (NightRunner._do_flip calls ``run_flip``), and where the
mount points for the machine's flip decision (``pointing``).

The flip runs between frames only (the machine sends no expose meanwhile): hold until the hour angle
reaches flip.after_meridian_min, stop guiding, slew to the target again, check that
TELESCOPE_PIER_SIDE changed, mirror the guider's calibration (or forget it: flip.recalibrate).
Centring and the guider's restart follow as night states. ``flip_done`` is sent with the first
frame after the flip (``report_flip``), so its total includes them.
"""

from __future__ import annotations

import logging
import time

from ..errors import IndisyncError
from ..night.machine import Ev, State
from ..night.meridian import POST_FLIP_SIDE, hour_angle_hours
# night_runner imports this module only inside its methods, so this is no import cycle
from .night_runner import COMMAND_TIMEOUT_S, PIER_SIDE_WAIT_S, _stamp, mount_site

log = logging.getLogger(__name__)


def site_longitude(runner, devices) -> float | None:
    """East longitude for the hour angle: the site: section's, else the mount's GEOGRAPHIC_COORD."""
    if runner.cfg.site is not None:
        return runner.cfg.site.longitude_east
    try:
        found = mount_site(getattr(devices, "mount", None))
    except Exception as exc:  # noqa: BLE001 - reported by the caller as no longitude
        log.warning("could not read the mount's GEOGRAPHIC_COORD: %s", exc)
        return None
    if found is None or found[1] is None:
        return None
    return ((found[1] + 180.0) % 360.0) - 180.0


def pointing(runner) -> dict:
    """{ha_hours, ha_at, pier_side} of where the mount points now, for the machine's flip decision;
    {} without a flip to watch or when the mount does not answer."""
    if runner.plan is None or not runner.plan.flip or runner._longitude is None:
        return {}
    try:
        mount = runner._devices().mount
        ra_hours, _ = mount.coordinates  # JNow, as the mount's own sidereal time sees it
        at = time.time()
        return {"ha_hours": hour_angle_hours(ra_hours * 15.0, runner._longitude, at), "ha_at": at,
                "pier_side": mount.pier_side}
    except Exception as exc:  # noqa: BLE001 - the next frame_done tries again
        log.warning("flip: could not read where the mount points: %s", exc)
        return {}


def run_flip(runner, at: float | None = None):
    """The meridian flip, between frames (nobody exposes: the machine sends no expose meanwhile):
    hold until ``at`` (the hour angle reaches flip.after_meridian_min), stop guiding, slew to the
    target again, check that TELESCOPE_PIER_SIDE changed, mirror the guider's calibration (or
    forget it: flip.recalibrate). Centering and the guider's restart follow as night states."""
    m = runner.master
    settings = runner.plan.flip_settings
    begun = time.time()
    m.link.update_state(phase="flipping", exposure=None)
    if at is not None and at > begun:
        log.info("holding every node for the meridian flip at %s (%.0f s)", _stamp(at), at - begun)
    while at is not None and time.time() < at:  # bounded by ``at``; rain or a stop ends it at once
        if m.stop_event.wait(min(1.0, at - time.time())) or runner.snapshot.state != State.FLIPPING.value:
            return None
    if runner.snapshot.state != State.FLIPPING.value:
        return None  # the night moved on meanwhile (rain, stop): no slew now
    waited = time.time() - begun
    runner._do_stop_guider()
    mount = runner._devices().mount
    before = mount.pier_side
    where = pointing(runner)
    ha_min = where["ha_hours"] * 60.0 if where.get("ha_hours") is not None else None
    log.info("meridian flip: hour angle %s min, pier side %s", "?" if ha_min is None else f"{ha_min:+.2f}", before)
    m.link.event("flip_started", pier_side=before, ha_min=ha_min)
    target = runner.cfg.master.target_coords
    timeout = runner.cfg.night.slew_timeout if runner.cfg.night else COMMAND_TIMEOUT_S
    slew_started = time.monotonic()
    try:
        mount.slew_j2000(target.ra, target.dec, timeout)
    except IndisyncError as exc:
        return _flip_failed(runner, f"the flip slew failed: {exc}", before, waited, time.monotonic() - slew_started,
                                 begun)
    slew_s = time.monotonic() - slew_started
    after = before
    deadline = time.monotonic() + PIER_SIDE_WAIT_S
    while time.monotonic() < deadline:  # the slew ended Ok; the pier side may come a moment later
        after = mount.pier_side
        if after != before and after is not None:
            break
        time.sleep(0.1)
    if after == before or after != POST_FLIP_SIDE:
        hint = ("the mount does not report TELESCOPE_PIER_SIDE, so the flip cannot be verified"
                if after is None else
                f"pier side stayed {after} after the flip slew (our hour angle "
                f"{'?' if ha_min is None else f'{ha_min:+.2f}'} min): check that site: and the computer's "
                "clock agree with the mount's GEOGRAPHIC_COORD and time, or raise flip.after_meridian_min")
        return _flip_failed(runner, hint, before, waited, slew_s, begun)
    guiding = m.guiding
    if guiding is not None:
        try:
            guiding.guider.after_meridian_flip(recalibrate=settings.recalibrate)
        except Exception as exc:  # noqa: BLE001 - the guider restarts (calibrating) or reports
            log.error("guider calibration not mirrored: %s", exc)
            m.link.error(f"flip: guider calibration not mirrored: {exc}"[:1000])
    log.info("meridian flip: pier side %s -> %s, slew %.1f s", before, after, slew_s)
    runner._flip_report = {"pier_side_before": before, "pier_side_after": after, "wait_s": round(waited, 2),
                         "slew_s": round(slew_s, 2), "started": begun + waited,
                         "last_frame_end": runner._last_frame_end}
    m.link.update_state(phase="idle")
    return Ev.FLIPPED, {**pointing(runner), "pier_side": after}


def _flip_failed(runner, reason: str, before, waited: float, slew_s: float, begun: float):
    m = runner.master
    if runner.snapshot.state != State.FLIPPING.value:  # rain or a stop took the mount meanwhile (a park)
        log.warning("meridian flip given up (night now %s): %s", runner.snapshot.state, reason)
        return None
    log.error("meridian flip failed: %s", reason)
    m.link.error(f"meridian flip failed: {reason}; parking, the night ends"[:1000])
    m.link.event("flip_done", status="failed", pier_side_before=before, wait_s=round(waited, 2),
                 slew_s=round(slew_s, 2), total_s=round(time.time() - begun - waited, 2), reason=reason[:500])
    m.link.update_state(phase="error", error=f"meridian flip failed: {reason}"[:500])
    return Ev.FLIP_FAILED, {"reason": reason[:500]}


def report_flip(runner) -> None:
    """The first frame after a flip is about to start: flip_done with its durations."""
    report, runner._flip_report = runner._flip_report, None
    now = time.time()
    last = report.pop("last_frame_end")
    report["total_s"] = round(now - report.pop("started"), 2)
    log.info("meridian flip done: %s%s", report,
             f"; {now - last:.1f} s from the last frame's end to this frame" if last else "")
    report["since_last_frame_s"] = round(now - last, 2) if last else None
    runner.flips.append(report)
    runner.master.link.event("flip_done", status="ok", **report)
