"""`indisync center`: slew to a J2000 target and plate-solve and correct until it is centred."""

from __future__ import annotations

import json
import logging

from ..errors import IndisyncError

HELP = "centre the mount on a J2000 target: slew, solve, correct, re-slew until within acquire.tolerance_arcsec"
log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--ra", required=True, help="J2000 RA: degrees (150.1) or hours h:m:s (10:00:24)")
    parser.add_argument("--dec", required=True, help="J2000 Dec: degrees (-5.5) or d:m:s (-05:30:00)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object (the last line)")


def run(args, cfg) -> int:
    from ..acquire.centering import Target, center
    from ..acquire.geometry import parse_dec, parse_ra
    from ..devices.session import open_devices

    try:
        target = Target(parse_ra(args.ra), parse_dec(args.dec))
    except ValueError as exc:
        raise IndisyncError(str(exc)) from None
    settings = cfg.acquire

    def on_attempt(a) -> None:
        if args.json:
            return
        if a.error:
            print(f"attempt {a.number}: not solved: {a.error}", flush=True)
        else:
            print(f"attempt {a.number}: {a.offset_arcsec:.1f}\" from the target "
                  f"(east {a.offset_east_arcsec:+.1f}\", north {a.offset_north_arcsec:+.1f}\"; "
                  f"solved in {a.solve_seconds:.1f}s)", flush=True)

    with open_devices(cfg.indi, need=("camera", "mount"), want=("mount",)) as dev:
        dev.mount.unpark()  # asked for from the command line: this script unparks, the slews never do
        result = center(dev.mount, dev.camera, target, settings, on_attempt=on_attempt)
    if args.json:
        print(json.dumps(result.as_dict()))
    elif result.centered:
        print(f"centred: {result.final_offset_arcsec:.1f}\" from the target after {len(result.attempts)} "
              f"attempt(s), {result.seconds:.0f}s")
    else:
        print(f"NOT centred: {result.reason}")
    return 0 if result.centered else 1
