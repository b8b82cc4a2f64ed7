"""Take one science frame with a node's devices and store it: filter, exposure, HFR, header, file.

Frames are written atomically under a name that is never reused (indisync.sequence.naming).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from ..analysis.measure import measure_frame
from ..config import Config
from ..sequence.headers import apply_frame_header
from ..sequence.naming import save_frame

log = logging.getLogger(__name__)


@dataclass
class FrameRequest:
    duration: float
    filter_name: str | None  # None: leave the wheel where it is (or there is none)
    frame_type: str = "light"
    binning: int = 1
    target: str | None = None
    suffix: str | None = None
    batch: int | None = None
    seq_index: int | None = None
    exposure_id: int | None = None
    clock_offset_s: float | None = None  # this node's clock minus the master's (CLKOFFS), if measured


@dataclass
class FrameRecord:
    path: Path
    filter_name: str | None
    start: str  # DATE-OBS
    duration: float
    hfr: float | None
    stars: int | None


def take_frame(devices, cfg: Config, request: FrameRequest,
               on_start: Callable[[FrameRequest], None] | None = None,
               on_exposed: Callable[[], None] | None = None) -> FrameRecord:
    """``on_start`` runs with the wheel in place just before the shutter opens; ``on_exposed`` as
    soon as the image is in, before it is measured and written (a slave moves its wheel then)."""
    if request.filter_name is not None and devices.filter_wheel is not None:
        devices.filter_wheel.select(request.filter_name)
    # Read now: once on_exposed has started the next wheel move, the wheel no longer says it.
    filter_name = devices.filter_wheel.current if devices.filter_wheel is not None else request.filter_name
    if on_start is not None:
        on_start(request)
    hdu = devices.camera.expose(request.duration, request.binning, request.frame_type)
    _apply_test_clock_skew(hdu.header, cfg.testing.clock_skew_s)
    if on_exposed is not None:
        on_exposed()
    hfr = stars = None
    if request.frame_type == "light" and hdu.data is not None:
        try:
            measured = measure_frame(hdu.data, cfg.analysis)
            stars = measured.star_count
            hfr = measured.median_hfr if stars and math.isfinite(measured.median_hfr) else None
        except Exception as exc:  # a measurement problem must never cost the frame
            log.warning("could not measure HFR: %s", exc)
    focuser = devices.focuser
    try:
        _annotate(hdu, cfg, request, filter_name, focuser, hfr, stars)
    except Exception as exc:  # noqa: BLE001 - a header problem must never cost the frame
        log.error("could not write indisync's header keywords (%s); saving the frame without them", exc)
    path = save_frame(
        cfg.storage.directory, cfg.storage.filename, hdu,
        node=cfg.node.name, target=request.target or "frame", filter=filter_name or "none",
        exposure=request.duration, seq=request.seq_index or 1, type=request.frame_type,
        suffix=request.suffix or filter_name or "", batch=request.batch or 0,
    )
    log.info("saved %s (%s, %gs, HFR %s, %s stars)", path, filter_name, request.duration,
             f"{hfr:.2f}" if hfr else "-", stars)
    return FrameRecord(path, filter_name, str(hdu.header.get("DATE-OBS")), request.duration, hfr, stars)


def _annotate(hdu, cfg: Config, request: FrameRequest, filter_name, focuser, hfr, stars) -> None:
    apply_frame_header(
        hdu.header,
        node=cfg.node.name,
        target=request.target,
        frame_type=request.frame_type,
        filter_name=filter_name,
        batch=request.batch,
        seq_index=request.seq_index,
        exposure_id=request.exposure_id,
        focus_position=focuser.position if focuser is not None else None,
        focus_temperature=focuser.temperature if focuser is not None else None,
        hfr=hfr,
        stars=stars,
        clock_offset=request.clock_offset_s,
    )


def _apply_test_clock_skew(header, skew_s: float) -> None:
    """testing.clock_skew_s (tests only): DATE-OBS as a node whose clock runs ``skew_s`` ahead would write it."""
    if not skew_s or "DATE-OBS" not in header:
        return
    text = str(header["DATE-OBS"])
    try:
        shifted = datetime.fromisoformat(text.replace("Z", "")) + timedelta(seconds=skew_s)
    except ValueError:
        log.warning("testing.clock_skew_s: DATE-OBS %r not understood; left as it is", text)
        return
    header["DATE-OBS"] = (shifted.strftime("%Y-%m-%dT%H:%M:%S.") + f"{shifted.microsecond // 1000:03d}",
                          header.comments["DATE-OBS"] if hasattr(header, "comments") else "")
