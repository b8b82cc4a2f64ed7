"""`indisync expose`: take one frame with the configured camera and write it as FITS."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import IndisyncError
from ..sequence.naming import write_fits_atomically

HELP = "take one exposure and write it to a FITS file (never overwriting one)"
log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--exposure", type=float, required=True, metavar="S", help="exposure time in seconds")
    parser.add_argument("--out", required=True, metavar="PATH", help="FITS file to write; must not exist")
    parser.add_argument("--filter", metavar="NAME", help="filter name as the wheel calls it (see `indisync filters`)")
    parser.add_argument("--bin", type=int, default=1, metavar="N", help="binning, N x N (default 1)")
    parser.add_argument("--type", default="light", choices=["light", "dark", "flat", "bias"], help="frame type")


def run(args, cfg) -> int:
    # Heavy modules load here, not at import: `indisync --help` imports every command (issue 13).
    from ..devices.session import open_devices

    out = Path(args.out)
    if out.exists():
        raise IndisyncError(f"{out} already exists; indisync never overwrites a frame. Choose another --out path.")
    if args.exposure <= 0:
        raise IndisyncError(f"--exposure must be positive seconds, got {args.exposure}")
    if not 1 <= args.bin <= 16:
        raise IndisyncError(f"--bin must be 1..16, got {args.bin}")
    need = ("camera", "filter_wheel") if args.filter else ("camera",)
    with open_devices(cfg.indi, need=need, want=("focuser", "filter_wheel")) as dev:
        if args.filter:
            dev.filter_wheel.slot_of(args.filter)  # unknown name: error listing the wheel's names, nothing taken
            dev.filter_wheel.select(args.filter)
        hdu = dev.camera.expose(args.exposure, args.bin, args.type)
        header = hdu.header
        # The simulator's own FILTER/FOCUSPOS come from whatever it snoops; ours come from our devices.
        if dev.filter_wheel is not None:
            header["FILTER"] = (dev.filter_wheel.current, "filter name from the wheel's FILTER_NAME")
        if dev.focuser is not None:
            header["FOCUSPOS"] = (dev.focuser.position, "focuser position, steps")
            temp = dev.focuser.temperature
            if temp is not None:
                header["FOCTEMP"] = (temp, "[C] focuser temperature")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_fits_atomically(out, hdu)
    except FileExistsError:
        raise IndisyncError(f"{out} appeared while exposing; not overwritten. Choose another --out path.") from None
    print(out)
    return 0
