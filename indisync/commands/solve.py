"""`indisync solve`: plate-solve a frame (taken now, or read from a file) with astrometry.net.

Hints: the scale from the camera's pixel size and binning and the focal length (config
acquire.focal_length_mm, else the mount's TELESCOPE_INFO, else the frame's FOCALLEN); the position
from the mount (its JNow EQUATORIAL_EOD_COORD converted to J2000), or for --file the frame's RA/DEC.
The offset printed is from that position to the solved centre.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import IndisyncError

HELP = "plate-solve a frame (take one, or --file) and print its J2000 centre, rotation, scale and pointing offset"
log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--exposure", type=float, metavar="S", help="take a frame of S seconds (default acquire.exposure)")
    source.add_argument("--file", metavar="F", help="solve this FITS file instead of taking a frame")
    parser.add_argument("--bin", type=int, default=None, metavar="N", help="binning for the frame (default acquire.binning)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args, cfg) -> int:
    settings = cfg.acquire
    if args.file:
        result = _solve_file(Path(args.file), settings)
    else:
        exposure = settings.exposure if args.exposure is None else args.exposure
        if exposure <= 0:
            raise IndisyncError(f"--exposure must be positive seconds, got {exposure}")
        binning = settings.binning if args.bin is None else args.bin
        if not 1 <= binning <= 16:
            raise IndisyncError(f"--bin must be 1..16, got {binning}")
        result = _solve_live(cfg, exposure, binning)
    print(json.dumps(result) if args.json else _text(result))
    return 0


def _solve_file(path: Path, settings) -> dict:
    from astropy.io import fits

    from ..acquire.live import solution_report
    from ..acquire.solver import hints_from_header, solve_file

    try:
        header = fits.getheader(path)
    except (OSError, ValueError) as exc:
        raise IndisyncError(f"cannot read {path} as FITS: {exc}") from None
    hints = hints_from_header(header, settings)
    solution = solve_file(path, hints, settings)
    ref = (hints.ra, hints.dec) if hints.ra is not None else None
    return solution_report(solution, hints, ref, "header")


def _solve_live(cfg, exposure: float, binning: int) -> dict:
    from ..acquire.live import take_and_solve
    from ..devices.session import open_devices

    with open_devices(cfg.indi, need=("camera",), want=("mount",)) as dev:
        return take_and_solve(dev.camera, dev.mount, cfg.acquire, exposure, binning)


def hms(deg: float) -> str:
    total = round((deg % 360.0) / 15.0 * 36000)  # tenths of a second
    h, rem = divmod(total, 36000)
    m, rem = divmod(rem, 600)
    return f"{h % 24:02d}:{m:02d}:{rem / 10:04.1f}"


def dms(deg: float) -> str:
    total = round(abs(deg) * 3600)
    d, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{'-' if deg < 0 else '+'}{d:02d}:{m:02d}:{s:02d}"


def _text(r: dict) -> str:
    lines = [
        f"centre  RA {hms(r['ra'])} ({r['ra']:.5f} deg)  Dec {dms(r['dec'])} ({r['dec']:.5f} deg)  J2000",
        f"rotation {r['rotation_deg']:.2f} deg (image up, east of north; parity {r['parity']:+d}), "
        f"scale {r['scale_arcsec']:.3f}\"/px, field {r['field_w_arcmin']:.1f}' x {r['field_h_arcmin']:.1f}'",
    ]
    if r["offset_arcsec"] is not None:
        what = {"mount": "the mount's position (J2000)", "hint": "the given position"}.get(
            r["offset_from"], "the frame's RA/DEC")
        lines.append(f"offset from {what}: {r['offset_arcsec']:.1f}\" "
                     f"(east {r['offset_east_arcsec']:+.1f}\", north {r['offset_north_arcsec']:+.1f}\")")
    else:
        lines.append("offset: no reference position (no mount, no RA/DEC in the frame)")
    lines.append(f"solved in {r['seconds']:.1f}s with {r['index']} ({r['stars']} stars; scale hint from {r['scale_source']})")
    return "\n".join(lines)
