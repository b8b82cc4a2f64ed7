"""`indisync guide`: calibrate the guider, guide for a while (dithering on an interval), report the RMS.

The figures are PHD2's: RA and Dec apart, total and peak, over guiding frames only (frames while the
start or a dither settles are left out), and the settle time of the start and of every dither.
RMS is about the lock position (see indisync.guiding.stats); the mean offsets are given beside it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING

from ..errors import GuideError, IndisyncError
from ..guiding.settings import DitherSettings, GuiderSettings

if TYPE_CHECKING:  # numpy and the guider load in run(), so `indisync --help` stays light
    from ..guiding.guider import GuideEvent, Guider

HELP = "calibrate and guide with the guide camera and the mount; report RMS and dither settling"
log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, metavar="S",
                        help="how long to guide once the start has settled (default 60)")
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


class _FrameCounter:
    """Counts every guide frame, settling or not (the stats count guiding frames only)."""

    def __init__(self):
        self.count = 0

    def __call__(self, event: GuideEvent) -> None:
        if event.kind == "frame":
            self.count += 1


def guide_session(guider: Guider, seconds: float, dither_every: float | None, dither: DitherSettings) -> dict:
    """Start guiding, let the start settle, then guide ``seconds`` (dithering every ``dither_every`` s), stop.

    The result in PHD2's terms (see the module doc). The guider must be calibrated. Shared with
    benchmarks/guiding.py so the benchmark measures exactly what the command reports.
    """
    frames_total = _FrameCounter()
    guider.add_listener(frames_total)
    guider.reset_stats()
    dithers = []
    guider.start()
    try:
        # As PHD2 (and the master) do: the first frames after a start settle, and are not guiding;
        # ``seconds`` of guiding count from there.
        start_settle = guider.wait_settled(dither.settle)
        t0 = time.monotonic()
        next_dither = t0 + dither_every if dither_every else math.inf
        while time.monotonic() - t0 < seconds and guider.running:
            if time.monotonic() >= next_dither:
                dithers.append(guider.dither(dither.pixels, dither.ra_only, dither.settle))
                next_dither = time.monotonic() + dither_every
            else:
                time.sleep(0.1)
        wall = time.monotonic() - t0
    finally:
        final_state = guider.state
        guider.stop()
        guider.remove_listener(frames_total)
    from ..guiding.guider import GuiderState

    if guider.state is GuiderState.ERROR:
        raise GuideError(f"guiding stopped on an error: {guider.last_error}")
    stats = guider.stats.summary()
    return {
        "rms_px": stats["rms_px"], "rms_arcsec": stats["rms_arcsec"],
        "rms_ra_px": stats["rms_ra_px"], "rms_dec_px": stats["rms_dec_px"], "peak_px": stats["peak_px"],
        "peak_ra_px": stats["peak_ra_px"], "peak_dec_px": stats["peak_dec_px"],
        "mean_ra_px": stats["mean_ra_px"], "mean_dec_px": stats["mean_dec_px"],
        "rms_ra_arcsec": stats["rms_ra_arcsec"], "rms_dec_arcsec": stats["rms_dec_arcsec"],
        "peak_arcsec": stats["peak_arcsec"],
        "frames": stats["frames"], "frames_total": frames_total.count, "seconds": round(wall, 1),
        "pixel_scale": stats["pixel_scale"], "pulse_via": guider.settings.pulse_via,
        "start_settle": start_settle.as_dict(),
        "dithers": [d.as_dict() for d in dithers],
        "settle_s": [round(d.seconds, 2) if d.settled else None for d in dithers],
        "star_lost": guider.star_lost_count,
        "final_state": final_state.value,
    }


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..devices.guide_port import open_guide_port
    from ..devices.session import open_devices
    from ..guiding.guider import Guider, GuiderState

    if args.seconds <= 0:
        raise IndisyncError(f"--seconds must be positive, got {args.seconds}")
    if args.dither_every is not None and args.dither_every <= 0:
        raise IndisyncError(f"--dither-every must be positive seconds, got {args.dither_every}")
    settings, dither = settings_from(cfg)
    with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
        pulser = (open_guide_port(dev.client, cfg.indi.guide_camera, cfg.indi.property_timeout)
                  if settings.pulse_via == "camera" else None)
        guider = Guider(dev.guide_camera, dev.mount, settings, pulser=pulser)
        guider.add_listener(_printer())
        calibration = guider.calibrate()
        result = guide_session(guider, args.seconds, args.dither_every, dither)
    result["calibration"] = calibration.as_dict()
    final_state = GuiderState(result["final_state"])
    if args.json:
        print(json.dumps(result))
    else:
        arcsec = f" = {result['rms_arcsec']:.2f}\"" if result["rms_arcsec"] is not None else ""
        print(f"guided {result['frames']} frames (of {result['frames_total']}; settling left out): RMS "
              f"{result['rms_px']:.2f} px{arcsec} (RA {result['rms_ra_px']:.2f}, Dec {result['rms_dec_px']:.2f} px), "
              f"peak {result['peak_px']:.2f} px (RA {result['peak_ra_px']:.2f}, Dec {result['peak_dec_px']:.2f})")
        s0 = result["start_settle"]
        print(f"start: {'settled' if s0['settled'] else 'NOT settled (' + str(s0['reason']) + ')'} "
              f"after {s0['seconds']:.1f}s")
        for i, d in enumerate(result["dithers"], 1):
            print(f"dither {i}: {'settled' if d['settled'] else 'NOT settled (' + str(d['reason']) + ')'} "
                  f"after {d['seconds']:.1f}s")
        if guider.star_lost_count:
            print(f"the guide star was lost {guider.star_lost_count} time(s)")
    # 1: guiding ran, but the star is lost at the end (clouds?); scripts should not trust the RMS.
    return 1 if final_state is GuiderState.LOST else 0
