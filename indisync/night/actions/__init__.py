"""The night's actions, one small module each; every one is ``fn(ctx, **args) -> Payload | None``
(a typed answer of indisync.night.events; None: no answer, e.g. cancelled)
run by indisync.night.executor under the token of the state that asked for it."""

from __future__ import annotations

from . import calibrate, center, cooling, exposing, flats, flip, guide, motion

ACTIONS = {
    "cool": cooling.cool,
    "warm": cooling.warm,
    "slew": motion.slew,
    "park": motion.park,
    "center": center.center,
    "start_guider": guide.start_guider,
    "stop_guider": guide.stop_guider,
    "dither": guide.dither,
    "refocus": guide.refocus,
    "expose": exposing.expose,
    "abort_exposures": exposing.abort_exposures,
    "flip": flip.flip,
    "sky_flats": flats.sky_flats,
    "calibrate": calibrate.calibrate,
    "darks": calibrate.darks,
    "finish": None,  # the executor's own: the loop ends
}
