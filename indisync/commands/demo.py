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


def run(args, cfg) -> int:
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
    return 0
