"""Guiding on our own sky (indisync.sim.sky), judged against the TRUE error; prints one JSON document.

Why not INDI's simulators any more: INDI 1.9.9's Telescope::NewRaDec sends EQUATORIAL_EOD_COORD only
when RA moved more than 0.1 s of time (2.4 px at Dec 30 on the Guide Simulator's 0.55"/px, which
draws its stars from that property), and the Guide Simulator renders every star at whole-pixel
offsets. The old figures (90 s at Dec 30, a dither every 30 s) were 0.16-0.29 px total through ST4
and 1.1-1.25 px through the mount, where 0.68 px was the floor of any guider (a 2.4 px sawtooth):
below ~0.5 px they measured the simulator, not the guider.

The sky driver ("Sky Mount", "Sky Guider") renders sub-pixel stars from a known pointing error
(periodic error with harmonics, polar drift, seeing wander, gusts, Dec backlash, the pulses it
receives) and publishes that error (SKY_TRUE_ERROR, every 0.1 s). For each sky (good: seeing 1.5",
PE +-8"/480 s; average; bad: gusty; see indisync.sim.sky.model.PRESETS) and each pulse path
(mount: TELESCOPE_TIMED_GUIDE of the mount; st4: the guide camera's ST4 port):

1. guided: `indisync guide`'s own session (commands.guide.guide_session: calibrated once per path on
   the first sky, start settle, --seconds of guiding, a dither every --dither-every s, PHD2's settle
   criterion 1.5 px for 10 s); the sky starts afresh (same seed) as guiding starts;
2. unguided: the same sky at the same instants without the pulses (SKY_TRUE_ERROR's UNGUIDED_RA/DEC:
   the error is a sum, so this is exact, and costs no time);
3. oracle: the sky started afresh again, and a loop that takes the same guide frames (same cadence)
   but corrects the TRUE error (read from SKY_TRUE_ERROR) fully, through the same path: the floor a
   guider can reach at that cadence.

Figures against the true error (the mount's pointing, seeing apart): RMS RA, Dec and total, in arcsec
and guide px, and the peak, over the guiding windows (settling left out), each window about its own
mean; beside them the guider's own centroid figures (what PHD2 would show), each dither's settle
time and the lost-star count. ``ratio_guided_to_oracle`` is guided / oracle total RMS.
Goals (issue 18): ratio <= 1.5 on every sky, every dither settled within 15 s, no lost star on good
and average.

    .venv/bin/python benchmarks/guiding.py            # ~12 min: both paths at once, 90 s of guiding per sky
    .venv/bin/python benchmarks/guiding.py --quick    # ~7 min: 40 s of guiding per sky

Each path runs in a child process of its own (its own indiserver); --sequential runs them one
after the other (slower, less CPU contention on a small machine).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time

SKIES = ("good", "average", "bad")
PATHS = {"mount": "mount", "st4": "camera"}  # benchmark name -> guider.pulse_via
DEC = 30.0
GOALS = {"ratio_max": 1.5, "settle_max_s": 15.0, "no_lost_on": ("good", "average")}


def rounded(d):
    if isinstance(d, dict):
        return {k: rounded(v) for k, v in d.items()}
    if isinstance(d, list):
        return [rounded(v) for v in d]
    return round(d, 3) if isinstance(d, float) else d


# ---- one path, in a child process --------------------------------------------------------------

def _samples(watch, since: float, field_ra: str = "RA", field_dec: str = "DEC"):
    out = []
    for t, _name, _state, values, _msg in watch.updates("SKY_TRUE_ERROR", since=since):
        try:
            out.append((t, float(values[field_ra]), float(values[field_dec])))
        except (KeyError, ValueError):
            continue
    return out


def _start_sky(server, name: str, seed: int) -> None:
    from indisync.sim.indi import get_switches, set_number, set_switch

    set_number(server.host, server.port, "Sky Mount", "SKY_SEED", {"SEED": seed})
    set_switch(server.host, server.port, "Sky Mount", "SKY_PRESET", {name.upper(): True})
    got = get_switches(server.host, server.port, "Sky Mount", "SKY_PRESET")
    if not got.get(name.upper()):
        raise RuntimeError(f"Sky Mount did not take preset {name}: {got}")


def _goto(dev, ra: float, dec: float, timeout: float = 60.0) -> None:
    dev.mount.unpark()
    dev.mount.goto(ra, dec)
    deadline = time.monotonic() + timeout
    while True:  # a goto answered by an Ok poll that crossed our request returns early: wait for the place
        r, d = dev.mount.coordinates
        if abs(d - dec) < 0.01 and abs((r - ra + 12) % 24 - 12) < 0.001 and dev.mount.tracking:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the mount did not reach RA {ra} Dec {dec} within {timeout} s (at {r}, {d})")
        time.sleep(0.1)


def _oracle(dev, server, pulser, settings, seconds: float, watch) -> dict:
    """Expose like the guider, correct the true error fully; the windows are the whole run."""
    from indisync.sim.indi import get_numbers
    from indisync.sim.sky.model import SIDEREAL_ARCSEC_PER_S
    from indisync.sim.sky.truth import OracleController

    rates = get_numbers(server.host, server.port, "Sky Mount", "GUIDE_RATE")
    cos_dec = math.cos(math.radians(dev.mount.coordinates[1]))
    ctl = OracleController(ra_rate=rates["GUIDE_RATE_WE"] * SIDEREAL_ARCSEC_PER_S * cos_dec / 1000.0,
                           dec_rate=rates["GUIDE_RATE_NS"] * SIDEREAL_ARCSEC_PER_S / 1000.0,
                           max_pulse_ms=settings.max_pulse_ms)

    def now_error():
        snap = dev.client.snapshot("Sky Mount", "SKY_TRUE_ERROR")
        return snap.values["RA"], snap.values["DEC"]

    dev.client.wait_property("Sky Mount", "SKY_TRUE_ERROR", 10)
    dev.guide_camera.expose(settings.exposure, settings.binning)  # the same first frame as the guider's
    ctl.target = now_error()
    t0 = time.monotonic()
    frames = pulses = 0
    while time.monotonic() - t0 < seconds:
        dev.guide_camera.expose(settings.exposure, settings.binning)
        frames += 1
        sent = ctl.pulses(*now_error())
        for direction, ms in sent:
            pulser.pulse_guide(direction, ms)
        if sent:
            pulses += len(sent)
            time.sleep(settings.pulse_settle)
    end = time.monotonic()
    return {"windows": [(t0, end)], "frames": frames, "pulses": pulses, "seconds": round(end - t0, 1)}


def run_path(path: str, skies: list[str], seconds: float, oracle_seconds: float, dither_every: float,
             exposure: float, seed: int, tuning: dict | None = None) -> dict:
    from indisync.commands.guide import guide_session
    from indisync.config import load_config
    from indisync.devices.guide_port import open_guide_port
    from indisync.devices.session import open_devices
    from indisync.guiding.guider import Guider
    from indisync.guiding.settings import DitherSettings, GuiderSettings, SettleSettings
    from indisync.sim.indi import IndiServer, PropertyWatch
    from indisync.sim.sky.truth import guiding_windows, truth_stats

    settings = GuiderSettings(exposure=exposure, pulse_via=PATHS[path], **(tuning or {}))
    dither = DitherSettings(pixels=3.0, settle=SettleSettings(pixels=1.5, time=10.0, timeout=60.0))
    out: dict = {"path": path, "settings": {"exposure": exposure, "aggressiveness": settings.aggressiveness,
                                            "hysteresis": settings.hysteresis, "drift_gain": settings.drift_gain,
                                            "min_move": settings.min_move, "max_stars": settings.max_stars},
                 "skies": {}}
    with IndiServer(drivers=["indi_sky_sim"]) as server:
        cfg = load_config(data={"indi": {"host": server.host, "port": server.port, "mount": "Sky Mount",
                                         "guide_camera": "Sky Guider", "camera": "Sky Camera"}})
        with open_devices(cfg.indi, need=("guide_camera", "mount"), want=("guide_camera", "mount")) as dev, \
                PropertyWatch(server.host, server.port, "Sky Mount", ("SKY_TRUE_ERROR",)) as watch:
            _start_sky(server, skies[0], seed)
            _goto(dev, 6.0, DEC)
            pulser = open_guide_port(dev.client, "Sky Guider", cfg.indi.property_timeout) if path == "st4" else None
            t = time.monotonic()
            cal = Guider(dev.guide_camera, dev.mount, settings, pulser=pulser).calibrate()
            out["calibration"] = {"seconds": round(time.monotonic() - t, 1), "on_sky": skies[0], **cal.as_dict()}
            scale = cal.pixel_scale
            for sky in skies:
                row: dict = {}
                # -- guided (and, from the same samples, unguided)
                _start_sky(server, sky, seed)
                guider = Guider(dev.guide_camera, dev.mount, settings, pulser=pulser, calibration=cal)
                events: list[tuple[float, str]] = []
                guider.add_listener(lambda e: events.append((e.time, e.kind)))
                since = time.monotonic()
                result = guide_session(guider, seconds, dither_every or None, dither)
                windows = guiding_windows(events, time.monotonic())
                row["guided"] = truth_stats(_samples(watch, since), windows, scale)
                # unguided: the star is not brought back, so it is judged from where it started over the
                # whole span; within the guiding windows alone (short) the sky barely moves.
                unguided = _samples(watch, since, "UNGUIDED_RA", "UNGUIDED_DEC")
                row["unguided"] = truth_stats(unguided, [(since, time.monotonic())], scale)
                row["unguided_in_windows"] = truth_stats(unguided, windows, scale)
                row["centroid"] = {k: result[k] for k in ("rms_px", "rms_ra_px", "rms_dec_px", "peak_px",
                                                          "mean_ra_px", "mean_dec_px", "frames", "frames_total")}
                done = [s for s in result["settle_s"] if s is not None]
                row["dithers"] = {"settle_s": result["settle_s"], "settled": len(done), "of": len(result["settle_s"]),
                                  "max_s": max(done) if done else None}
                row["start_settle_s"] = result["start_settle"]["seconds"]
                row["star_lost"] = result["star_lost"]
                # -- oracle, on the same sky from its start
                _start_sky(server, sky, seed)
                since = time.monotonic()
                oracle = _oracle(dev, server, pulser or dev.mount, settings, oracle_seconds, watch)
                row["oracle"] = {**truth_stats(_samples(watch, since), oracle.pop("windows"), scale), **oracle}
                g, o = row["guided"]["rms_arcsec"], row["oracle"]["rms_arcsec"]
                row["ratio_guided_to_oracle"] = g / o if g is not None and o else None
                out["skies"][sky] = row
                print(f"[{path}] {sky}: guided {g:.2f}\" oracle {o:.2f}\" unguided "
                      f"{row['unguided']['rms_arcsec']:.2f}\" dithers {row['dithers']['settle_s']} "
                      f"lost {row['star_lost']}", file=sys.stderr, flush=True)
    out["pixel_scale"] = scale
    return out


# ---- the whole benchmark -------------------------------------------------------------------------

def _summary(results: dict) -> dict:
    """One line per path and sky: total RMS (arcsec) guided / oracle / unguided, the ratio, dithers, lost."""
    out = {}
    for path, res in results.items():
        for sky, row in res["skies"].items():
            out[f"{path}/{sky}"] = {
                "guided_arcsec": row["guided"]["rms_arcsec"], "oracle_arcsec": row["oracle"]["rms_arcsec"],
                "unguided_arcsec": row["unguided"]["rms_arcsec"], "guided_px": row["guided"]["rms_px"],
                "guided_peak_px": row["guided"]["peak_px"], "centroid_px": row["centroid"]["rms_px"],
                "ratio": row["ratio_guided_to_oracle"], "dither_settle_s": row["dithers"]["settle_s"],
                "star_lost": row["star_lost"]}
    return out


def _judge(results: dict) -> dict:
    goals = {}
    for path, res in results.items():
        for sky, row in res["skies"].items():
            ratio = row["ratio_guided_to_oracle"]
            settle = row["dithers"]
            goals[f"{path}/{sky}"] = {
                "ratio_ok": ratio is not None and ratio <= GOALS["ratio_max"],
                "dithers_ok": settle["settled"] == settle["of"] and (settle["max_s"] or 0) <= GOALS["settle_max_s"],
                "no_lost_ok": sky not in GOALS["no_lost_on"] or row["star_lost"] == 0,
            }
    return goals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skies", nargs="+", default=list(SKIES), choices=SKIES)
    ap.add_argument("--via", nargs="+", default=list(PATHS), choices=list(PATHS))
    ap.add_argument("--seconds", type=float, default=None, help="guiding per sky after the start settles (90; quick 40)")
    ap.add_argument("--oracle-seconds", type=float, default=None, help="the oracle's run per sky (100; quick 50)")
    ap.add_argument("--dither-every", type=float, default=None, help="s between dithers (30; quick 20); 0 = none")
    ap.add_argument("--exposure", type=float, default=1.0)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="guider settings other than the defaults, e.g. aggressiveness=0.5 min_move=0.3")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="shorter runs (about 7 minutes in all)")
    ap.add_argument("--sequential", action="store_true", help="one path after the other instead of at once")
    ap.add_argument("--child", choices=list(PATHS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    seconds = args.seconds or (40.0 if args.quick else 90.0)
    oracle_seconds = args.oracle_seconds or (50.0 if args.quick else 100.0)
    dither_every = args.dither_every if args.dither_every is not None else (20.0 if args.quick else 30.0)

    tuning = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if not value:
            ap.error(f"--set {item!r}: expected KEY=VALUE (a guider setting, e.g. min_move=0.3)")
        tuning[key] = int(value) if value.isdigit() else float(value)
    if args.child:
        res = run_path(args.child, args.skies, seconds, oracle_seconds, dither_every, args.exposure, args.seed, tuning)
        print(json.dumps(rounded(res)))
        return 0

    started = time.monotonic()
    results: dict = {}
    errors: dict = {}

    def child(path: str) -> None:
        cmd = [sys.executable, __file__, "--child", path, "--skies", *args.skies, "--seconds", str(seconds),
               "--oracle-seconds", str(oracle_seconds), "--dither-every", str(dither_every),
               "--exposure", str(args.exposure), "--seed", str(args.seed), "--set", *args.set]
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=3600)
            if proc.returncode != 0:
                errors[path] = f"exit {proc.returncode}"
                return
            results[path] = json.loads(proc.stdout.strip().splitlines()[-1])
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, never lost
            errors[path] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=child, args=(p,), name=f"bench-{p}") for p in args.via]
    for t in threads:
        t.start()
        if args.sequential:
            t.join()
    for t in threads:
        t.join()
    out = {"dec": DEC, "exposure": args.exposure, "guider_settings": tuning or "defaults",
           "seconds_per_run": seconds, "oracle_seconds": oracle_seconds,
           "dither_every_s": dither_every, "seed": args.seed, "goals": GOALS,
           "summary": _summary(results), "judged": _judge(results), "results": results, "errors": errors,
           "wall_s": round(time.monotonic() - started, 1)}
    json.dump(out, sys.stdout, indent=2)
    print()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
