"""A node's `flats` and `darks` commands (master and slave alike).

``run_flats`` / ``run_darks`` hold the node's device lock for the whole run (one device action at a
time), are bounded by the command's ``timeout`` (else this node's flats.timeout / darks.timeout) and
end on the node's ``abort`` (the abort gate) or its stop with status "stopped": frames kept so far
stay on disk. The work is in node/flats_sky.py, node/flats_panel.py and node/darks.py, over a
``CalibRun`` (node/calib_run.py).

A set's failure (a missing filter, an unreachable ADU band, a device error) is data: that set says
"failed" with the reason and the run goes on with the next; the reply fails only when the run
cannot start (no camera, the device lock busy, an abort sent after the command).
"""

from __future__ import annotations

import logging

from ..contracts import DarksArgs, DarksResult, FlatsArgs, FlatsResult
from .calib_run import CalibRun, LibraryHolder
from .darks import take_darks
from .flats_panel import panel_flats
from .flats_sky import sky_flats
from .locking import bounded

__all__ = ["LibraryHolder", "run_darks", "run_flats"]

log = logging.getLogger(__name__)

LOCK_WAIT_S = 60.0  # the camera busy longer than this when a calibration run starts: it fails, saying so


def run_flats(node, command, progress) -> FlatsResult:
    args = FlatsArgs.from_wire(command.args)
    timeout = args.timeout if args.timeout is not None else node.cfg.flats.timeout
    with bounded(node.device_lock, LOCK_WAIT_S, "take flats"):
        node.abort_gate.begin(command.sender, command.ts, "flats")
        work = panel_flats if args.mode == "panel" else sky_flats
        run = CalibRun(node, progress, "flat", timeout, mode=args.mode, direction=args.direction)
        try:
            result = work(run, args)
        finally:
            run.state(None, phase="idle")
    log.info("flats (%s) on %s: %s%s", args.mode, node.name, result.status,
             f": {result.reason}" if result.reason else "")
    return result


def run_darks(node, command, progress) -> DarksResult:
    args = DarksArgs.from_wire(command.args)
    timeout = args.timeout if args.timeout is not None else node.cfg.darks.timeout
    with bounded(node.device_lock, LOCK_WAIT_S, "take darks"):
        node.abort_gate.begin(command.sender, command.ts, "darks")
        run = CalibRun(node, progress, "dark", timeout)
        try:
            result = take_darks(run, args)
        finally:
            run.state(None, phase="idle")
    log.info("darks on %s: %s%s", node.name, result.status, f": {result.reason}" if result.reason else "")
    return result
