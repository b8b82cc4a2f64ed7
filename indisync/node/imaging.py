"""Take one science frame with a node's devices and store it: filter, exposure, HFR, header, file.

Frames are written atomically under a name that is never reused (indisync.sequence.naming).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..analysis.measure import measure_frame
from ..config import Config
from ..record.grading import Grade, grade_header_cards
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


@dataclass
class FrameRecord:
    path: Path
    filter_name: str | None
    start: str  # DATE-OBS
    duration: float
    hfr: float | None
    stars: int | None
    grade: Grade | None = None
    focuser_position: int | None = None
    focuser_temperature: float | None = None
    ccd_temperature: float | None = None
    guide_rms_arcsec: float | None = None

    def event_fields(self) -> dict:
        """What exposure_done says about the frame, for the night log (indisync.record)."""
        fields = {"start": self.start if self.start and self.start != "None" else None,
                  "duration": self.duration, "hfr": _rounded(self.hfr), "stars": self.stars,
                  "focuser_position": self.focuser_position, "focuser_temperature": _rounded(self.focuser_temperature),
                  "ccd_temperature": _rounded(self.ccd_temperature), "guide_rms_arcsec": _rounded(self.guide_rms_arcsec)}
        if fields["start"] is not None and not fields["start"].endswith("Z"):
            fields["start"] = fields["start"].split("+")[0] + "Z"  # DATE-OBS is UTC without a zone
        if self.grade is not None:
            fields.update(grade=self.grade.status, grade_reason=self.grade.reason[:500])
        return fields


# grader(filter, hfr, stars) -> Grade | None, with the node's own context (guiding RMS on the master)
Grader = Callable[[str | None, float | None, int | None], tuple[Grade | None, float | None]]


def _rounded(value, digits: int = 3):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def take_frame(devices, cfg: Config, request: FrameRequest,
               on_start: Callable[[FrameRequest], None] | None = None,
               on_exposed: Callable[[], None] | None = None, grader: Grader | None = None) -> FrameRecord:
    """``on_start`` runs with the wheel in place just before the shutter opens; ``on_exposed`` as
    soon as the image is in, before it is measured and written (a slave moves its wheel then);
    ``grader`` grades the measured frame (GRADE / GRADERSN in its header)."""
    if request.filter_name is not None and devices.filter_wheel is not None:
        devices.filter_wheel.select(request.filter_name)
    # Read now: once on_exposed has started the next wheel move, the wheel no longer says it.
    filter_name = devices.filter_wheel.current if devices.filter_wheel is not None else request.filter_name
    if on_start is not None:
        on_start(request)
    hdu = devices.camera.expose(request.duration, request.binning, request.frame_type)
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
    grade, guide_rms = _grade(grader, filter_name, hfr, stars) if request.frame_type == "light" else (None, None)
    try:
        _annotate(hdu, cfg, request, filter_name, focuser, hfr, stars)
        for keyword, value, comment in grade_header_cards(grade):
            hdu.header[keyword] = (value, comment)
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
    ccd_temp = hdu.header.get("CCD-TEMP")
    return FrameRecord(path, filter_name, str(hdu.header.get("DATE-OBS")), request.duration, hfr, stars, grade,
                       hdu.header.get("FOCUSPOS"), hdu.header.get("FOCTEMP"),
                       float(ccd_temp) if isinstance(ccd_temp, (int, float)) else None, guide_rms)


def _grade(grader: Grader | None, filter_name, hfr, stars) -> tuple[Grade | None, float | None]:
    if grader is None:
        return None, None
    try:
        grade, guide_rms = grader(filter_name, hfr, stars)
    except Exception as exc:  # noqa: BLE001 - grading must never cost the frame
        log.warning("could not grade the frame: %s", exc)
        return None, None
    if grade is not None and not grade.accepted:
        log.warning("frame rejected (kept on disk): %s", grade.reason)
    return grade, guide_rms


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
    )
