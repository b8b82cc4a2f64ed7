"""Sky flats on one node: its own exposures in the twilight, while the master points the mount at
the flat spot (indisync.night.actions.flats).

The sets go in the order the sky allows (indisync.calib.order: dusk the ones needing the most light
first, dawn the reverse). Per set: the wheel to its filter, the rotator to its angle, gain/offset as
the set says (restored after); a test frame (calib.ramp.test_exposure: from what the previous set's
sky said, else the shortest exposure), then frame after frame as calib.ramp.decide says: expose (the
exposure that lands on the target in the sky's exponential change), wait (dusk still too bright at
flats.min_exposure, dawn still too dark at flats.max_exposure), or give up on that set with the
reason (the dusk too dark at flats.max_exposure, ...), going on with the next. One ramp serves the
whole run: every frame teaches it the sky's rate of change. A dust cap (indi.dust_cap) is opened.
"""

from __future__ import annotations

import logging
import time

from ..calib.order import order_sets
from ..calib.ramp import SkyRamp, decide, test_exposure
from ..contracts import FlatsArgs, FlatsResult
from ..errors import IndisyncError
from .calib_run import CalibRun, SetTally
from .flats_common import FlatParams, flat_sets_of, keep_or_discard, run_flat_sets, test_frame

log = logging.getLogger(__name__)


def sky_flats(run: CalibRun, args: FlatsArgs) -> FlatsResult:
    if args.direction is None:
        raise IndisyncError("sky flats need a direction: dusk (the sky darkens) or dawn (it brightens)")
    params = FlatParams.resolve(args, run.cfg.flats, run.camera.full_scale)
    sets = flat_sets_of(args)
    if not sets:
        return FlatsResult(status="nothing", reason="no flat sets asked for", full_scale=params.full_scale,
                           started=run.started_iso)
    cap = run.devices.dust_cap
    if cap is not None:
        cap.open(cancel=run.cancel)
    ramp = SkyRamp(args.direction, params.halving_s, bias_adu=0.0, saturation_adu=params.full_scale)
    ordered = order_sets(sets, args.direction, run.cfg.flats.filter_order)
    log.info("sky flats (%s): %s; band %s, %d each, %g..%g s", args.direction,
             ", ".join(s.label() for s in ordered), params.band_text(), params.count, params.min_exposure,
             params.max_exposure)

    def take_set(run: CalibRun, fset, params: FlatParams, tally: SetTally, number: int, of: int):
        return sky_set(run, ramp, fset, params, tally, number, of)

    return run_flat_sets(run, ordered, params, take_set)


def sky_set(run: CalibRun, ramp: SkyRamp, fset, params: FlatParams, tally: SetTally, number: int,
            of: int) -> tuple[str, str | None]:
    """One set's frames; (status, reason). Raises RunStopped / RunTimedOut / device errors."""
    key = fset
    first = test_exposure(ramp, key, params.min_exposure, params.max_exposure, None, now=time.time(),
                          target_adu=params.target)
    frame = run.expose("flat", first, fset.binning)
    ramp.observe(key, frame.start, frame.exposure, frame.mean)
    test_frame(run, fset, params, frame, tally, number, of)
    overhead = 0.0
    while tally.kept < params.count:
        run.check()
        decided = time.time()
        decision = decide(ramp, key, decided, params.target, params.low, params.high, params.min_exposure,
                          params.max_exposure, overhead_s=overhead, deadline=run.deadline_epoch)
        if decision.kind == "give_up":
            return ("partial" if tally.kept else "failed"), decision.reason
        if decision.kind == "wait":
            log.info("flats %s: waiting %.0f s: %s", fset.label(), max(0.0, decision.until - decided),
                     decision.reason)
            run.state({"kind": "flat", "mode": "sky", "filter": fset.filter, "kept": tally.kept,
                       "count": params.count, "set": number, "sets": of}, phase="waiting")
            run.sleep_until(decision.until)
            continue
        frame = run.expose("flat", decision.exposure, fset.binning)
        overhead = max(0.0, frame.start - decided)
        ramp.observe(key, frame.start, frame.exposure, frame.mean)
        keep_or_discard(run, fset, params, frame, tally, number, of)
    return "ok", None
