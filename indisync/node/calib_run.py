"""What a node's flats and darks runs share (indisync.node.calibrating runs them): a ``CalibRun``
holds the devices, the run's bounds (its timeout, the node's abort and stop), this node's calibration
library, where the files go (calib.naming) and how the node says what it does (calib_progress and
calib_set_done events, the state's ``calib`` field, the command's progress). Reports never cost a
frame: a report that fails is logged. Also the per-set helpers: the wheel and rotator to a flat set
(``point_for``), gain/offset for a block (``camera_settings``), a run's status from its sets'.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..calib.library import CalibLibrary
from ..calib.model import FlatSet
from ..calib.naming import apply_calib_header, calib_dir, calib_stem, night_date, save_calib_frame
from ..errors import ExposureAborted, IndisyncError
from ..protocol.messages import now_iso
from ..timezones import site_zone

log = logging.getLogger(__name__)


class RunStopped(IndisyncError):
    """The run was aborted (`abort`, the night left its state) or the node is stopping."""


class RunTimedOut(IndisyncError):
    """The run's bound (args.timeout, flats.timeout, darks.timeout) has passed."""


class SetFailed(IndisyncError):
    """This set cannot be taken (a missing filter, an unreachable band): the reason is the set's."""


class _AbortOrStop:
    def __init__(self, *events):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


@dataclass
class Frame:
    """One calibration frame as it came off the camera."""

    hdu: object
    exposure: float  # s, as asked
    start: float  # epoch s: the shutter told to open
    arrived: float  # epoch s: the image in
    mean: float  # the whole frame's mean ADU
    temperature: float | None  # the sensor at shutter close


def mean_adu(data) -> float:
    """The whole frame's mean, as a float (never the integer type's overflowing sum)."""
    import numpy as np

    if data is None:
        raise IndisyncError("the camera sent a frame without pixels")
    return float(np.mean(np.asarray(data), dtype=np.float64))


@dataclass
class SetTally:
    """What one set produced, as FLAT_SET_RESULT / DARK_SET_RESULT fields."""

    kept: int = 0
    taken: int = 0
    discarded: int = 0
    exposures: list = field(default_factory=list)
    adu: list = field(default_factory=list)
    files: list = field(default_factory=list)
    temperatures: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # panel: brightness, trained
    started: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def temperature(self) -> float | None:
        temps = [t for t in self.temperatures if t is not None]
        return round(sum(temps) / len(temps), 2) if temps else None


class CalibRun:
    """One flats or darks run on this node (see the module's docstring)."""

    def __init__(self, node, progress, kind: str, timeout: float, mode: str | None = None,
                 direction: str | None = None):
        self.node, self.cfg, self.link = node, node.cfg, node.link
        self.devices = node.supervisor.get()
        self.camera = self.devices.camera
        if self.camera is None:
            raise IndisyncError(f"no camera on node {node.name}: {kind} need one (indi.camera)")
        self.progress = progress
        self.kind, self.mode, self.direction = kind, mode, direction
        self.cancel = _AbortOrStop(node.abort_event, node.stop_event)
        self.timeout = float(timeout)
        self.deadline = time.monotonic() + self.timeout
        self.started = time.monotonic()
        self.started_iso = now_iso()
        self.library = node.calib_library()
        zone = site_zone(self.cfg)
        self.folder: Path = calib_dir(self.cfg.storage.directory, node.name,
                                      night_date(time.time(), zone, self.cfg.record.night_starts_hour))

    # ---- bounds -------------------------------------------------------------------------------
    @property
    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def deadline_epoch(self) -> float:
        return time.time() + self.time_left

    def check(self) -> None:
        if self.cancel.is_set():
            raise RunStopped("stopped (abort) before it was done")
        if self.time_left <= 0:
            setting = "flats.timeout" if self.kind == "flat" else "darks.timeout"
            raise RunTimedOut(f"the run's time ({self.timeout:g} s, {setting}) ran out")

    def sleep_until(self, epoch: float) -> None:
        """Sleep until ``epoch`` (time.time()), woken by an abort or stop; bounded by the run's time."""
        while True:
            self.check()
            left = min(epoch - time.time(), self.time_left)
            if left <= 0:
                self.check()
                return
            self.node.abort_event.wait(min(left, 1.0))

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (a device settling), woken by an abort or stop."""
        if seconds > 0:
            self.sleep_until(time.time() + seconds)

    # ---- frames -------------------------------------------------------------------------------
    def expose(self, frame_type: str, exposure: float, binning: int) -> Frame:
        """One frame (flat, dark, bias); RunStopped when aborted meanwhile."""
        self.check()
        if exposure > self.time_left:  # it would end past the bound the sender waits for
            setting = "flats.timeout" if self.kind == "flat" else "darks.timeout"
            raise RunTimedOut(f"the run's time ({self.timeout:g} s, {setting}) ran out: {self.time_left:.0f} s "
                              f"left, too little for a {exposure:g} s frame")
        self.node.check_disk()
        start = time.time()
        try:
            hdu = self.camera.expose(float(exposure), int(binning), frame_type)
        except ExposureAborted as exc:
            raise RunStopped(f"stopped (abort) during a {exposure:g} s {frame_type} frame: {exc}") from None
        arrived = time.time()
        if self.cancel.is_set():
            raise RunStopped("stopped (abort) as a frame arrived; it is not written")
        try:
            temperature = self.camera.temperature
        except Exception:  # noqa: BLE001 - a header value never costs the frame
            temperature = None
        return Frame(hdu, float(exposure), start, arrived, mean_adu(hdu.data), temperature)

    def save(self, frame: Frame, kind: str, binning: int, filter: str | None = None, gain=None, offset=None,
             set_temp=None, rotator_angle=None, name_exposure: float | None = None) -> Path:
        """Write a kept frame with its calibration header; returns its path."""
        try:
            apply_calib_header(frame.hdu.header, kind, filter, binning, frame.exposure, frame.temperature, set_temp,
                               gain, offset, self.node.name, rotator_angle=rotator_angle, mode=self.mode,
                               adu=frame.mean)
        except Exception as exc:  # noqa: BLE001 - a header problem never costs the frame
            log.error("could not write the calibration header (%s); saving the frame without it", exc)
        stem = calib_stem(kind, filter, binning, frame.exposure if name_exposure is None else name_exposure)
        return save_calib_frame(self.folder, stem, frame.hdu)

    # ---- reports --------------------------------------------------------------------------------
    def report(self, event: str, **fields) -> None:
        try:
            self.link.event(event, **{k: v for k, v in fields.items() if v is not None})
        except Exception as exc:  # noqa: BLE001 - a report never costs the run
            log.warning("could not publish %s: %s", event, exc)

    def state(self, calib: dict | None, phase: str = "exposing") -> None:
        try:
            self.link.update_state(phase=phase, calib=None if calib is None else
                                   {k: v for k, v in calib.items() if v is not None})
        except Exception as exc:  # noqa: BLE001
            log.warning("could not publish the calib state: %s", exc)

    def tell(self, fraction: float | None = None, **fields) -> None:
        try:
            self.progress(fraction, **fields)
        except Exception as exc:  # noqa: BLE001
            log.debug("progress not sent: %s", exc)

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 3)


def point_for(run: CalibRun, fset: FlatSet) -> None:
    """The wheel on the set's filter and the rotator at its angle (where the node has one). A filter
    the wheel lacks, or no wheel for a filtered set: SetFailed naming the wheel's filters."""
    wheel = run.devices.filter_wheel
    if fset.filter is not None:
        if wheel is None:
            raise SetFailed(f"no filter wheel on this node (indi.filter_wheel is null) for flats of {fset.filter}")
        names = wheel.names
        if fset.filter not in names:
            raise SetFailed(f"no filter {fset.filter} on this wheel (FILTER_NAME: {', '.join(names)})")
        wheel.select(fset.filter)
    rotator = getattr(run.devices, "rotator", None)
    if fset.rotator_angle is not None:
        if rotator is None:
            log.warning("set %s names rotator angle %g but this node has no rotator; taken as it is",
                        fset.label(), fset.rotator_angle)
        else:
            rotator.move_to(fset.rotator_angle, cancel=run.cancel)


def reading(camera, which: str) -> float | None:
    """A camera value for a header (gain, offset); None when it cannot be read."""
    try:
        return getattr(camera, which)
    except Exception:  # noqa: BLE001 - a header value never costs the frame
        return None


@contextmanager
def camera_settings(camera, gain: float | None, offset: float | None):
    """The set's gain/offset on the camera for the block (where the set names them and they differ),
    restored after."""
    restore = []
    try:
        for which, want in (("gain", gain), ("offset", offset)):
            if want is None:
                continue
            now = getattr(camera, which)
            if now is None:
                log.warning("the set names %s %g but the camera has no %s control; taken as it is", which, want,
                            which)
                continue
            if not math.isclose(now, want, abs_tol=1e-6):
                getattr(camera, f"set_{which}")(want)
                restore.append((which, now))
        yield
    finally:
        for which, value in reversed(restore):
            try:
                getattr(camera, f"set_{which}")(value)
            except Exception as exc:  # noqa: BLE001 - said; the next set or light sets its own
                log.error("could not restore the camera's %s to %g: %s", which, value, exc)


def overall(statuses: list[str], stopped: bool) -> str:
    """A run's status from its sets': stopped; nothing (no sets); ok (all ok/skipped/taken); failed
    (none got anything); partial."""
    if stopped:
        return "stopped"
    if not statuses:
        return "nothing"
    good = {"ok", "taken", "skipped"}
    if all(s in good for s in statuses):
        return "ok"
    if all(s == "failed" for s in statuses):
        return "failed"
    return "partial"


class LibraryHolder:
    """This node's calibration library, opened on first use (thread-safe), closed with the node."""

    def __init__(self, storage_dir):
        self.storage_dir = storage_dir
        self._lock = threading.Lock()
        self._library = None

    def get(self):
        with self._lock:
            if self._library is None:
                self._library = CalibLibrary.for_storage(self.storage_dir)
            return self._library

    def close(self) -> None:
        with self._lock:
            library, self._library = self._library, None
        if library is not None:
            try:
                library.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("closing the calibration library: %s", exc)
