"""Guided vs unguided RMS on the INDI simulators, and settle time per dither; prints one JSON document.

The mount tracks at a custom rate off sidereal (a steady drift in RA and Dec, as a polar-alignment
error gives), and with the CCD Simulator as guide camera its periodic error (SIM_PEPERIOD/SIM_PEMAX)
is switched on too; SIM_POLAR/SIM_POLARDRIFT are set on the camera as well. Then, after one
calibration:

1. unguided: the guide loop runs for --seconds with its pulses dropped (same frames, same
   centroids, same RMS code; only the corrections are missing);
2. guided: the same loop with the pulses sent, for --seconds;
3. --dithers dithers of up to --dither-pixels, each waiting for PHD2-style settling.

    .venv/bin/python benchmarks/guiding.py [--camera "Guide Simulator"|"CCD Simulator"] [--seconds 120]

Note on INDI 1.9.9's simulators (measured, see the report): SIM_POLAR/SIM_POLARDRIFT only offset the
field by a constant amount, they add no drift over time; SIM_PEPERIOD/SIM_PEMAX move the CCD
Simulator's stars sinusoidally along RA; the Guide Simulator has no PE setting. Stars are drawn at
whole-pixel positions, so single-star centroids are quantised to 1 px (multi-star averaging helps).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from indisync.config import load_config
from indisync.devices.session import open_devices
from indisync.guiding.guider import Guider
from indisync.guiding.settings import GuiderSettings, SettleSettings
from indisync.sim.mounts import DroppedPulses, set_tracking_error
from indisync.sim.indi import IndiServer, set_number

DRIVERS = ["indi_simulator_ccd", "indi_simulator_telescope", "indi_simulator_guide"]


def setup_sky(server, dev, camera: str, *, ra: float, dec: float, drift_ra: float, drift_dec: float,
              pe_period: float, pe_max: float, polar: float, polar_drift: float) -> None:
    """Point the mount at a star field, make it drift, switch on the camera's error simulation."""
    h, p = server.host, server.port
    dev.mount.goto(ra, dec)
    # custom tracking rate: the mount runs drift_ra arcsec/s fast in RA and drifts drift_dec in Dec
    set_tracking_error(h, p, drift_ra, drift_dec)
    settings = {"SIM_POLAR": polar, "SIM_POLARDRIFT": polar_drift}
    if camera == "CCD Simulator":
        settings.update({"SIM_PEPERIOD": pe_period, "SIM_PEMAX": pe_max})
    set_number(h, p, camera, "SIMULATOR_SETTINGS", settings)
    # The simulators check for a finished exposure once per polling period (1 s by default), which
    # would add up to a second to every short guide frame.
    set_number(h, p, camera, "POLLING_PERIOD", {"PERIOD_MS": 100})
    time.sleep(1.0)


def run_phase(guider: Guider, seconds: float) -> dict:
    guider.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and guider.running:
        time.sleep(0.2)
    guider.stop()
    summary = guider.rms()
    summary["star_lost"] = guider.star_lost_count
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camera", default="Guide Simulator", choices=["Guide Simulator", "CCD Simulator"])
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each of the two phases")
    ap.add_argument("--exposure", type=float, default=1.0)
    ap.add_argument("--time-factor", type=float, default=0.2, help="SIM_TIME_FACTOR of the cameras")
    ap.add_argument("--drift-ra", type=float, default=0.25, help="arcsec/s tracking error in RA")
    ap.add_argument("--drift-dec", type=float, default=0.15, help="arcsec/s drift in Dec")
    ap.add_argument("--pe-period", type=float, default=40.0, help="CCD Simulator only, seconds")
    ap.add_argument("--pe-max", type=float, default=5.0, help="CCD Simulator only, arcsec")
    ap.add_argument("--dithers", type=int, default=4)
    ap.add_argument("--dither-pixels", type=float, default=3.0)
    ap.add_argument("--dec", type=float, default=30.0)
    args = ap.parse_args(argv)

    settings = GuiderSettings(exposure=args.exposure,
                              calibration_step_ms=500 if args.camera == "Guide Simulator" else 1000)
    settle = SettleSettings(pixels=1.5, time=5.0, timeout=60.0)
    out: dict = {"camera": args.camera, "seconds_per_phase": args.seconds, "exposure": args.exposure,
                 "drift_arcsec_per_s": [args.drift_ra, args.drift_dec],
                 "pe": [args.pe_period, args.pe_max] if args.camera == "CCD Simulator" else None}
    with IndiServer(drivers=DRIVERS, time_factor=args.time_factor) as server:
        cfg = load_config(data={"indi": {"host": server.host, "port": server.port, "guide_camera": args.camera}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev:
            setup_sky(server, dev, args.camera, ra=6.0, dec=args.dec, drift_ra=args.drift_ra,
                      drift_dec=args.drift_dec, pe_period=args.pe_period, pe_max=args.pe_max,
                      polar=30.0, polar_drift=1.0)
            t0 = time.monotonic()
            guider = Guider(dev.guide_camera, dev.mount, settings)
            cal = guider.calibrate()
            out["calibration"] = {"seconds": round(time.monotonic() - t0, 1),
                                  "ra_px_per_s": round(cal.ra.rate * 1000, 3),
                                  "dec_px_per_s": round(cal.dec.rate * 1000, 3),
                                  "ra_angle_deg": round(math.degrees(cal.ra.angle), 2),
                                  "dec_angle_deg": round(math.degrees(cal.dec.angle), 2),
                                  "orthogonality_error_deg": round(cal.orthogonality_error, 2),
                                  "pixel_scale": cal.pixel_scale}
            unguided = Guider(dev.guide_camera, DroppedPulses(dev.mount), settings, calibration=cal)
            out["unguided"] = run_phase(unguided, args.seconds)
            guided = Guider(dev.guide_camera, dev.mount, settings, calibration=cal)
            out["guided"] = run_phase(guided, args.seconds)
            guided.start()
            dithers = []
            for _ in range(args.dithers):
                dithers.append(guided.dither(args.dither_pixels, ra_only=False, settle=settle).as_dict())
            guided.stop()
            out["dithers"] = dithers
            done = [d["seconds"] for d in dithers if d["settled"]]
            out["dither_settle_s"] = {"settled": len(done), "of": len(dithers),
                                      "mean": round(sum(done) / len(done), 2) if done else None,
                                      "max": max(done) if done else None}
            if out["unguided"]["rms_px"]:
                out["guided_over_unguided"] = round(out["guided"]["rms_px"] / out["unguided"]["rms_px"], 4)
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
