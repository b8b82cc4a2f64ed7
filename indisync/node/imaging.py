"""Take one science frame with a node's devices and store it: filter, exposure, HFR, header, file.

Frames are written atomically under a name that is never reused (indisync.sequence.naming).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from ..errors import ExposureAborted
from ..record.grading import Grade, grade_header_cards
from ..sequence.headers import apply_frame_header
from ..sequence.naming import save_frame
from .disk import check_free_space
from .hfr_worker import frame_hfr  # stdlib only at import; numpy/scipy load with the first frame

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
    # time.time() at which to open the shutter (the master's scheduled start); None: at once
    start_at: float | None = None
    clock_offset_s: float | None = None  # this node's clock minus the master's (CLKOFFS), if measured


@dataclass
class FrameContext:
    """What belongs to a frame, read the moment its image is in (the shutter has closed) and before
    anything may move: a slave's pre-move thread starts right after and can change the wheel and the
    focuser (a filter offset) while this frame is still being written.

    A keyword that describes the exposure (e.g. a camera temperature or a clock offset) is one more
    field here, set in ``capture_context`` and returned by ``header_fields``.
    """

    filter_name: str | None
    date_obs: str | None  # the camera's DATE-OBS (exposure start, UTC)
    focus_position: int | None = None
    focus_temperature: float | None = None
    ccd_temperature: float | None = None  # CCD-TEMP: the sensor at shutter close
    set_temperature: float | None = None  # SET-TEMP: the cooler's setpoint, when cooling
    clock_offset_s: float | None = None  # CLKOFFS: this node's clock minus the master's
    # what its calibration must match (exposure_done carries them to the night log: indisync.calib.needs)
    gain: float | None = None
    offset: float | None = None
    rotator_angle: float | None = None  # the rotator's own angle (not the sky's PA)

    def header_fields(self) -> dict[str, Any]:
        """Keyword arguments of ``apply_frame_header`` that come from this context."""
        return {"filter_name": self.filter_name, "focus_position": self.focus_position,
                "focus_temperature": self.focus_temperature, "ccd_temperature": self.ccd_temperature,
                "set_temperature": self.set_temperature, "clock_offset": self.clock_offset_s}


def capture_context(devices, filter_name: str | None, hdu) -> FrameContext:
    """Read the frame's context now; a device that cannot say is left out, never costs the frame."""
    context = FrameContext(filter_name=filter_name, date_obs=_header_text(hdu, "DATE-OBS"))
    try:
        context.ccd_temperature, context.set_temperature = devices.camera.temperature, devices.camera.setpoint
    except Exception as exc:  # noqa: BLE001 - a header value must never cost the frame
        log.warning("could not read the camera temperature for the header: %s", exc)
    try:
        camera = devices.camera
        context.gain, context.offset = _number(getattr(camera, "gain", None)), _number(getattr(camera, "offset", None))
        rotator = getattr(devices, "rotator", None)
        context.rotator_angle = None if rotator is None else _number(rotator.angle)
    except Exception as exc:  # noqa: BLE001 - a calibration key must never cost the frame
        log.warning("could not read gain/offset/rotator angle for the frame's record: %s", exc)
    focuser = devices.focuser
    if focuser is not None:
        try:
            context.focus_position = focuser.position
            context.focus_temperature = focuser.temperature
        except Exception as exc:  # noqa: BLE001 - a header value must never cost the frame
            log.warning("could not read the focuser for the header: %s", exc)
    return context


def _number(value) -> float | None:
    """A device reading as a float; anything else (None, a stand-in's attribute) as None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _header_text(hdu, key: str) -> str | None:
    value = hdu.header.get(key)
    return None if value is None else str(value)


@dataclass
class FrameRecord:
    path: Path
    filter_name: str | None
    start: str  # DATE-OBS
    duration: float
    hfr: float | None
    stars: int | None
    # measure_inline=False: the pixels, still to be measured (the caller hands them on and drops them)
    image: Any = field(default=None, repr=False)
    context: FrameContext | None = None
    grade: Grade | None = None
    focuser_position: int | None = None
    focuser_temperature: float | None = None
    ccd_temperature: float | None = None
    guide_rms_arcsec: float | None = None
    # The real shutter interval on this node's clock (ISO UTC): the camera told to start, the image in.
    # EXPTIME (``duration``) is nominal: under a simulator time factor the two differ by that factor.
    shutter_opened: str | None = None
    image_arrived: str | None = None
    frame_type: str | None = None
    binning: int | None = None

    def event_fields(self) -> dict:
        """What exposure_done says about the frame, for the night log (indisync.record) and the
        calibration it needs (indisync.calib.needs: frame type, binning, rotator angle, gain/offset, setpoint)."""
        context = self.context or FrameContext(None, None)
        fields = {"frame_type": self.frame_type, "binning": self.binning,
                  "rotator_angle": _rounded(context.rotator_angle), "gain": _rounded(context.gain),
                  "offset": _rounded(context.offset), "set_temperature": _rounded(context.set_temperature),
                  "start": self.start if self.start and self.start != "None" else None,
                  "duration": self.duration, "hfr": _rounded(self.hfr), "stars": self.stars,
                  "shutter_opened": self.shutter_opened, "image_arrived": self.image_arrived,
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
               on_exposed: Callable[[], None] | None = None,
               should_abort: Callable[[], bool] | None = None,
               measure_inline: bool = True, grader: "Grader | None" = None,
               check_space: Callable[[], object] | None = None) -> FrameRecord:
    """``on_start`` runs with the wheel in place just before the shutter opens; ``on_exposed`` as
    soon as the image is in and its context captured, before it is measured and written (a slave
    moves its wheel then). ``should_abort`` true before the shutter opens or once the image is in:
    ExposureAborted, nothing written (an abort that raced the image's arrival must not leave a frame
    either). ``measure_inline=False``: the frame is written without HFR/NSTARS and the record
    carries the pixels in ``image`` for the caller to measure after replying. ``grader`` grades a frame
    measured here (GRADE / GRADERSN in its header). ``check_space`` (default: check_free_space of
    storage) runs first: below storage.min_free_gb it raises DiskSpaceLow and nothing moves or is written."""
    (check_space or (lambda: check_free_space(cfg.storage)))()
    if request.filter_name is not None and devices.filter_wheel is not None:
        devices.filter_wheel.select(request.filter_name)
    # Read now: once on_exposed has started the next wheel move, the wheel no longer says it.
    filter_name = devices.filter_wheel.current if devices.filter_wheel is not None else request.filter_name
    if should_abort is not None and should_abort():
        raise ExposureAborted("aborted before the exposure started; no frame")
    if on_start is not None:
        on_start(request)
    wait_for_start(request.start_at)
    opened = time.time()
    hdu = devices.camera.expose(request.duration, request.binning, request.frame_type)
    arrived = time.time()
    if should_abort is not None and should_abort():
        raise ExposureAborted("aborted as the image arrived; the frame is discarded, not written")
    _apply_test_clock_skew(hdu.header, cfg.testing.clock_skew_s)
    context = capture_context(devices, filter_name, hdu)  # shutter closed: before anything moves
    context.clock_offset_s = request.clock_offset_s
    if on_exposed is not None:
        on_exposed()
    hfr = stars = None
    measurable = request.frame_type == "light" and hdu.data is not None
    if measurable and measure_inline:
        hfr, stars = measure_hfr(hdu.data, cfg)
    grade, guide_rms = _grade(grader, filter_name, hfr, stars) if measurable and measure_inline else (None, None)
    try:
        _annotate(hdu, cfg, request, context, hfr, stars)
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
             f"{hfr:.2f}" if hfr else ("later" if measurable and not measure_inline else "-"), stars)
    return FrameRecord(path, filter_name, str(hdu.header.get("DATE-OBS")), request.duration, hfr, stars,
                       image=hdu.data if measurable and not measure_inline else None, context=context,
                       grade=grade, focuser_position=context.focus_position,
                       focuser_temperature=context.focus_temperature, ccd_temperature=context.ccd_temperature,
                       guide_rms_arcsec=guide_rms,
                       shutter_opened=_clock_iso(opened, cfg.testing.clock_skew_s),
                       image_arrived=_clock_iso(arrived, cfg.testing.clock_skew_s),
                       frame_type=request.frame_type, binning=request.binning)


def _grade(grader: "Grader | None", filter_name, hfr, stars) -> tuple[Grade | None, float | None]:
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


MAX_START_WAIT_S = 10.0  # a scheduled start further off than this is a clock problem, not a plan


def wait_for_start(start_at: float | None) -> None:
    """Sleep until ``start_at`` (time.time()); a time already past starts at once."""
    if start_at is None:
        return
    delay = start_at - time.time()
    if delay > MAX_START_WAIT_S:
        log.warning("scheduled start is %.1f s away (more than %g s): clocks disagree? starting in %g s",
                    delay, MAX_START_WAIT_S, MAX_START_WAIT_S)
        delay = MAX_START_WAIT_S
    if delay > 0:
        time.sleep(delay)
    elif delay < -0.05:
        log.debug("scheduled start missed by %.0f ms", -delay * 1000)


def measure_hfr(data, cfg: Config) -> tuple[float | None, int | None]:
    """(median HFR or None, star count) of a light frame; (None, None) if it cannot be measured.
    A slave's HFR worker process measures with the same ``frame_hfr``."""
    hfr, stars, problem = frame_hfr(data, cfg.analysis)
    if problem:
        log.warning("could not measure HFR: %s", problem)
    return hfr, stars


def _annotate(hdu, cfg: Config, request: FrameRequest, context: FrameContext, hfr, stars) -> None:
    apply_frame_header(
        hdu.header,
        node=cfg.node.name,
        target=request.target,
        frame_type=request.frame_type,
        batch=request.batch,
        seq_index=request.seq_index,
        exposure_id=request.exposure_id,
        hfr=hfr,
        stars=stars,
        **context.header_fields(),
    )


def _clock_iso(epoch: float, skew_s: float = 0.0) -> str:
    """A ``time.time()`` reading as this node's clock says it (ISO UTC, ms; testing.clock_skew_s added)."""
    when = datetime.fromtimestamp(epoch + (skew_s or 0.0), timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
