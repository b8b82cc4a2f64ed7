"""Calibration by the night: ``calibrate`` (the calibrating state, after a normal end: panel flats
with flats.panel, darks with "end" in darks.when) and ``darks`` (parked for the weather, with "rain"
in darks.when). Both run every node at once through indisync.calib.runs (the sets from the night
record), under the state's token: leaving the state aborts every node (what was kept stays) and
answers nothing. Darks count the OTAs as covered when the dome reads closed; a node without a dome
closed, a dust cap or a shutter answers "waiting" for that set (taken at the next chance).
"""

from __future__ import annotations

import logging

from ...calib import runs
from ..events import Calibrated, DarksDone

log = logging.getLogger(__name__)


def dome_closed(rig, token=None) -> bool:
    """The dome's shutter reads closed and still (covered: darks may be taken); a shutter still moving
    after the park is waited for (indi.move_timeout); no dome or unreadable: False."""
    try:
        dome = getattr(rig.devices(), "dome", None)
        if dome is None:
            return False
        still = getattr(dome, "closed_when_still", None)  # a stand-in dome may only say shutter_open
        return still(rig.cfg.indi.move_timeout, cancel=token) if still else dome.shutter_open is False
    except Exception as exc:  # noqa: BLE001 - no devices: not known to be covered
        log.warning("darks: the dome cannot be read (%s): not counted as covered", exc)
        return False


def calibrate(ctx):
    rig, token, cfg = ctx.rig, ctx.token, ctx.rig.cfg
    said = []
    if cfg.flats.panel:
        outcomes = runs.panel_flats_all(rig.participants(), cfg, ctx.night.clock(), cancel=token)
        token.check("panel flats")
        said.append(_said("panel", outcomes))
    if cfg.darks.enabled and "end" in cfg.darks.when:
        token.check("darks")
        outcomes = runs.darks_all(rig.participants(), cfg, dome_closed(rig, token), (), cancel=token, now=ctx.night.clock())
        token.check("darks")
        said.append(_said("darks", outcomes))
    return Calibrated(reason="; ".join(said)[:500] if said else "nothing to calibrate")


def darks(ctx):
    rig, token = ctx.rig, ctx.token
    outcomes = runs.darks_all(rig.participants(), rig.cfg, dome_closed(rig, token), (), cancel=token, now=ctx.night.clock())
    token.check("darks")
    return DarksDone(reason=_said("darks", outcomes)[:500])


def _said(what: str, outcomes) -> str:
    status, reason = runs.summary(what, outcomes)
    (log.info if status in ("ok", "nothing") else log.warning)("night calibration, %s: %s: %s", what, status, reason)
    return f"{status}: {reason}" if not reason.startswith(status) else reason
