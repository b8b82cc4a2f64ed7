"""`indisync demo`: a whole accelerated night on simulators — master, N slaves, refocus — and a summary."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from ..errors import IndisyncError

HELP = "run an accelerated session on INDI simulators: a master, N slaves, batches with refocus; print a summary"


def add_arguments(parser) -> None:
    parser.add_argument("--slaves", type=int, default=2, metavar="N", help="slave nodes (default 2)")
    parser.add_argument("--batches", type=int, default=2, metavar="B", help="batches of the sequence (default 2)")
    parser.add_argument("--frames", type=int, default=5, metavar="F", help="master frames per batch (default 5)")
    parser.add_argument("--exposure", type=float, default=600, metavar="S", help="exposure, seconds (default 600)")
    parser.add_argument("--time-factor", type=float, default=0.01,
                        help="simulator time factor (default 0.01: a 600 s exposure takes 6 s)")
    parser.add_argument("--workdir", metavar="DIR", help="where images, focus records and logs go "
                        "(default ./indisync-demo/<time>)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--night", action="store_true",
                        help="instead: a short unattended night (time factor 1, ~2 min) with one rain shower; "
                             "prints the night's state timeline")


def run(args, cfg) -> int:
    if args.night:
        return run_night(args)
    from ..sim.report import filter_counts, read_focus_runs, read_frames, rotation_string, skew_summary, start_skews
    from ..sim.rig import SimRig

    if not 0 <= args.slaves <= 16:
        raise IndisyncError("--slaves must be 0..16")
    if args.batches < 1 or args.frames < 1:
        raise IndisyncError("--batches and --frames must be at least 1")
    workdir = Path(args.workdir or Path("indisync-demo") / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    if workdir.exists() and any(workdir.iterdir()):
        raise IndisyncError(f"{workdir} is not empty; choose another --workdir (a demo never overwrites files)")
    rig = SimRig(
        slaves=args.slaves, time_factor=args.time_factor, workdir=workdir,
        master_section={"target": "M42", "batches": args.batches, "sequence": {"slots": [
            {"type": "light", "filter": "Luminance", "exposure": args.exposure, "repeat": args.frames}]}},
        slave_section={"filters": ["Red", "Green", "Blue"], "exposure": args.exposure},
        record_section={"report": True},
    )
    say = (lambda *a: None) if args.json else print
    say(f"indisync demo: master + {args.slaves} slave(s), {args.batches} batch(es) of {args.frames} x "
        f"{args.exposure:g} s, time factor {args.time_factor:g}; files in {workdir}")
    started = time.monotonic()
    with rig:
        for name, node in rig.nodes.items():
            say(f"  {name}: indiserver {node.indi.address}, config {node.config_path.name}")
        say(f"  broker: mosquitto at {rig.broker.host}:{rig.broker.port}  "
            f"(watch: indisync status --broker {rig.broker.host}:{rig.broker.port})")
        rig.start_slaves()
        rig.start_node("master")
        per_frame = args.exposure * args.time_factor + 10
        budget = args.batches * (args.frames * per_frame + 240) + 60
        code = rig.wait_node("master", budget)
        if code is None:
            rig.stop_node("master")
            raise IndisyncError(f"the master did not finish within {budget:.0f} s; logs are in {workdir}")
        if code != 0:
            raise IndisyncError(f"the master exited with code {code}; see {workdir}/master.1.log")
    elapsed = time.monotonic() - started
    reports = sorted((rig.images / "master" / "nights").glob("report-*/index.html"))

    frames = read_frames(rig.images)
    focus = read_focus_runs(workdir / "focus")
    skews = skew_summary(start_skews(frames))
    grouped = {}
    for frame in frames:
        grouped.setdefault(frame.node, []).append(frame)
    summary = {
        "seconds": round(elapsed, 1),
        "frames": filter_counts(frames),
        "rotation": {n: rotation_string(fs) for n, fs in grouped.items()},
        "autofocus": {
            n: [{"status": r["status"], "position": r["position"], "true_focus": rig.nodes[n].true_focus,
                 "error_steps": abs(r["position"] - rig.nodes[n].true_focus) if r["status"] == "ok" else None,
                 "frames": r["frames"], "reason": r.get("reason"), "plot": r.get("plot")} for r in runs]
            for n, runs in focus.items() if n in rig.nodes
        },
        "start_skew": skews,
        "images": str(rig.images),
        "logs": str(workdir),
        "report": str(reports[-1]) if reports else None,  # the master writes it at the end of its sequence
        "shutter": _report_shutter(reports[-1]) if reports else {},
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"\nfinished in {elapsed:.0f} s")
    print("frames per node and filter:")
    for node, counts in summary["frames"].items():
        print(f"  {node:8s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) +
              f"   {summary['rotation'][node]}")
    print("autofocus (the simulator's true focus shown for comparison; nodes only see images):")
    for node, runs in summary["autofocus"].items():
        for r in runs:
            extra = f"off by {r['error_steps']} steps" if r["error_steps"] is not None else r["reason"]
            print(f"  {node:8s} {r['status']:6s} at {r['position']} (true {r['true_focus']}), {r['frames']} frames, {extra}")
    if skews["pairs"]:
        print(f"start skew slave vs master (DATE-OBS): p50 {skews['p50_ms']} ms, p99 {skews['p99_ms']} ms, "
              f"max {skews['max_ms']} ms over {skews['pairs']} frames")
    print(f"images: {summary['images']}\nfocus plots, node logs, configs: {summary['logs']}")
    print(f"night report: {summary['report'] or 'not written (see the master log)'}")
    for node, d in summary["shutter"].items():
        pct = "-" if d["shutter_open_pct"] is None else f"{d['shutter_open_pct']:.1f} %"
        print(f"  {node:8s} shutter open {pct} of the window ({d['shutter_open_s']:.1f} s real), "
              f"EXPTIME total {d['exptime_s']:g} s")
    return 0


def _report_shutter(index: Path) -> dict:
    """Per node, the report's real shutter-open share and its EXPTIME total (report.json beside index.html)."""
    try:
        nodes = json.loads((index.parent / "report.json").read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return {}
    return {n: {k: d.get(k) for k in ("shutter_open_pct", "shutter_open_s", "exptime_s")}
            for n, d in nodes.items() if d.get("frames")}


def run_night(args) -> int:
    """A short night at a site where it is midnight now: cool, slew, image; rain (Precip 10) a while in;
    everything aborts and parks; dry again; after safety.safe_for the night resumes; end_at ends it:
    park, warm, done. Time factor 1 with 5 s exposures, so the windows use real durations."""
    import threading
    from datetime import timedelta, timezone

    import yaml

    from ..config import MqttConfig
    from ..protocol import messages
    from ..protocol.transport import MqttTransport
    from ..sim.indi import set_precipitation
    from ..sim.night import LATITUDE, WEATHER, longitude_for_local_hour, prepare_mount, target_east_high
    from ..sim.rig import SimRig

    workdir = Path(args.workdir or Path("indisync-demo") / datetime.now().strftime("night-%Y%m%d-%H%M%S")).resolve()
    if workdir.exists() and any(workdir.iterdir()):
        raise IndisyncError(f"{workdir} is not empty; choose another --workdir (a demo never overwrites files)")
    slaves = min(args.slaves, 2)
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    exposure, safe_for = 5.0, 8.0
    rig = SimRig(
        slaves=slaves, time_factor=1.0, workdir=workdir, master_drivers=("indi_simulator_weather",),
        node_sections={"camera": {"cooling": {"setpoint": -3, "tolerance": 0.5, "timeout": 60, "warm_to": 5}}},
        master_sections={"site": {"latitude": LATITUDE, "longitude": round(lon, 4), "elevation": 0},
                         "night": {"min_altitude": 30, "end_at": None},
                         "indi": {"weather": WEATHER}, "safety": {"safe_for": safe_for, "stale_after": 10, "poll": 0.2}},
        master_section={"target": {"name": "DEMO", "ra": round(ra, 4), "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": exposure,
                                                "repeat": 100}]}, "refocus": {"after_batch": False}},
        slave_section={"filters": ["Red", "Green", "Blue"], "exposure": exposure},
    )
    print(f"indisync demo --night: master + {slaves} slave(s), site {LATITUDE:g} N {lon:.2f} E (local midnight), "
          f"{exposure:g} s frames, one rain shower; files in {workdir}")
    timeline: list[tuple[float, dict]] = []
    lock = threading.Lock()
    started = time.monotonic()
    with rig:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec, weather=True)
        mqtt = MqttConfig(host=rig.broker.host, port=rig.broker.port)
        transport = MqttTransport(mqtt, f"demo-night-{int(started)}")

        def on_event(msg):
            try:
                env = messages.decode(msg.payload)
            except Exception:  # noqa: BLE001 - not a message of ours
                return
            if env.type == "night_state":
                with lock:
                    timeline.append((time.monotonic() - started, env.payload))
                print(f"  {time.monotonic() - started:6.1f} s  {env.payload['from'] or '-':>15} -> "
                      f"{env.payload['to']:<15} {env.payload.get('reason') or ''}")

        transport.subscribe(f"{mqtt.topic_prefix}/master/event", on_event)
        transport.start()
        try:
            end_at = datetime.now(timezone.utc) + timedelta(seconds=110)
            path = rig.nodes["master"].config_path
            config = yaml.safe_load(path.read_text())
            config["night"]["end_at"] = end_at.isoformat().replace("+00:00", "Z")
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            print(f"  broker: mosquitto at {rig.broker.host}:{rig.broker.port} "
                  f"(watch: indisync status --broker {rig.broker.host}:{rig.broker.port}); end_at {end_at:%H:%M:%S} UTC")
            rig.start_slaves()
            rig.start_node("master")

            def reached(state):
                with lock:
                    return any(p["to"] == state for _, p in timeline)

            deadline = time.monotonic() + 90
            while not reached("imaging") and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2 * exposure + 4)
            print(f"  {time.monotonic() - started:6.1f} s  ~~~ rain: WEATHER_CONTROL.Precip = 10 ~~~")
            set_precipitation(indi.host, indi.port, 10)
            time.sleep(10)
            print(f"  {time.monotonic() - started:6.1f} s  ~~~ dry: Precip = 0 (resumes after {safe_for:g} s safe) ~~~")
            set_precipitation(indi.host, indi.port, 0)
            code = rig.wait_node("master", 200)
        finally:
            transport.stop()
        if code is None:
            rig.stop_node("master")
            raise IndisyncError(f"the master did not end its night; logs are in {workdir}")
    frames = sorted(p.name for p in rig.images.rglob("*.fits"))
    print(f"\nnight over in {time.monotonic() - started:.0f} s, master exit code {code}; {len(frames)} frames "
          f"(no aborted frame is ever written):")
    for node in rig.nodes:
        names = [f for f in frames if f.startswith(f"{node}_")]
        print(f"  {node:8s} {len(names)} frames")
    print(f"images: {rig.images}\nnode logs and configs: {workdir}")
    return 0 if code == 0 else 1
