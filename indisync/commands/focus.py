"""`indisync focus`: one autofocus run with the configured camera and focuser.

Exit status: 0 focused, 3 autofocus failed (the focuser is back at its start position; the reason is
printed), 2 could not start (no INDI server, no camera or focuser, bad config).
"""

from __future__ import annotations

import json
import sys

from ..focus.interfaces import FocusProgress

HELP = "run one autofocus (V-curve sweep, fit, check frame) with the configured camera and focuser"

EXIT_FAILED = 3


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on the last line of stdout "
                             "(progress lines go to stderr)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where the V-curve PNG and JSON record go (default: focus.output_dir)")


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..devices.session import open_devices
    from ..node.focusing import autofocus_with_devices

    progress_out = sys.stderr if args.json else sys.stdout

    def progress(event: FocusProgress) -> None:
        print(_progress_line(event), file=progress_out, flush=True)

    with open_devices(cfg.indi, need=("camera", "focuser"), want=("filter_wheel",)) as dev:
        result = autofocus_with_devices(dev, cfg, progress=progress, output_dir=args.output_dir)
    if args.json:
        print(json.dumps(result.summary()), flush=True)
    else:
        if result.ok:
            print(f"focused at {result.position} (started at {result.start_position}), HFR {result.hfr:.2f} px, "
                  f"{result.model} fit ±{result.sigma_position:.0f} steps, {result.frames} frames")
        else:
            print(f"autofocus failed: {result.reason}")
            print(f"focuser {'back at' if result.restored else 'NOT back at'} its start position "
                  f"{result.start_position} (now {result.position})")
        if result.plot:
            print(f"V-curve: {result.plot}")
    return 0 if result.ok else EXIT_FAILED


def _progress_line(e: FocusProgress) -> str:
    if e.phase in ("done", "failed"):
        return f"{e.phase}: {e.message}"
    hfr = f"HFR {e.hfr:5.2f} px" if e.hfr is not None else "HFR   -     "
    return f"frame {e.frame:2d}  {e.phase:6s}  position {e.position:7d}  {hfr}  stars {e.stars:4d}"
