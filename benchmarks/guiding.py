"""Guiding on the INDI simulators, reported as PHD2 does; prints one JSON document.

The scenario of issue 9: the Guide Simulator as guide camera, the Telescope Simulator slewed to
--dec (30) and tracking. The Guide Simulator has a periodic error of its own (11" of RA over 480 s,
up to 0.23 px/s on the sky at Dec 30): that is the drift to guide out. Then:

1. unguided: the guide loop runs --unguided-seconds with its pulses dropped (same frames, centroids
   and statistics; only the corrections are missing);
2. for each pulse path in --via (mount: the mount's TIMED_GUIDE; camera: the Guide Simulator's ST4
   port): calibrate, start, let the start settle, guide --seconds dithering every --dither-every s,
   exactly as `indisync guide --json` does (commands.guide.guide_session).

Figures per path: RMS RA, Dec and total (about the lock, settling after the start and after each
dither left out), peak per axis and total, mean offsets, and the settle time of the start and of
each dither.

    .venv/bin/python benchmarks/guiding.py [--via mount camera] [--seconds 90] [--dither-every 30]

Why the mount path cannot reach a few tenths of a pixel on these simulators (measured): INDI 1.9.9's
Telescope::NewRaDec sends EQUATORIAL_EOD_COORD only when RA moved more than 2.78e-5 h (0.1 s of
time, the constant read from libindidriver.so.1.9.9) or Dec more than 2.78e-5 deg (0.1"), and the
Guide Simulator draws its stars from that property. In RA that is 1.5" x cos(Dec) = 2.4 px at Dec 30
on its 0.55"/px: the star can only move in jumps of 2.4 px or more, however fine the pulses, so any
guider's RA error is a sawtooth of at least that height (RMS >= 2.4/sqrt(12) = 0.68 px). Dec's step
is 0.18 px. The report gives this floor as ``mount_ra_step_px``. The camera path has no such step.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from indisync.commands.guide import guide_session
from indisync.config import load_config
from indisync.devices.guide_port import open_guide_port
from indisync.devices.session import open_devices
from indisync.guiding.guider import Guider
from indisync.guiding.settings import DitherSettings, GuiderSettings, SettleSettings
from indisync.sim.indi import IndiServer, set_number
from indisync.sim.mounts import DroppedPulses, set_tracking_error

DRIVERS = ["indi_simulator_ccd", "indi_simulator_telescope", "indi_simulator_guide"]
# INDI 1.9.9 Telescope::NewRaDec: EQUATORIAL_EOD_COORD goes out only past this change (hours / degrees)
EOD_NOTIFY_THRESHOLD = 1.0 / 36000


def setup_sky(server, dev, camera: str, *, ra: float, dec: float, drift_ra: float, drift_dec: float,
              pe_period: float, pe_max: float) -> None:
    """Point the mount at a star field, tracking; optional extra errors."""
    h, p = server.host, server.port
    dev.mount.unpark()  # a goto never unparks on its own
    dev.mount.goto(ra, dec)
    if drift_ra or drift_dec:  # custom tracking rate off sidereal
        set_tracking_error(h, p, drift_ra, drift_dec)
    if camera == "CCD Simulator":
        set_number(h, p, camera, "SIMULATOR_SETTINGS", {"SIM_PEPERIOD": pe_period, "SIM_PEMAX": pe_max})
    # The simulators check for a finished exposure once per polling period (1 s by default), which
    # would add up to a second to every short guide frame.
    set_number(h, p, camera, "POLLING_PERIOD", {"PERIOD_MS": 100})
    time.sleep(1.0)


def rounded(d):
    if isinstance(d, dict):
        return {k: rounded(v) for k, v in d.items()}
    if isinstance(d, list):
        return [rounded(v) for v in d]
    return round(d, 3) if isinstance(d, float) else d


def unguided_phase(dev, settings: GuiderSettings, calibration, seconds: float) -> dict:
    guider = Guider(dev.guide_camera, DroppedPulses(dev.mount), settings, calibration=calibration)
    guider.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and guider.running:
        time.sleep(0.2)
    guider.stop()
    return guider.rms()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camera", default="Guide Simulator", choices=["Guide Simulator", "CCD Simulator"])
    ap.add_argument("--via", nargs="+", default=["mount", "camera"], choices=["mount", "camera"],
                    help="pulse paths to measure (camera: the guide camera's ST4 port; Guide Simulator only)")
    ap.add_argument("--seconds", type=float, default=90.0, help="guiding time per path (after the start settles)")
    ap.add_argument("--dither-every", type=float, default=30.0, help="seconds between dithers; 0 = none")
    ap.add_argument("--unguided-seconds", type=float, default=60.0, help="0 = no unguided baseline")
    ap.add_argument("--exposure", type=float, default=1.0)
    ap.add_argument("--time-factor", type=float, default=None, help="SIM_TIME_FACTOR of the cameras")
    ap.add_argument("--drift-ra", type=float, default=0.0, help="arcsec/s tracking error in RA (custom rate)")
    ap.add_argument("--drift-dec", type=float, default=0.0, help="arcsec/s drift in Dec (custom rate)")
    ap.add_argument("--pe-period", type=float, default=40.0, help="CCD Simulator only, seconds")
    ap.add_argument("--pe-max", type=float, default=5.0, help="CCD Simulator only, arcsec")
    ap.add_argument("--dither-pixels", type=float, default=3.0)
    ap.add_argument("--dec", type=float, default=30.0)
    args = ap.parse_args(argv)

    # the defaults of `indisync guide`: guider: {} and master.dither
    dither = DitherSettings(pixels=args.dither_pixels, settle=SettleSettings())
    out: dict = {"camera": args.camera, "dec": args.dec, "exposure": args.exposure,
                 "seconds_per_path": args.seconds, "dither_every_s": args.dither_every,
                 "drift_arcsec_per_s": [args.drift_ra, args.drift_dec],
                 "settle": {"pixels": dither.settle.pixels, "time": dither.settle.time,
                            "timeout": dither.settle.timeout}}
    with IndiServer(drivers=DRIVERS, time_factor=args.time_factor) as server:
        cfg = load_config(data={"indi": {"host": server.host, "port": server.port, "guide_camera": args.camera}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            setup_sky(server, dev, args.camera, ra=6.0, dec=args.dec, drift_ra=args.drift_ra,
                      drift_dec=args.drift_dec, pe_period=args.pe_period, pe_max=args.pe_max)
            for via in args.via:
                settings = GuiderSettings(exposure=args.exposure, pulse_via=via)
                pulser = (open_guide_port(dev.client, args.camera, cfg.indi.property_timeout)
                          if via == "camera" else None)
                guider = Guider(dev.guide_camera, dev.mount, settings, pulser=pulser)
                t0 = time.monotonic()
                cal = guider.calibrate()
                calibration = {"seconds": time.monotonic() - t0, "ra_px_per_s": cal.ra.rate * 1000,
                               "dec_px_per_s": cal.dec.rate * 1000, "ra_angle_deg": math.degrees(cal.ra.angle),
                               "dec_angle_deg": math.degrees(cal.dec.angle),
                               "orthogonality_error_deg": cal.orthogonality_error, "pixel_scale": cal.pixel_scale}
                if via == args.via[0] and args.unguided_seconds > 0:
                    out["unguided"] = rounded(unguided_phase(dev, settings, cal, args.unguided_seconds))
                result = guide_session(guider, args.seconds, args.dither_every or None, dither)
                result["calibration"] = calibration
                done = [s for s in result["settle_s"] if s is not None]
                result["dither_settle_s"] = {"settled": len(done), "of": len(result["settle_s"]),
                                             "max": max(done) if done else None}
                if via == "mount" and cal.pixel_scale:
                    result["mount_ra_step_px"] = (EOD_NOTIFY_THRESHOLD * 54000 * math.cos(math.radians(args.dec))
                                                  / cal.pixel_scale)
                out[via] = rounded(result)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
