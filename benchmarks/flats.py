"""Sky flats at dusk through the real night (issue 17) on the INDI 1.9.9 simulators; prints one JSON document.

The rig (indisync.sim.calib_rig, shared with tests/integration/test_flats_sim.py): a master and
--slaves slaves, each an `indisync run` process with its own indiserver, a private mosquitto, at a site
where the sun is setting through --sun (-4°) now, time factor 1. Every node's CCD Simulator has the
simulated twilight (indisync.sim.calib_coupling, through the ExposureGate): SIM_SKYGLOW from --m0 at the
rig's start, the sky halving in brightness every --halving s (180: the issue's "x2 every 3 min"),
dimmer behind R/G (+5), B (+7). A night log of two nights ago holds lights of Luminance and Red on the
master and one broadband filter per slave (Green, Blue, Red, ...), so those are the flats needed;
--count flats each, target 0.4 ± 0.1 of full scale, exposures --min-exposure..--max-exposure.

Per node, read back from the files and the nodes' events (never through the code under test):
``sets`` per filter: kept / taken (test frames and discarded ones included) / test frames / discarded
(with why), status and reason; ``adu``: the kept frames' mean ADU (min, max, spread max-min, std, as
fractions of 65535 too, and how many fell outside the band: should be 0); ``exposure_s`` (first,
last: the ramp following the darkening sky); ``twilight_min``: minutes from the node's first flat
frame to its last set done. For the rig: ``twilight_used_min`` (the night's dusk_flats state, entry
to exit), the sky's brightness then (``sky_darkened_x``: how much the sky dimmed meanwhile),
``kept``/``taken`` totals and ``ok`` (every needed set ok with --count frames, every kept frame in
band).

    .venv/bin/python benchmarks/flats.py                   # ~2 min
    .venv/bin/python benchmarks/flats.py --count 20 --slaves 2 --halving 120

Times are wall seconds on this machine (``load_1min`` is printed with them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indisync.config import MqttConfig  # noqa: E402
from indisync.sim.calib_rig import (FULL_SCALE, adu_band, calib_frames, dusk_rig, flats_section,  # noqa: E402
                                    night_dir, seed_lights)
from indisync.sim.collector import MqttCollector  # noqa: E402
from indisync.sim.night import prepare_mount  # noqa: E402
from indisync.sim.waiting import wait_until  # noqa: E402

SLAVE_FILTERS = ["Green", "Blue", "Red", "Luminance"]


def needed(slaves: int) -> dict[str, list[str]]:
    lights = {"master": ["Luminance", "Red"]}
    for i in range(1, slaves + 1):
        lights[f"slave{i}"] = [SLAVE_FILTERS[(i - 1) % len(SLAVE_FILTERS)]]
    return lights


def rounded(value, digits=3):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def node_report(rig, wire, node: str, filters: list[str], count: int) -> dict:
    low, high = adu_band()
    frames = calib_frames(rig, node, "FLAT")
    done = [(t, env.payload) for t, env in wire.envelopes("calib_set_done", node) if env.payload.get("kind") == "flat"]
    progress = [(t, env.payload) for t, env in wire.envelopes("calib_progress", node)
                if env.payload.get("kind") == "flat"]
    sets = {}
    for _, p in done:
        said = [q for _, q in progress if q.get("filter") == p.get("filter")]
        sets[p.get("filter")] = {"status": p["status"], "kept": p.get("kept"), "taken": p.get("taken"),
                                 "test_frames": sum(1 for q in said if q.get("frame") == "test"),
                                 "discarded": sum(1 for q in said if q.get("frame") == "discarded"),
                                 "reasons_discarded": sorted({q.get("reason") or "" for q in said
                                                              if q.get("frame") == "discarded"})[:3],
                                 "reason": p.get("reason")}
    means = [f.mean for f in frames]
    exposures = {}
    for name in filters:
        kept = sorted((f for f in frames if f.filter == name), key=lambda f: f.path.stat().st_mtime)
        if kept:
            exposures[name] = {"first": kept[0].exposure, "last": kept[-1].exposure, "frames": len(kept)}
    adu = None
    if means:
        adu = {"min": min(means), "max": max(means), "spread": max(means) - min(means),
               "std": statistics.pstdev(means), "min_frac": min(means) / FULL_SCALE,
               "max_frac": max(means) / FULL_SCALE,
               "spread_frac": (max(means) - min(means)) / FULL_SCALE,
               "outside_band": sum(1 for m in means if not low <= m <= high)}
    twilight = (max(t for t, _ in done) - min(t for t, _ in progress)) / 60.0 if done and progress else None
    ok = all(sets.get(f, {}).get("status") == "ok" and sets[f].get("kept") == count
             and sum(1 for x in frames if x.filter == f) == count for f in filters) \
        and adu is not None and adu["outside_band"] == 0
    return {"filters": filters, "sets": sets, "kept": sum(s.get("kept") or 0 for s in sets.values()),
            "taken": sum(s.get("taken") or 0 for s in sets.values()), "files": len(frames), "adu": adu,
            "exposure_s": exposures, "twilight_min": twilight, "ok": ok}


def run(args, workdir: Path) -> dict:
    flats = flats_section("dusk", count=args.count, min_exposure=args.min_exposure, max_exposure=args.max_exposure,
                          halving_s=args.halving)
    rig, lon = dusk_rig(workdir / "rig", slaves=args.slaves, sun_altitude=args.sun, m0=args.m0,
                        halving_s=args.halving, flats=flats)
    lights = needed(args.slaves)
    out: dict = {"slaves": args.slaves, "count": args.count, "halving_s": args.halving, "m0": args.m0,
                 "sun_altitude_deg": args.sun, "longitude": lon, "exposure_limits_s": [args.min_exposure,
                                                                                        args.max_exposure]}
    with rig, contextlib.ExitStack() as stack:
        prepare_mount(rig.nodes["master"].indi, lon, 45.0)
        seed_lights(night_dir(rig), lights, exposure=120.0)
        wire = MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")
        stack.callback(wire.close)
        rig.start_slaves()
        rig.start_node("master")

        def states():
            return [(t, env.payload) for t, env in wire.envelopes("night_state", "master")]

        entered = wait_until(lambda: [t for t, p in states() if p["to"] == "dusk_flats"], 180,
                             "the night entering dusk_flats", 0.2, detail=rig.logs)[0]
        left, reason = wait_until(lambda: [(t, p.get("reason")) for t, p in states() if p["from"] == "dusk_flats"],
                                  args.timeout, "the night leaving dusk_flats", 0.5, detail=rig.logs)[0]
        stop = subprocess.run([sys.executable, "-m", "indisync.cli", "stop", "--config",
                               str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=60)
        out["stop_exit"] = stop.returncode
        rig.wait_node("master", 90)
        twilight = rig.twilight
        # monotonic arrival times -> the sky's epoch clock: both measured now
        offset = time.time() - time.monotonic()
        m_in, m_out = twilight.skyglow(entered + offset), twilight.skyglow(left + offset)
        out.update({
            "twilight_used_min": (left - entered) / 60.0,
            "skyglow_at_start": m_in, "skyglow_at_end": m_out,
            "sky_darkened_x": 2.0 ** ((m_out - m_in) / 10.0),
            "flats_done_reason": reason,
            "nodes": {node: node_report(rig, wire, node, filters, args.count) for node, filters in lights.items()},
        })
        out["kept"] = sum(n["kept"] for n in out["nodes"].values())
        out["taken"] = sum(n["taken"] for n in out["nodes"].values())
        out["sky_errors"] = {name: sky.errors[-3:] for name, sky in rig.skies.items() if sky.errors}
        out["ok"] = all(n["ok"] for n in out["nodes"].values()) and not out["sky_errors"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slaves", type=int, default=2)
    p.add_argument("--count", type=int, default=10, help="flats kept per set (flats.count)")
    p.add_argument("--halving", type=float, default=180.0, help="s in which the simulated sky halves in brightness")
    p.add_argument("--m0", type=float, default=43.0, help="SIM_SKYGLOW at the rig's start (50: a 1 s flat ~32,000 ADU)")
    p.add_argument("--sun", type=float, default=-4.0, help="the sun's altitude now at the chosen site (setting)")
    p.add_argument("--min-exposure", type=float, default=0.1)
    p.add_argument("--max-exposure", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=900.0, help="s the dusk flats may take at most")
    p.add_argument("--keep", action="store_true", help="keep the rig's folder (logs, configs, frames) afterwards")
    args = p.parse_args(argv)
    if args.slaves < 0 or args.count < 1 or not args.halving > 0:
        p.error("--slaves >= 0, --count >= 1, --halving > 0")
    workdir = Path(tempfile.mkdtemp(prefix="indisync-bench-flats-"))
    started = time.monotonic()
    report: dict = {"benchmark": "flats", "cpus": os.cpu_count(), "load_1min_before": os.getloadavg()[0]}
    try:
        report.update(run(args, workdir))
        report["error"] = None
    except Exception as exc:  # noqa: BLE001 - report what we have, and why it stopped
        report["error"] = f"{type(exc).__name__}: {str(exc)[:3000]}"
        report["ok"] = False
        print(report["error"], file=sys.stderr)
    report["load_1min_after"] = os.getloadavg()[0]
    report["wall_s"] = time.monotonic() - started
    if args.keep or not report.get("ok"):
        report["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(rounded(report), indent=2))
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
