"""Panel flats on one node, through its light box (indi.light_panel) and, where it has one, its dust
cap (indi.dust_cap: closed first; a flip-flat's panel sits in its cap).

Per set (filter, binning): the brightness and exposure trained for it before (this node's calibration
library) are re-used ("reused"); else a short search finds them (calib.panel.train_panel: each step
sets the brightness, read back, and takes a flat) and they are stored ("search"). Then ``count``
frames at that brightness and exposure; a frame that drifts out of the band is discarded and the
exposure rescaled onto the target; a re-used training whose first frame misses the band is trained
again, once. After the light is lit and after each brightness change the panel is given
flats.panel_settle_s before the next frame. The light is turned off at the end, always.
"""

from __future__ import annotations

import logging
import time

from ..calib.panel import PanelTraining, train_panel
from ..contracts import FlatsArgs, FlatsResult
from .calib_run import CalibRun, SetTally
from .flats_common import FlatParams, flat_sets_of, keep_or_discard, run_flat_sets, test_frame

log = logging.getLogger(__name__)


def no_panel_reason(cfg) -> str | None:
    """Why this node cannot take panel flats (None: it can, as far as its config says)."""
    if cfg.indi.light_panel is None:
        return f"no light panel on node {cfg.node.name}: indi.light_panel is null (set it to the panel's INDI device)"
    return None


def panel_flats(run: CalibRun, args: FlatsArgs) -> FlatsResult:
    why = no_panel_reason(run.cfg)
    panel = run.devices.light_panel
    if why is None and panel is None:
        why = (f"no light panel on node {run.node.name}: {run.cfg.indi.light_panel!r} (indi.light_panel) is not on "
               f"indiserver {run.cfg.indi.host}:{run.cfg.indi.port}")
    if why is not None:
        log.info("panel flats: %s", why)
        return FlatsResult(status="no_panel", reason=why, started=run.started_iso)
    params = FlatParams.resolve(args, run.cfg.flats, run.camera.full_scale)
    sets = flat_sets_of(args)
    if not sets:
        return FlatsResult(status="nothing", reason="no flat sets asked for", full_scale=params.full_scale,
                           started=run.started_iso)
    cap = run.devices.dust_cap
    if cap is not None:
        cap.close()
    try:
        panel.turn_on(cancel=run.cancel)
        run.pause(run.cfg.flats.panel_settle_s)

        def take_set(run: CalibRun, fset, params: FlatParams, tally: SetTally, number: int, of: int):
            return panel_set(run, panel, fset, params, tally, number, of)

        return run_flat_sets(run, sets, params, take_set)
    finally:
        try:
            panel.turn_off()
        except Exception as exc:  # noqa: BLE001 - said loudly; the frames are on disk
            log.error("could not turn the light panel %s off: %s", panel.name, exc)
            run.report("error", message=f"could not turn the light panel {panel.name} off: {exc}"[:1000])


def _train(run: CalibRun, panel, fset, params: FlatParams, tally: SetTally, number: int, of: int) -> PanelTraining:
    settings = run.cfg.flats

    def measure(brightness: float, exposure: float) -> float:
        _brighten(run, panel, brightness)
        frame = run.expose("flat", exposure, fset.binning)
        test_frame(run, fset, params, frame, tally, number, of)
        return frame.mean

    if panel.dimmable:
        training = train_panel(measure, panel.brightness_range, settings.panel_exposure, params.target, params.low,
                               params.high, params.min_exposure, params.max_exposure)
    else:  # a fixed light: only the exposure can be trained
        adu = _fixed(run, fset, params, tally, number, of)
        exposure = min(max(settings.panel_exposure * params.target / max(adu, 1.0), params.min_exposure),
                       params.max_exposure)
        training = PanelTraining(0.0, exposure, adu, 1)
    run.library.save_panel_training(run.node.name, fset.filter, fset.binning, training, time.time())
    log.info("panel flats %s: trained brightness %g, %.3g s (%.0f ADU, %d frames)", fset.label(),
             training.brightness, training.exposure, training.adu, training.steps)
    return training


def _brighten(run: CalibRun, panel, brightness: float) -> float | None:
    """The panel at ``brightness`` (read back; None: not dimmable), settled for flats.panel_settle_s
    when it changed."""
    if not panel.dimmable:
        return None
    before = panel.brightness
    got = panel.set_brightness(brightness, cancel=run.cancel)
    if before is None or abs(got - before) > 1e-9:
        run.pause(run.cfg.flats.panel_settle_s)
    return got


def _fixed(run: CalibRun, fset, params: FlatParams, tally: SetTally, number: int, of: int) -> float:
    frame = run.expose("flat", run.cfg.flats.panel_exposure, fset.binning)
    test_frame(run, fset, params, frame, tally, number, of)
    return frame.mean


def panel_set(run: CalibRun, panel, fset, params: FlatParams, tally: SetTally, number: int,
              of: int) -> tuple[str, str | None]:
    training = run.library.panel_training(run.node.name, fset.filter, fset.binning)
    how = "reused" if training is not None else "search"
    if training is None:
        training = _train(run, panel, fset, params, tally, number, of)
    brightness = _brighten(run, panel, training.brightness)
    tally.extra.update(brightness=brightness, trained=how)
    exposure, misses = training.exposure, 0
    while tally.kept < params.count:
        run.check()
        frame = run.expose("flat", exposure, fset.binning)
        if keep_or_discard(run, fset, params, frame, tally, number, of):
            misses = 0
            continue
        misses += 1
        if how == "reused" and tally.kept == 0 and misses == 1:
            log.info("panel flats %s: the stored training missed the band (%.0f ADU): training again",
                     fset.label(), frame.mean)
            training = _train(run, panel, fset, params, tally, number, of)
            how = "search"
            brightness = _brighten(run, panel, training.brightness)
            tally.extra.update(brightness=brightness, trained=how)
            exposure = training.exposure
            continue
        if misses >= params.count:
            return ("partial" if tally.kept else "failed"), (
                f"{misses} frames running outside the band {params.band_text()} (last {frame.mean:.0f} ADU at "
                f"{frame.exposure:.3g} s): is the panel steady and covering the OTA?")
        exposure = min(max(exposure * params.target / max(frame.mean, 1.0), params.min_exposure),
                       params.max_exposure)
    return "ok", None
