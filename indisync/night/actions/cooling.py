"""Cooling before the mount is unparked, warming at the end: every participant at once, bounded."""

from __future__ import annotations

import logging

from ..events import Cooled, Warmed
from ..planning import COOL_MARGIN_S, cool_timeout
from ..rig import each

log = logging.getLogger(__name__)

WARM_WAIT_S = 30.0


def cool(ctx):
    rig = ctx.rig
    timeout = cool_timeout(rig.cfg)
    log.info("cooling every node (timeout %g s)", timeout)
    outcomes = each(rig.participants(), lambda p: p.cool(timeout), timeout + COOL_MARGIN_S, "cool")
    missing = sorted(name for name, o in outcomes.items() if not o.ok or not o.result.get("reached", True))
    if missing:
        msg = f"cooling: {', '.join(missing)} did not reach the setpoint within {timeout:g} s; going on"
        log.warning(msg)
        rig.report.error(msg)
    return Cooled(missing=tuple(missing))


def warm(ctx):
    outcomes = each(ctx.rig.participants(), lambda p: p.warm(WARM_WAIT_S), WARM_WAIT_S, "warm")
    failed = sorted(name for name, o in outcomes.items() if not o.ok)
    if failed:
        log.warning("warm: no answer or failed on %s", ", ".join(failed))
    return Warmed()
