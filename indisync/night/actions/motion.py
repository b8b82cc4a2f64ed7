"""Mount and dome motion: ``slew`` (open, unpark, point, track) and ``park`` (close and park).

The slew runs through the arbiter as a motion of its state: a park pre-empts it at any step, and the
device helpers abort their own goto when cancelled. The park is never cancelled (I1, I4): the dome
closes and the mount parks at once, each whatever the other does, unless ``dome.requires_mount_parked``
(a roll-off roof that would hit the telescope) orders them: then the roof closes only on a parked
mount. A failed part is named in PARK_FAILED; the machine asks again after safety.park_retry.
"""

from __future__ import annotations

import logging
import threading
import time

from ...alerts import causes as alarms
from ..events import Parked, ParkFailed, Slewed, SlewFailed
from ..planning import COMMAND_TIMEOUT_S, slew_timeout
from ..rig import aim_of
from . import guide

log = logging.getLogger(__name__)


def slew(ctx):
    """Open, unpark, point at the aim (master.target, or the season's target: chosen here unless a
    switch chose it just now), track. Guiding is stopped first (a switch slews from imaging)."""
    rig, token = ctx.rig, ctx.token
    target = _where(ctx)
    season = getattr(rig, "season", None)
    if target is None:
        reason = "no target to point at" + (f": {season.state().get('reason')}" if season is not None else "")
        return SlewFailed(reason=reason[:500])
    if season is not None:
        guide.stop(ctx)  # a switch slews from imaging: never move the mount under a guider
    timeout = slew_timeout(rig.cfg)
    devices = rig.devices()

    def motion():
        dome = getattr(devices, "dome", None)
        if dome is not None:
            dome.unpark(COMMAND_TIMEOUT_S, cancel=token)
            token.check("open the dome")
            dome.open_shutter(COMMAND_TIMEOUT_S, cancel=token)
        mount = devices.mount
        if mount is None:
            return
        token.check("unpark the mount")
        mount.unpark(COMMAND_TIMEOUT_S, cancel=token)
        started = time.monotonic()
        token.check("slew")
        mount.slew_j2000(target.ra, target.dec, timeout, cancel=token)
        token.check("track")
        mount.set_tracking(True)
        log.info("slewed to %s (%.4f, %.4f J2000) in %.1f s", target.name, target.ra, target.dec,
                 time.monotonic() - started)

    rig.arbiter.move(token, "slew", motion)
    ctx.memo.aimed = target.name
    return Slewed()


def _where(ctx):
    """The aim to slew to. In the season the scheduler decides first (the start, a resume after rain
    or a restart: the current target is kept for min_minutes), unless the night is slewing to the
    target a switch has just chosen (not yet pointed at)."""
    rig = ctx.rig
    season = getattr(rig, "season", None)
    if season is not None:
        current = season.aim()
        if current is None or ctx.memo.aimed in (None, current.name):  # not a switch's fresh choice
            snap = getattr(ctx.night, "snapshot", None)
            season.choose(time.time(), (snap.reason if snap is not None else None) or "slew")
        if season.aim() is None:  # a gap (after rain, a restart): point at the next target and wait there
            return season.upcoming_aim(time.time())
    return aim_of(rig)


def park(ctx):
    problems = secure(ctx.rig, "park")
    if problems:
        return ParkFailed(reason="; ".join(problems)[:500])
    return Parked()


def secure(rig, why: str) -> list[str]:
    """Close the dome and park the mount through the arbiter (pre-empting any motion); what failed."""
    started = time.monotonic()
    try:
        devices = rig.devices()  # raises when there are none (indiserver gone): a failed park, tried again
    except Exception as exc:
        _alarm(rig, why, [f"no devices: {exc}"], [])
        raise
    mount, dome = devices.mount, getattr(devices, "dome", None)
    ordered = bool(getattr(getattr(rig.cfg, "dome", None), "requires_mount_parked", False))

    def run() -> list[str]:
        problems: list[str] = []
        if ordered or dome is None or mount is None:
            mount_problem = _park_mount(mount)
            problems += [mount_problem] if mount_problem else []
            if dome is not None:
                if ordered and mount_problem:
                    problems.append("dome left open: dome.requires_mount_parked and the mount did not park")
                else:
                    problems += _close_dome(dome)
            return problems
        # Both at once: a mount that fails never keeps the dome open, nor the reverse.
        dome_problems: list[str] = ["dome: no answer"]

        def close() -> None:
            dome_problems[:] = _close_dome(dome)

        closer = threading.Thread(target=close, name="night-close-dome", daemon=True)
        closer.start()
        mount_problem = _park_mount(mount)
        closer.join(2 * COMMAND_TIMEOUT_S + 5.0)
        if closer.is_alive():
            dome_problems = [f"dome: no answer to the close within {2 * COMMAND_TIMEOUT_S + 5.0:g} s"]
        return ([mount_problem] if mount_problem else []) + dome_problems

    problems = rig.arbiter.secure(why, run)
    if problems:
        log.error("%s: %s", why, "; ".join(problems))
        dome_problems = [p for p in problems if p.startswith("dome")]
        _alarm(rig, why, [p for p in problems if p not in dome_problems], dome_problems)
    else:
        log.info("parked%s in %.1f s", " and closed" if dome is not None else "", time.monotonic() - started)
    return problems


def _alarm(rig, why: str, mount_problems: list[str], dome_problems: list[str]) -> None:
    """Park or close failed: an alarm each (the alerter sends it from its worker; never blocks)."""
    try:
        if mount_problems:
            rig.alarm(alarms.park_failed(mount_problems, why))
        if dome_problems:
            rig.alarm(alarms.close_failed(dome_problems, why))
    except Exception:  # noqa: BLE001 - an alarm must never stand in the park's way
        log.exception("could not raise the park alarm")


def _park_mount(mount) -> str | None:
    if mount is None:
        return None
    try:
        mount.park(COMMAND_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - named in the answer, tried again
        return f"mount: {exc}"
    return None


def _close_dome(dome) -> list[str]:
    try:
        dome.close_shutter(COMMAND_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - named in the answer, tried again
        return [f"dome: {exc}"]
    try:
        dome.park(COMMAND_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - closed but not parked: said, not a reason to stay open
        log.warning("dome closed but not parked: %s", exc)
    return []


def last_park(rig, why: str) -> None:
    """I5: the executor is dying: one last park and close, whatever happens; never raises."""
    try:
        problems = secure(rig, f"last park ({why})"[:200])
        if problems:
            log.error("the last park failed: %s", "; ".join(problems))
    except Exception:  # noqa: BLE001 - nothing more can be done here; systemd restarts us, securing first
        log.exception("the last park failed")
