"""Plate solving and centring on the INDI simulators with astrometry.net; prints one JSON document.

1. index: build (or reuse from the cache) the simulator index for the target's sky cell;
2. solve: --frames CCD Simulator frames at the target, each solved with the scale and position
   hints the `solve` command uses; median/min/max solve time and the centre's error from the
   simulator's own pointing (the J2000 RA/DEC in its header), and how far the mount's position
   converted to J2000 by astropy is from that (the simulator's JNow->J2000 differs by 5-15");
3. centre: SIM_POLAR/SIM_POLARDRIFT give a pointing error (read back), the mount starts 0.5 degrees
   away, and indisync.acquire.centering.center() runs with the default settings: attempts, each
   attempt's offset and the final error;
4. flip: a master + slave rig (indisync.sim.rig) images a target placed 1.6 min of hour angle east
   of the meridian at a site where it is local midnight, with flip: {after_meridian_min: 0.25,
   max_wait_min: 0.25} and 10 s frames at time factor 0.1; the night flips once (no guider):
   the flip's own figures from its flip_done event, and from the MQTT arrival times the time from
   the last frame's end (the last exposure_done before flip_started) to the first frame after the
   flip (the master's first exposure_started after flip_done). About 2.5 minutes; --no-flip skips it.

    .venv/bin/python benchmarks/acquire.py [--frames 10] [--exposure 5] [--polar 120 --polar-drift 5] [--no-flip]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

from indisync.acquire.centering import Target, center
from indisync.acquire.geometry import tangent_offset
from indisync.acquire.settings import AcquireSettings
from indisync.acquire.solver import hints_from_header, solve_hdu
from indisync.config import IndiConfig
from indisync.devices.session import open_devices
from indisync.sim.astrometry_index import ensure_index
from indisync.sim.indi import IndiServer, get_numbers, set_number

DRIVERS = ["indi_simulator_ccd", "indi_simulator_telescope"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--exposure", type=float, default=5.0)
    p.add_argument("--ra", type=float, default=29.63, help="J2000 degrees")
    p.add_argument("--dec", type=float, default=39.87)
    p.add_argument("--polar", type=float, default=120.0, help="SIM_POLAR (arcmin)")
    p.add_argument("--polar-drift", type=float, default=5.0, help="SIM_POLARDRIFT")
    p.add_argument("--no-flip", action="store_true", help="skip the meridian flip (2.5 min)")
    p.add_argument("--cache", default=None, help="index cache directory (default: a fresh temporary one)")
    args = p.parse_args(argv)
    out = {"frames": args.frames, "exposure_s": args.exposure, "target": [args.ra, args.dec]}

    t0 = time.monotonic()
    index = ensure_index(args.ra, args.dec, cache_dir=args.cache or tempfile.mkdtemp(prefix="indisync-index-"))
    out["index_build_s"] = round(time.monotonic() - t0, 2)
    settings = AcquireSettings(index_dirs=[str(index)])

    with IndiServer(drivers=DRIVERS, time_factor=0.1) as server:
        cfg = IndiConfig(host=server.host, port=server.port, filter_wheel=None, focuser=None, guide_camera=None)
        with open_devices(cfg, need=("camera", "mount")) as dev:
            mount, camera = dev.mount, dev.camera
            mount.unpark()  # a slew never unparks on its own
            mount.slew_j2000(args.ra, args.dec, timeout=120)
            ra, dec = mount.position_j2000()
            times, errors, mount_diff = [], [], []
            for _ in range(args.frames):
                hdu = camera.expose(args.exposure)
                hints = hints_from_header(hdu.header, settings, mount.focal_length_mm, ra, dec)
                s = solve_hdu(hdu, hints, settings)
                times.append(s.seconds)
                # the simulator draws the field at the J2000 RA/DEC it writes in the header
                e, n = tangent_offset(hdu.header["RA"], hdu.header["DEC"], s.ra, s.dec)
                errors.append((e * e + n * n) ** 0.5)
                e, n = tangent_offset(ra, dec, s.ra, s.dec)
                mount_diff.append((e * e + n * n) ** 0.5)
            out["solve_s"] = {"median": round(statistics.median(times), 3), "min": round(min(times), 3),
                              "max": round(max(times), 3)}
            out["solve_centre_error_arcsec"] = {"median": round(statistics.median(errors), 2),
                                                "max": round(max(errors), 2)}
            # the mount's JNow converted by astropy vs the simulator's own J2000 (its conversion differs)
            out["mount_j2000_vs_simulator_arcsec"] = round(statistics.median(mount_diff), 2)

            set_number(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS",
                       {"SIM_POLAR": args.polar, "SIM_POLARDRIFT": args.polar_drift})
            time.sleep(0.5)
            sim = get_numbers(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS")
            out["sim_polar"] = [sim["SIM_POLAR"], sim["SIM_POLARDRIFT"]]  # as read back
            mount.slew_j2000(args.ra + 0.5, args.dec, timeout=120)
            result = center(mount, camera, Target(args.ra, args.dec), settings)
            out["centering"] = {
                "centered": result.centered, "attempts": len(result.attempts),
                "offsets_arcsec": [None if a.offset_arcsec is None else round(a.offset_arcsec, 2) for a in result.attempts],
                "final_error_arcsec": None if result.final_offset_arcsec is None else round(result.final_offset_arcsec, 2),
                "tolerance_arcsec": settings.tolerance_arcsec, "seconds": round(result.seconds, 1),
                "reason": result.reason,
            }
    if not args.no_flip:
        out["flip"] = measure_flip()
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


def measure_flip() -> dict:
    """One real flip on the simulators (see the module's docstring, step 4)."""
    from indisync.config import MqttConfig
    from indisync.protocol import messages
    from indisync.protocol.transport import MqttTransport
    from indisync.sim.night import LATITUDE, longitude_for_local_hour, pier_side, prepare_mount, target_at_hour_angle
    from indisync.sim.rig import SimRig

    lon = longitude_for_local_hour(0.0)
    ra, dec = target_at_hour_angle(lon, -1.6 / 60.0)
    seen: list = []  # (monotonic, type, sender, payload)
    rig = SimRig(
        slaves=1, time_factor=0.1,
        master_sections={"site": {"latitude": LATITUDE, "longitude": lon, "elevation": 0},
                         "night": {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False},
                         "flip": {"after_meridian_min": 0.25, "max_wait_min": 0.25}},
        master_section={"target": {"name": "FLIP", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": 10.0,
                                                "repeat": 100}]},
                        "refocus": {"after_batch": False}},
        slave_section={"filters": ["Red", "Green", "Blue"], "exposure": 10.0},
    )
    with rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec)
        wire = MqttTransport(MqttConfig(host=rig.broker.host, port=rig.broker.port), "bench-flip")

        def on_event(msg):
            env = messages.decode(msg.payload)
            seen.append((time.monotonic(), env.type, env.sender, env.payload))

        wire.subscribe("indisync/+/event", on_event)
        wire.start()
        wire.wait_connected(10)
        try:
            rig.start_slaves()
            rig.start_node("master")
            deadline = time.monotonic() + 240
            pier_before = None
            while time.monotonic() < deadline:
                if pier_before is None and any(k == "exposure_done" for _, k, _, _ in seen):
                    pier_before = pier_side(indi)
                done = [(t, p) for t, k, _, p in seen if k == "flip_done"]
                if done:
                    break
                time.sleep(0.2)
            else:
                return {"error": "no flip within 240 s", "log_tail": rig.nodes["master"].log_text()[-2000:]}
            flip_done_t, payload = done[0]
            started_t = next(t for t, k, _, _ in seen if k == "flip_started")
            last_end = max(t for t, k, _, p in seen if k == "exposure_done" and t < started_t)
            time.sleep(1.0)
            first_after = min(t for t, k, s, _ in seen if k == "exposure_started" and s == "master" and t >= flip_done_t)
            return {"pier_side_before": pier_before, "pier_side_after": pier_side(indi),
                    "flip_done": payload,
                    "last_frame_end_to_first_frame_after_s": round(first_after - last_end, 2)}
        finally:
            wire.stop()


if __name__ == "__main__":
    sys.exit(main())
