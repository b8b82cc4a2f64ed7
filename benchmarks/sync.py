"""Exposure synchronisation on a simulated rig: start skew and shutter-open overlap, master vs slaves.

For each slave count N a whole rig runs on this machine (`indisync.sim.rig.SimRig`: a private
mosquitto, one indiserver with the INDI simulators per node, one `indisync run` process per node),
the master takes F light frames in one batch in strict sync with refocus off (so it measures the
frames between refocus cycles), and the frames on disk are judged by their FITS headers:

- start skew: |slave DATE-OBS − master DATE-OBS| for the same master exposure id (EXPOSID);
  p50/p99/max over all pairs, and the signed mean (positive: slaves open after the master).
- frames per node, and per slave the master exposure ids it has no frame for.
- shutter-open overlap (the headline): the fraction of the master's open-shutter wall time
  [DATE-OBS, DATE-OBS + EXPTIME x time_factor] during which the slave's shutter was open too. The
  simulators run `time_factor` times faster than EXPTIME says, so a 300 s frame is open 3 s of wall
  time and a given skew costs 100x more of it than at real length; `paired_overlap_at_real_length`
  applies the same measured starts to unscaled EXPTIME intervals (what that skew costs a real 300 s
  frame). `exptime_ratio` is the slave's summed EXPTIME over the master's (requested, not measured).
- frame cycle: master start-to-start wall time, and the overhead fraction 1 − exposure/cycle.
- load: 1-minute load average sampled during the session and the share of CPU time busy (the
  machine's cores are shared with everything else running on it).

    .venv/bin/python benchmarks/sync.py [--slaves 1 8] [--frames 10] [--frames-large 6] [--exposure 300]
    .venv/bin/python benchmarks/sync.py --network wifi --slaves 2    # every node behind a delay proxy

``--network wifi`` puts each node's MQTT connection through its own `indisync.sim.netproxy`
DelayProxy: 20 +- 10 ms one way, 1 % of chunks stalled 200 ms (TCP retransmission); target
(issue 13): skew p99 <= 150 ms with 2 slaves. With it the master schedules each start
(``master.start_lead``, 0.3 s unless --start-lead says otherwise), so a stalled command still
arrives before the shutters open.

Targets (issue 5): skew p99 <= 100 ms on loopback with simulators; slave shutter-open >= 98 % of
the master's in strict mode between refocus cycles. Issue 18: p99 <= 25 ms with 1 slave and <= 50 ms
with 8, every frame there and measured (``hfr_measured``: each slave's ``frame_measured`` events,
waited for up to 30 s after the master ends).

``skew_breakdown`` splits the skew with the nodes' ``exposure_started`` events, and
``skew_max_ms_by_exposure`` / ``command_to_slave_start_max_ms_by_exposure`` say whether the worst
pairs are the first frame (start-up) or every frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from indisync.config import MqttConfig
from indisync.protocol.transport import Incoming, MqttTransport
from indisync.sim.report import (
    by_node,
    exptime_ratio,
    missing_exposures,
    paired_overlap,
    percentile,
    read_frames,
    shutter_overlap,
    skew_summary,
    start_intervals,
    start_skews,
)
from indisync.sim.netproxy import NetProfile
from indisync.sim.rig import SimRig

SKEW_P99_TARGET_MS = 100.0
OVERLAP_TARGET = 0.98
SKEW_P99_NETWORK_TARGET_MS = 150.0  # issue 13: through the delay proxy
SKEW_P99_TARGETS_ISSUE18_MS = {1: 25.0, 8: 50.0}  # issue 18, on loopback: by slave count
NETWORKS = {"loopback": None, "wifi": NetProfile.wifi}
LARGE_RIG = 4  # from this many slaves on, --frames-large applies


class LoadSampler:
    """1-minute load average every few seconds, and the busy share of all CPU time from /proc/stat."""

    def __init__(self, every: float = 2.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_before = _cpu_times()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self) -> dict:
        busy = None
        after = _cpu_times()
        if self._cpu_before and after:
            total = after[0] - self._cpu_before[0]
            idle = after[1] - self._cpu_before[1]
            busy = round(1 - idle / total, 3) if total > 0 else None
        return {
            "loadavg_1min_max": round(max(self.samples), 2) if self.samples else None,
            "loadavg_1min_mean": round(statistics.fmean(self.samples), 2) if self.samples else None,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "cpu_busy_fraction": busy,
        }


def _cpu_times() -> tuple[int, int] | None:
    """(total, idle incl. iowait) jiffies of all CPUs, or None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)


class StartEvents:
    """Listens to every node's ``exposure_started`` events on the rig's broker. Their ``start`` is the
    node's clock just before it asks its camera to expose, which splits the skew into the command's
    way to the slave and each node's INDI start latency (DATE-OBS − start)."""

    def __init__(self, host: str, port: int, prefix: str = "indisync"):
        self.starts: dict[tuple[str, int], datetime] = {}
        # each slave's frame_measured events (its HFR, measured after its reply): with an HFR, without (error)
        self.measured: dict[str, int] = {}
        self.unmeasured: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.transport = MqttTransport(MqttConfig(host=host, port=port), client_id="indisync-sync-bench")
        self.transport.subscribe(f"{prefix}/+/event", self._on_event)

    def start(self, timeout: float = 10.0) -> bool:
        self.transport.start()
        return self.transport.wait_connected(timeout)

    def close(self) -> None:
        self.transport.stop()

    def wait_measured(self, frames: int, slaves: list[str], timeout: float) -> None:
        """Until every slave has reported ``frames`` measurements (its last frame's comes after its
        reply), bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(self.measured.get(n, 0) + len(self.unmeasured.get(n, [])) >= frames for n in slaves):
                    return
            time.sleep(0.1)

    def _on_event(self, msg: Incoming) -> None:
        try:
            env = json.loads(msg.payload)
            payload = env.get("payload") or {}
            if msg.retain:
                return
            if env.get("type") == "frame_measured":
                node = str(env.get("from"))
                with self._lock:
                    if payload.get("error") is None:
                        self.measured[node] = self.measured.get(node, 0) + 1
                    else:
                        self.unmeasured.setdefault(node, []).append(str(payload.get("error"))[:200])
                return
            if env.get("type") != "exposure_started":
                return
            digits = re.findall(r"\d+", str(payload.get("exposure_id")))
            if not digits or "." in str(payload.get("exposure_id")):  # loose mode's extra frames: not paired
                return
            when = datetime.fromisoformat(str(payload["start"]).replace("Z", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        with self._lock:
            self.starts.setdefault((env.get("from"), int(digits[-1])), when)


def skew_breakdown(frames, starts: dict[tuple[str, int], datetime]) -> dict:
    """Median and p99 of: master command → slave about to expose (both nodes' event times), and each
    role's INDI start latency (DATE-OBS − its event time)."""
    date_obs = {(f.node, f.exposure_id): f.start for f in frames if f.exposure_id is not None}
    command, indi_master, indi_slave = [], [], []
    for (node, exposure_id), when in starts.items():
        if (node, exposure_id) in date_obs:
            latency = (date_obs[(node, exposure_id)] - when).total_seconds()
            (indi_master if node == "master" else indi_slave).append(latency)
        if node != "master" and ("master", exposure_id) in starts:
            command.append((when - starts[("master", exposure_id)]).total_seconds())

    def stats(values: list[float]) -> dict:
        return {"n": len(values), "p50_ms": ms(percentile(values, 0.5)), "p99_ms": ms(percentile(values, 0.99))}

    by_exposure: dict[int, list[float]] = {}
    for (node, exposure_id), when in starts.items():
        if node != "master" and ("master", exposure_id) in starts:
            by_exposure.setdefault(exposure_id, []).append((when - starts[("master", exposure_id)]).total_seconds())
    return {
        "command_to_slave_start": stats(command),
        # per master exposure: the slowest slave (is it the first frame, or every frame?)
        "command_to_slave_start_max_ms_by_exposure": {str(k): ms(max(v)) for k, v in sorted(by_exposure.items())},
        "master_indi_start": stats(indi_master),
        "slave_indi_start": stats(indi_slave),
        "note": "skew ~ command_to_slave_start + slave_indi_start − master_indi_start; event times are "
                "taken just before each node's camera.expose(), DATE-OBS by its INDI driver (ms resolution)",
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def run_session(slaves: int, frames: int, exposure: float, time_factor: float, workdir: Path,
                network: NetProfile | None = None, start_lead: float = 0.0) -> dict:
    exposure_wall = exposure * time_factor
    rig = SimRig(
        slaves=slaves, time_factor=time_factor, workdir=workdir, network=network,
        master_section={"target": "sync", "batches": 1, "sync": "strict", "start_lead": start_lead,
                        "refocus": {"after_batch": False},
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": exposure,
                                                "repeat": frames}]}},
        slave_section={"filters": ["Red", "Green", "Blue"], "exposure": exposure},
    )
    timings: dict[str, float | None] = {}
    events: StartEvents | None = None
    outcome = {"master_exit_code": None, "master_timed_out": False, "error": None}
    t0 = time.monotonic()
    with LoadSampler() as load:
        try:
            with rig:
                timings["rig_start_s"] = time.monotonic() - t0
                rig.start_slaves(timeout=60 + 10 * slaves)
                timings["slaves_up_s"] = time.monotonic() - t0
                events = StartEvents(rig.broker.host, rig.broker.port)
                if not events.start():
                    outcome["error"] = "the benchmark's own MQTT listener did not connect: no skew breakdown"
                rig.start_node("master")
                t_master = time.monotonic()
                budget = 90 + frames * (exposure_wall + 30)
                code = rig.wait_node("master", budget)
                timings["master_s"] = time.monotonic() - t_master
                if code is None:
                    outcome["master_timed_out"] = True
                    rig.stop_node("master")
                outcome["master_exit_code"] = code
                events.wait_measured(frames, [f"slave{i}" for i in range(1, slaves + 1)], timeout=30)
                events.close()
        except Exception as exc:  # noqa: BLE001 - report what happened with whatever reached the disk
            outcome["error"] = f"{type(exc).__name__}: {str(exc)[:800]}"
    timings["total_s"] = time.monotonic() - t0
    on_disk = read_frames(rig.images) if rig.images.exists() else []
    result = analyse(on_disk, slaves, frames, exposure, time_factor)
    if events is not None:
        events.close()
        result["skew_breakdown"] = skew_breakdown(on_disk, events.starts)
        # every slave frame's HFR arrives in frame_measured after its reply (issue 18: in a niced worker process)
        result["hfr_measured"] = {"per_slave": dict(sorted(events.measured.items())),
                                  "not_measured": dict(sorted(events.unmeasured.items()))}
    result.update(outcome)
    result["timings"] = {k: round(v, 1) for k, v in timings.items() if v is not None}
    result["load"] = load.summary()
    result["master_log_warnings"] = log_warnings(workdir / "master.1.log")
    if network is not None:
        result["network"] = {
            "profile": dataclasses.asdict(network),
            "stalls_injected": {name: p.stalls for name, p in rig.proxies.items()},
            "connections": {name: p.accepted for name, p in rig.proxies.items()},
        }
        p99 = result["skew"]["p99_ms"]
        result["targets_met"]["skew_p99_le_150ms_through_proxy"] = (
            None if p99 is None else p99 <= SKEW_P99_NETWORK_TARGET_MS)
    return result


def analyse(frames: list, slaves: int, frames_wanted: int, exposure: float, time_factor: float) -> dict:
    exposure_wall = exposure * time_factor
    nodes = by_node(frames)
    slave_names = [f"slave{i}" for i in range(1, slaves + 1)]
    skews = start_skews(frames)
    overlap = shutter_overlap(frames, time_factor)
    real = paired_overlap(frames, time_factor=1.0)
    ratio = exptime_ratio(frames)
    missing = missing_exposures(frames, slave_names)
    cycles = start_intervals(frames)
    summary = skew_summary(skews)
    per_slave = {}
    for name in slave_names:
        values = skews.get(name, [])
        per_slave[name] = {
            "frames": len(nodes.get(name, [])),
            "missing_exposure_ids": missing[name],
            "overlap": _round(overlap.get(name, 0.0 if nodes.get("master") else None)),
            "paired_overlap_at_real_length": _round(real.get(name, 0.0 if nodes.get("master") else None)),
            "exptime_ratio": _round(ratio.get(name, 0.0 if nodes.get("master") else None)),
            "skew_p50_ms": ms(percentile([abs(v) for v in values], 0.5)),
            "skew_max_ms": ms(max((abs(v) for v in values), default=None)),
            "skew_mean_signed_ms": ms(statistics.fmean(values)) if values else None,
        }
    overlaps = [s["overlap"] for s in per_slave.values() if s["overlap"] is not None]
    reals = [s["paired_overlap_at_real_length"] for s in per_slave.values()
             if s["paired_overlap_at_real_length"] is not None]
    cycle_mean = statistics.fmean(cycles) if cycles else None
    master_frames = len(nodes.get("master", []))
    return {
        "slaves": slaves,
        "frames_wanted_per_node": frames_wanted,
        "frames_per_node": {"master": master_frames, **{n: s["frames"] for n, s in per_slave.items()}},
        "frames_missing_total": (frames_wanted - master_frames) + sum(frames_wanted - s["frames"]
                                                                      for s in per_slave.values()),
        "skew": {
            "pairs": summary["pairs"],
            "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "max_ms": summary["max_ms"],
            "mean_signed_ms": summary["mean_signed_ms"],
            "note": "p99 of fewer than 100 pairs is an interpolation near the maximum" if summary["pairs"] < 100
                    else None,
        },
        # per master exposure id: the largest |skew| of any slave (the first frame, or every frame?)
        "skew_max_ms_by_exposure": skew_by_exposure(frames),
        "shutter_open": {
            "overlap_min": min(overlaps) if overlaps else None,
            "overlap_mean": _round(statistics.fmean(overlaps)) if overlaps else None,
            "paired_overlap_at_real_length_min": min(reals) if reals else None,
            "exptime_ratio_min": min((s["exptime_ratio"] for s in per_slave.values()
                                      if s["exptime_ratio"] is not None), default=None),
        },
        "cycle": {
            "start_to_start_p50_s": _round(percentile(cycles, 0.5), 3),
            "start_to_start_max_s": _round(max(cycles), 3) if cycles else None,
            "start_to_start_mean_s": _round(cycle_mean, 3),
            "overhead_fraction": _round(1 - exposure_wall / cycle_mean, 3) if cycle_mean else None,
            "overhead_s": _round(cycle_mean - exposure_wall, 3) if cycle_mean else None,
        },
        "targets_met": {
            "skew_p99_le_100ms": None if summary["p99_ms"] is None else summary["p99_ms"] <= SKEW_P99_TARGET_MS,
            "overlap_ge_98pct": None if not overlaps else min(overlaps) >= OVERLAP_TARGET,
            **({f"skew_p99_le_{SKEW_P99_TARGETS_ISSUE18_MS[slaves]:g}ms_issue18":
                None if summary["p99_ms"] is None else summary["p99_ms"] <= SKEW_P99_TARGETS_ISSUE18_MS[slaves]}
               if slaves in SKEW_P99_TARGETS_ISSUE18_MS else {}),
            "no_missing_frames": all(not s["missing_exposure_ids"] and s["frames"] == frames_wanted
                                     for s in per_slave.values()) and master_frames == frames_wanted,
        },
        "slave_detail": per_slave,
    }


def skew_by_exposure(frames: list) -> dict[str, float]:
    """Largest |slave DATE-OBS - master DATE-OBS| per master exposure id, clocks corrected as in start_skews."""
    def start(f):
        return f.start - timedelta(seconds=f.clock_offset) if f.clock_offset else f.start

    master = {f.exposure_id: start(f) for f in frames if f.node == "master" and f.exposure_id is not None}
    worst: dict[int, float] = {}
    for f in frames:
        if f.node != "master" and f.exposure_id in master:
            skew = abs((start(f) - master[f.exposure_id]).total_seconds())
            worst[f.exposure_id] = max(worst.get(f.exposure_id, 0.0), skew)
    return {str(k): ms(v) for k, v in sorted(worst.items())}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def log_warnings(path: Path, keep: int = 5) -> dict:
    """The master's WARNING/ERROR lines (e.g. 'exposure 7: no frame from ...'): count and the first few."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if re.search(r" (WARNING|ERROR) ", ln)]
    except OSError:
        return {"count": None, "first": []}
    return {"count": len(lines), "first": [ln[:300] for ln in lines[:keep]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slaves", type=int, nargs="+", default=[1, 8], metavar="N", help="slave counts (default 1 8)")
    ap.add_argument("--frames", type=int, default=10, help="master frames per session (default 10)")
    ap.add_argument("--frames-large", type=int, default=None, metavar="F",
                    help=f"master frames for rigs of {LARGE_RIG}+ slaves (default: --frames)")
    ap.add_argument("--exposure", type=float, default=300.0, help="exposure, simulated seconds (default 300)")
    ap.add_argument("--time-factor", type=float, default=0.01,
                    help="simulator time factor (default 0.01: a 300 s frame takes 3 s of wall time)")
    ap.add_argument("--workdir", help="where rigs write images and logs (default: a new directory in /tmp)")
    ap.add_argument("--network", choices=sorted(NETWORKS), default="loopback",
                    help="loopback (default), or wifi: each node reaches the broker through a delay proxy "
                         "(20 +- 10 ms, occasional 200 ms stalls)")
    ap.add_argument("--start-lead", type=float, default=None, metavar="S",
                    help="master.start_lead, the scheduled start's lead (default 0 on loopback, 0.3 with wifi)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the proxy's jitter and stalls (default 1)")
    ap.add_argument("--keep-images", action="store_true", help="keep the FITS frames (default: logs only)")
    args = ap.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="indisync-sync-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    runs = {}
    start_lead = args.start_lead if args.start_lead is not None else (0.3 if args.network == "wifi" else 0.0)
    for n in args.slaves:
        frames = args.frames_large if (args.frames_large and n >= LARGE_RIG) else args.frames
        rig_dir = workdir / f"slaves{n}-{datetime.now().strftime('%H%M%S')}"
        print(f"sync benchmark: master + {n} slave(s), {frames} x {args.exposure:g} s at time factor "
              f"{args.time_factor:g} in {rig_dir}", file=sys.stderr)
        profile = NETWORKS[args.network]
        runs[str(n)] = run_session(n, frames, args.exposure, args.time_factor, rig_dir,
                                   network=profile(seed=args.seed) if profile else None, start_lead=start_lead)
        if not args.keep_images:
            shutil.rmtree(rig_dir / "images", ignore_errors=True)
    report = {
        "benchmark": "sync",
        "command": " ".join([".venv/bin/python", "benchmarks/sync.py", *(argv if argv is not None else sys.argv[1:])]),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {
            "sync": "strict",
            "refocus": "off (master.refocus.after_batch: false): frames between refocus cycles",
            "exposure_s": args.exposure,
            "time_factor": args.time_factor,
            "exposure_wall_s": args.exposure * args.time_factor,
            "exposure_wall_note": "DATE-OBS is wall time, EXPTIME simulated seconds: a frame's shutter is open "
                                  "EXPTIME x time_factor of wall time, and overlap is computed on those intervals",
            "slave_filters": ["Red", "Green", "Blue"],
            "master_filter": "Luminance",
            "network": args.network,
            "start_lead_s": start_lead,
        },
        "notes": [
            "every node's indiserver, simulators and `indisync run` process share this machine's CPUs (see "
            "load): frame cycle overhead includes all nodes measuring HFR and writing files at once, which "
            "on a real rig happens on a computer per camera",
            "overlap is measured on accelerated wall-time intervals, where a given skew costs 1/time_factor "
            "times more of the frame than at real exposure length (paired_overlap_at_real_length)",
        ],
        "targets": {"skew_p99_ms_max": SKEW_P99_TARGET_MS, "overlap_min": OVERLAP_TARGET,
                    "skew_p99_ms_max_through_proxy": SKEW_P99_NETWORK_TARGET_MS},
        "runs": runs,
        "workdir": str(workdir),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
