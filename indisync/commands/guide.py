"""`indisync guide`: calibrate the guider, guide for a while (dithering on an interval), report the RMS."""

from __future__ import annotations

import json
import logging
import math
import time

from ..errors import GuideError, IndisyncError
from ..guiding.settings import DitherSettings, GuiderSettings

HELP = "calibrate and guide with the guide camera and the mount; report RMS and dither settling"
log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, metavar="S",
                        help="how long to guide after calibrating (default 60)")
    parser.add_argument("--dither-every", type=float, default=None, metavar="S",
                        help="dither every S seconds (master.dither: pixels, ra_only, settle); default: never")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (the last line)")


def settings_from(cfg) -> tuple[GuiderSettings, DitherSettings]:
    """The config's guider: section (its defaults when absent) and master.dither."""
    return cfg.guider or GuiderSettings(), cfg.master.dither


def _printer():
    from ..guiding.guider import GuideEvent

    def on_event(e: GuideEvent) -> None:
        d = e.data
        if e.kind == "star_selected":
            log.info("guide star at (%.1f, %.1f), SNR %.0f, %d star(s)", d["x"], d["y"], d["snr"], d["stars"])
        elif e.kind == "calibrated":
            log.info("calibrated: RA %.1f deg %.2f px/s, Dec %.1f deg %.2f px/s, %.1f deg off square",
                     d["ra"]["angle_deg"], d["ra"]["rate"] * 1000, d["dec"]["angle_deg"], d["dec"]["rate"] * 1000,
                     d["orthogonality_error_deg"])
        elif e.kind == "frame":
            log.debug("error %.2f px (RA %.2f, Dec %.2f) pulses %s", d["distance"], d["ra_px"], d["dec_px"], d["pulses"])
        elif e.kind in ("star_lost", "star_found", "reacquired", "error"):
            log.warning("%s %s", e.kind.replace("_", " "), d)
        elif e.kind in ("dither", "settled", "settle_failed"):
            log.info("%s %s", e.kind.replace("_", " "), {k: round(v, 2) if isinstance(v, float) else v for k, v in d.items()})
    return on_event


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..devices.session import open_devices
    from ..guiding.guider import Guider, GuiderState

    if args.seconds <= 0:
        raise IndisyncError(f"--seconds must be positive, got {args.seconds}")
    if args.dither_every is not None and args.dither_every <= 0:
        raise IndisyncError(f"--dither-every must be positive seconds, got {args.dither_every}")
    settings, dither = settings_from(cfg)
    with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
        guider = Guider(dev.guide_camera, dev.mount, settings)
        guider.add_listener(_printer())
        calibration = guider.calibrate()
        dithers = []
        guider.start()
        try:
            t0 = time.monotonic()
            next_dither = t0 + args.dither_every if args.dither_every else math.inf
            while time.monotonic() - t0 < args.seconds and guider.running:
                if time.monotonic() >= next_dither:
                    result = guider.dither(dither.pixels, dither.ra_only, dither.settle)
                    dithers.append(result)
                    next_dither = time.monotonic() + args.dither_every
                else:
                    time.sleep(0.1)
        finally:
            final_state = guider.state
            guider.stop()
    if guider.state is GuiderState.ERROR:
        raise GuideError(f"guiding stopped on an error: {guider.last_error}")
    stats = guider.stats.summary()
    result = {
        "rms_px": stats["rms_px"], "rms_arcsec": stats["rms_arcsec"],
        "rms_ra_px": stats["rms_ra_px"], "rms_dec_px": stats["rms_dec_px"], "peak_px": stats["peak_px"],
        "frames": stats["frames"], "pixel_scale": stats["pixel_scale"],
        "dithers": [d.as_dict() for d in dithers],
        "calibration": calibration.as_dict(),
        "star_lost": guider.star_lost_count,
    }
    if args.json:
        print(json.dumps(result))
    else:
        arcsec = f" = {result['rms_arcsec']:.2f}\"" if result["rms_arcsec"] is not None else ""
        print(f"guided {result['frames']} frames: RMS {result['rms_px']:.2f} px{arcsec} "
              f"(RA {result['rms_ra_px']:.2f}, Dec {result['rms_dec_px']:.2f} px), peak {result['peak_px']:.2f} px")
        for i, d in enumerate(dithers, 1):
            print(f"dither {i}: {'settled' if d.settled else 'NOT settled (' + str(d.reason) + ')'} "
                  f"after {d.seconds:.1f}s")
        if guider.star_lost_count:
            print(f"the guide star was lost {guider.star_lost_count} time(s)")
    # 1: guiding ran, but the star is lost at the end (clouds?); scripts should not trust the RMS.
    return 1 if final_state is GuiderState.LOST else 0
