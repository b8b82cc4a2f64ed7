"""Pi-sized figures (issue 13): start-up time and memory of the commands and nodes; prints one JSON document.

Each figure is the median of ``--runs`` runs (default 5), with every run's value beside it:

- ``help``: `indisync --help`, wall seconds and peak RSS (the child's ru_maxrss from wait4);
- ``status``: `indisync status --once --json` against a live private mosquitto with one node on it;
- ``idle_slave``: RSS (VmRSS) of `indisync run --role slave` once it is up and idle (INDI simulators
  connected, broker reached, no frame taken yet), and its VmHWM;
- ``autofocus``: peak RSS of `indisync focus --json` on the INDI CCD simulator at 1280x1024 and at
  26 MP (6224x4168), the whole process: PyIndi's BLOB, the decoded frame and the measurement;
- ``skew``: start skew p99 with 2 slaves, every node behind the delay proxy (20 +- 10 ms, 1 % of
  chunks stalled 200 ms), from benchmarks/sync.py --network wifi (``--skip-skew`` leaves it out);
- ``clock_offset``: benchmarks/clock.py's estimate vs offsets injected by config (tests only), the
  worst error of each run.

    .venv/bin/python benchmarks/footprint.py [--runs 5] [--af-runs 5] [--af-26mp-runs 1] [--skip-26mp] [--skip-skew]
    .venv/bin/python benchmarks/footprint.py --only-autofocus --af-runs 5 --skip-26mp   # autofocus alone

Goals: help <= 0.3 s / <= 40 MB; status <= 0.5 s; idle slave <= 80 MB; autofocus <= 150 MB at
1280x1024 and <= 450 MB at 26 MP; skew p99 <= 150 ms through the proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from indisync.sim.broker import Mosquitto
from indisync.sim.indi import IndiServer, get_numbers, set_number
from indisync.sim.rig import SimRig

REPO = Path(__file__).resolve().parents[1]
INDISYNC = [sys.executable, "-m", "indisync.cli"]
GOALS = {
    "help_wall_s": 0.3, "help_peak_rss_mb": 40, "status_wall_s": 0.5, "idle_slave_rss_mb": 80,
    "autofocus_1280x1024_peak_rss_mb": 150, "autofocus_26mp_peak_rss_mb": 450, "skew_p99_ms": 150,
    "clock_offset_error_ms": 10,
}
PLOT = os.environ.get("FOOTPRINT_NO_PLOT") is None  # set: autofocus writes no V-curve PNG (nor its JSON record)
SIZES = {"1280x1024": (1280, 1024), "26mp": (6224, 4168)}


def run_child(cmd: list[str], timeout: float, **kwargs) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MB, exit code, stdout) of one child process."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, **kwargs)
    deadline = started + timeout
    out = []
    import threading

    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, "".join(out)


def summary(values: list[float], digits: int = 3) -> dict:
    return {"median": round(statistics.median(values), digits), "runs": [round(v, digits) for v in values]}


def measure_help(runs: int) -> dict:
    walls, rss = [], []
    for _ in range(runs):
        wall, peak, code, _ = run_child([*INDISYNC, "--help"], 60)
        assert code == 0, "indisync --help failed"
        walls.append(wall)
        rss.append(peak)
    return {"wall_s": summary(walls), "peak_rss_mb": summary(rss, 1)}


def measure_status(runs: int) -> dict:
    with Mosquitto() as broker:
        node = subprocess.Popen([sys.executable, "-m", "indisync.protocol.demo_node", "--port", str(broker.port),
                                 "--name", "ota9"], stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert node.stdout.readline().strip() == "ready"
            walls, rss, listed = [], [], []
            for _ in range(runs):
                wall, peak, code, out = run_child(
                    [*INDISYNC, "status", "--once", "--json", "--broker", f"{broker.host}:{broker.port}"], 60)
                assert code == 0, f"indisync status failed ({code})"
                listed.append(len(json.loads(out)["nodes"]))
                walls.append(wall)
                rss.append(peak)
        finally:
            node.kill()
            node.wait(5)
    return {"wall_s": summary(walls), "peak_rss_mb": summary(rss, 1), "nodes_listed": listed}


def _proc_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    raise KeyError(key)


def _hfr_workers(parent: int) -> list[int]:
    """Pids of ``parent``'s children running indisync.node.hfr_worker (issue 18)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"indisync.node.hfr_worker" in (entry / "cmdline").read_bytes() \
                    and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def measure_idle_slave(runs: int, settle: float = 3.0) -> dict:
    import uuid

    from indisync.config import MqttConfig
    from indisync.protocol.commands import CommandClient
    from indisync.protocol.topics import Topics
    from indisync.protocol.transport import MqttTransport

    rss, hwm, after, worker_rss, worker_hwm = [], [], [], [], []
    with SimRig(slaves=1, time_factor=0.01, slave_section={"filters": ["Red", "Green"], "exposure": 30.0}) as rig:
        cfg = MqttConfig(host=rig.broker.host, port=rig.broker.port)
        transport = MqttTransport(cfg, f"footprint-{uuid.uuid4().hex[:6]}")
        client = CommandClient(transport, Topics(cfg.topic_prefix), "master", resend_every=1.0)
        transport.start()
        transport.wait_connected(10)
        try:
            for _ in range(runs):
                proc = rig.start_node("slave1")
                rig.wait_up("slave1", timeout=60)
                time.sleep(settle)  # heartbeats, retained state: at rest
                rss.append(_proc_kb(proc.pid, "VmRSS") / 1024)
                hwm.append(_proc_kb(proc.pid, "VmHWM") / 1024)
                client.call("slave1", "expose", {"duration": 60, "target": "footprint"}, timeout=60)
                time.sleep(settle)  # the frame measured after the reply; idle again
                after.append(_proc_kb(proc.pid, "VmRSS") / 1024)
                # issue 18: the frame's HFR is measured by the slave's niced worker process (a child)
                # within slave.measure_after_reply (3 s) of the reply; count it apart
                time.sleep(settle + 3.0)
                for pid in _hfr_workers(proc.pid):
                    worker_rss.append(_proc_kb(pid, "VmRSS") / 1024)
                    worker_hwm.append(_proc_kb(pid, "VmHWM") / 1024)
                rig.stop_node("slave1")
        finally:
            client.close()
            transport.stop()
    return {"rss_mb": summary(rss, 1), "peak_rss_mb": summary(hwm, 1), "rss_after_first_frame_mb": summary(after, 1),
            "hfr_worker_rss_after_first_frame_mb": summary(worker_rss, 1) if worker_rss else None,
            "hfr_worker_peak_rss_mb": summary(worker_hwm, 1) if worker_hwm else None,
            "note": "rss_mb at rest: devices connected, broker reached, no frame yet. astropy.io.fits, numpy and scipy "
                    "load with the first frame (rss_after_first_frame_mb, 1280x1024 simulator frame) "
                    "and stay loaded"}


def measure_autofocus(size: str, runs: int, workdir: Path) -> dict:
    width, height = SIZES[size]
    rss, walls, statuses = [], [], []
    with IndiServer(drivers=["indi_simulator_ccd", "indi_simulator_focus", "indi_simulator_telescope"], time_factor=0.1,
                    workdir=workdir / f"indi-{size}") as server:
        set_number(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS",
                   {"SIM_XRES": width, "SIM_YRES": height})
        got = get_numbers(server.host, server.port, "CCD Simulator", "SIMULATOR_SETTINGS")
        if (int(got["SIM_XRES"]), int(got["SIM_YRES"])) != (width, height):
            return {"error": f"the CCD simulator kept {got['SIM_XRES']}x{got['SIM_YRES']}, not {width}x{height}"}
        set_number(server.host, server.port, "CCD Simulator", "SIM_FOCUSING",
                   {"SIM_FOCUS_POSITION": 50300, "SIM_FOCUS_MAX": 10000, "SIM_SEEING": 3.0})
        config = workdir / f"focus-{size}.yaml"
        config.write_text(yaml.safe_dump({
            "indi": {"host": server.host, "port": server.port, "filter_wheel": None, "mount": None,
                     "guide_camera": None, "readout_timeout": 300},
            "focus": {"output_dir": str(workdir / f"focus-{size}") if PLOT else None},
        }))
        for _ in range(runs):
            set_number(server.host, server.port, "Focuser Simulator", "ABS_FOCUS_POSITION",
                       {"FOCUS_ABSOLUTE_POSITION": 50000})
            time.sleep(1.0)
            wall, peak, code, out = run_child([*INDISYNC, "focus", "--json", "--config", str(config)], 900)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            statuses.append(json.loads(lines[-1]).get("status") if lines else f"exit {code}")
            rss.append(peak)
            walls.append(wall)
    return {"peak_rss_mb": summary(rss, 1), "wall_s": summary(walls, 1), "status": statuses,
            "frame": f"{width}x{height}", "frame_uint16_mb": round(width * height * 2 / 2**20, 1)}


def measure_skew() -> dict:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sync.py"), "--network", "wifi", "--slaves", "2",
                          "--frames", "10"], capture_output=True, text=True, timeout=1800, cwd=REPO)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    run = json.loads(out.stdout)["runs"]["2"]
    return {"p99_ms": run["skew"]["p99_ms"], "p50_ms": run["skew"]["p50_ms"], "max_ms": run["skew"]["max_ms"],
            "pairs": run["skew"]["pairs"], "network": run.get("network"),
            "note": "one sync.py session (20 skew pairs), not a median of 5: each session takes minutes"}


def measure_clock(runs: int) -> dict:
    """benchmarks/clock.py's estimate vs injected offsets, ``runs`` times; the median of each run's worst error."""
    try:
        from clock import measure_clock_offsets  # benchmarks/clock.py, next to this script
    except ImportError:
        return {"measured_elsewhere": "benchmarks/clock.py (issue 13 item 4) is not on this branch"}
    results = [measure_clock_offsets() for _ in range(runs)]
    worst = [r["max_error_ms"] for r in results if r["max_error_ms"] is not None]
    return {"max_error_ms": summary(worst, 2) if worst else None,
            "injected_s": [row["injected_s"] for row in results[0]["nodes"]],
            "last_run": results[-1], "meets_target": all(r["meets_target"] for r in results)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (default 5)")
    ap.add_argument("--af-runs", type=int, default=None, help="autofocus runs per frame size (default --runs)")
    ap.add_argument("--af-26mp-runs", type=int, default=None,
                    help="26 MP autofocus runs (default --af-runs; each takes ~3 min on this machine)")
    ap.add_argument("--skip-26mp", action="store_true", help="leave out the 26 MP autofocus (minutes on this machine)")
    ap.add_argument("--skip-skew", action="store_true", help="leave out the skew session through the proxy")
    ap.add_argument("--only-autofocus", action="store_true",
                    help="measure the autofocus figures alone (no help, status, idle slave, skew, clock)")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="indisync-footprint-"))
    started = time.monotonic()
    report: dict = {
        "benchmark": "footprint",
        "command": " ".join([".venv/bin/python", "benchmarks/footprint.py", *(argv if argv is not None else sys.argv[1:])]),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                 "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "goals": GOALS,
    }
    if not args.only_autofocus:
        report["help"] = measure_help(args.runs)
        report["status"] = measure_status(args.runs)
        report["idle_slave"] = measure_idle_slave(args.runs)
    af_runs = args.af_runs or args.runs
    report["autofocus"] = {"1280x1024": measure_autofocus("1280x1024", af_runs, workdir)}
    if not args.skip_26mp:
        report["autofocus"]["26mp"] = measure_autofocus("26mp", args.af_26mp_runs or af_runs, workdir)
    if not args.skip_skew and not args.only_autofocus:
        report["skew_through_proxy"] = measure_skew()
    if not args.only_autofocus:
        report["clock_offset"] = measure_clock(args.runs)
    af = report["autofocus"]
    met = {}
    if not args.only_autofocus:
        met.update({
            "help_wall_s": report["help"]["wall_s"]["median"] <= GOALS["help_wall_s"],
            "help_peak_rss_mb": report["help"]["peak_rss_mb"]["median"] <= GOALS["help_peak_rss_mb"],
            "status_wall_s": report["status"]["wall_s"]["median"] <= GOALS["status_wall_s"],
            "idle_slave_rss_mb": report["idle_slave"]["rss_mb"]["median"] <= GOALS["idle_slave_rss_mb"],
        })
    for size, key in (("1280x1024", "autofocus_1280x1024_peak_rss_mb"), ("26mp", "autofocus_26mp_peak_rss_mb")):
        if size in af and "peak_rss_mb" in af[size]:
            met[key] = af[size]["peak_rss_mb"]["median"] <= GOALS[key]
    skew = report.get("skew_through_proxy", {})
    if skew.get("p99_ms") is not None:
        met["skew_p99_ms"] = skew["p99_ms"] <= GOALS["skew_p99_ms"]
    clock = report.get("clock_offset", {}).get("max_error_ms")
    if clock:
        met["clock_offset_error_ms"] = clock["median"] <= GOALS["clock_offset_error_ms"]
    report["goals_met"] = met
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
