"""A camera (or a camera's guide head) over its INDI properties; frames come back as FITS HDUs."""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..errors import DeviceError, ExposureAborted, PropertyAlert
from .client import IndiClient
from .device import IndiDevice
from .props import last_message, set_number, set_switch, switch_to

if TYPE_CHECKING:  # astropy is imported when the first frame arrives: an idle node does not hold it
    from astropy.io import fits


@dataclass(frozen=True)
class CameraHead:
    """Property names of one sensor: the main chip, or the guide head some cameras carry."""

    exposure: str
    abort: str
    binning: str
    frame_type: str
    blob: str


PRIMARY = CameraHead("CCD_EXPOSURE", "CCD_ABORT_EXPOSURE", "CCD_BINNING", "CCD_FRAME_TYPE", "CCD1")
GUIDE_HEAD = CameraHead("GUIDER_EXPOSURE", "GUIDER_ABORT_EXPOSURE", "GUIDER_BINNING", "GUIDER_FRAME_TYPE", "CCD2")
FRAME_TYPES = {"light": "FRAME_LIGHT", "dark": "FRAME_DARK", "flat": "FRAME_FLAT", "bias": "FRAME_BIAS"}
IMAGETYP = {"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Field", "bias": "Bias Frame"}
# Where a camera keeps its gain and offset, in the order looked for: (property, element)
CONTROLS = {"gain": (("CCD_GAIN", "GAIN"), ("CCD_CONTROLS", "Gain")),
            "offset": (("CCD_OFFSET", "OFFSET"), ("CCD_CONTROLS", "Offset"))}

log = logging.getLogger(__name__)


class Camera(IndiDevice):
    def __init__(self, client: IndiClient, name: str, property_timeout: float = 10.0,
                 readout_timeout: float = 60.0, head: CameraHead = PRIMARY):
        super().__init__(client, name, property_timeout)
        self.head = head
        self.key_properties = (head.exposure,)
        self.readout_timeout = readout_timeout  # beyond the exposure time, for download and slow drivers
        self._setpoint: float | None = None
        self._abort_requested = threading.Event()  # set by abort(): the waiting expose() gives up at once

    def connect(self) -> "Camera":
        super().connect()
        self.client.enable_blobs(self.name)
        return self

    @property
    def temperature(self) -> float | None:
        """The sensor's temperature (CCD_TEMPERATURE) in deg C; None: the camera has no cooler."""
        snap = self.client.snapshot(self.name, "CCD_TEMPERATURE")
        return None if snap is None else snap.values.get("CCD_TEMPERATURE_VALUE")

    @property
    def has_cooler(self) -> bool:
        return self.client.snapshot(self.name, "CCD_TEMPERATURE") is not None

    @property
    def setpoint(self) -> float | None:
        """The last setpoint this object sent (INDI has no separate property that says it)."""
        return self._setpoint

    def set_temperature(self, setpoint_c: float) -> None:
        """Send a new cooling setpoint and return; reaching it takes minutes (watch ``temperature``).

        Turns CCD_COOLER on first where the camera has one. The driver's Alert (a setpoint out of
        range) is an error; CCD_TEMPERATURE stays Busy while it ramps, so we do not wait for Ok.
        """
        c, t = self.client, self.property_timeout
        snap = c.snapshot(self.name, "CCD_TEMPERATURE")
        if snap is None:
            raise DeviceError(f"{self.name} has no CCD_TEMPERATURE: it has no cooler to set to {setpoint_c:g} C")
        self.set_cooler(True)
        before = c.generation()
        set_number(c, self.name, "CCD_TEMPERATURE", {"CCD_TEMPERATURE_VALUE": float(setpoint_c)}, t, wait=False)

        def answered():
            now = c._props.get((self.name, "CCD_TEMPERATURE"))
            if now is None:
                raise DeviceError(f"{self.name}.CCD_TEMPERATURE vanished after a new setpoint (driver crashed?)")
            return now if now.generation > before else None

        answer = c.wait_until(answered, t, f"{self.name}.CCD_TEMPERATURE to take setpoint {setpoint_c:g}")
        if answer.state == "Alert":
            raise PropertyAlert(f"{self.name} refused setpoint {setpoint_c:g} C: "
                                f"{last_message(c, self.name) or 'no message from the driver'}")
        self._setpoint = float(setpoint_c)

    def set_cooler(self, on: bool) -> None:
        """CCD_COOLER on/off where the camera has one, read back."""
        snap = self.client.snapshot(self.name, "CCD_COOLER")
        if snap is None:
            return
        want = "COOLER_ON" if on else "COOLER_OFF"
        if snap.values.get(want):
            return
        switch_to(self.client, self.name, "CCD_COOLER", want, self.property_timeout)  # Busy while cooling
        snap = self.client.snapshot(self.name, "CCD_COOLER")
        if snap is None or not snap.values.get(want):
            raise DeviceError(f"{self.name} did not turn its cooler {'on' if on else 'off'}")

    @property
    def pixel_size_um(self) -> float | None:
        snap = self.client.snapshot(self.name, "GUIDER_INFO" if self.head is GUIDE_HEAD else "CCD_INFO")
        return None if snap is None else snap.values.get("CCD_PIXEL_SIZE")

    # ---- what a calibration frame must match (indisync.calib): gain, offset, full scale ----------
    def _control(self, which: str) -> tuple[str, str] | None:
        """(property, element) of the camera's gain or offset: CCD_GAIN.GAIN / CCD_OFFSET.OFFSET (the
        simulator, most drivers), else CCD_CONTROLS.Gain / .Offset (ZWO, QHY); None: it has none."""
        for prop, elem in CONTROLS[which]:
            snap = self.client.snapshot(self.name, prop)
            if snap is not None and elem in snap.values:
                return prop, elem
        return None

    def _control_value(self, which: str) -> float | None:
        where = self._control(which)
        if where is None:
            return None
        snap = self.client.snapshot(self.name, where[0])
        return None if snap is None else float(snap.values[where[1]])

    @property
    def gain(self) -> float | None:
        """The sensor's gain now (the driver's units); None: the camera has no gain control."""
        return self._control_value("gain")

    @property
    def offset(self) -> float | None:
        """The sensor's offset (bias level) now; None: the camera has no offset control."""
        return self._control_value("offset")

    def set_gain(self, value: float) -> float:
        return self._set_control("gain", value)

    def set_offset(self, value: float) -> float:
        return self._set_control("offset", value)

    def _set_control(self, which: str, value: float) -> float:
        """Set the gain or offset, wait for the driver, and return it as read back (Alert, or a value
        that did not take, is a DeviceError)."""
        where = self._control(which)
        if where is None:
            raise DeviceError(f"{self.name} has no {which} control ({' or '.join(p for p, _ in CONTROLS[which])}); "
                              f"cannot set {which} {value:g}")
        set_number(self.client, self.name, where[0], {where[1]: float(value)}, self.property_timeout)
        got = self._control_value(which)
        if got is None or abs(got - value) > 1e-6 * max(1.0, abs(value)):
            raise DeviceError(f"{self.name}: {which} {value:g} asked, {got} read back "
                              f"({last_message(self.client, self.name) or 'no message from the driver'})")
        return got

    @property
    def full_scale(self) -> float:
        """The brightest a pixel can read, ADU: 2**CCD_INFO.CCD_BITSPERPIXEL - 1 (65535 for 16 bits,
        also when the driver does not say)."""
        snap = self.client.snapshot(self.name, "CCD_INFO")
        bits = None if snap is None else snap.values.get("CCD_BITSPERPIXEL")
        if not bits or not 1 <= bits <= 32:
            return 65535.0
        return float(2 ** int(round(bits)) - 1)

    @property
    def min_exposure(self) -> float:
        """The shortest exposure the driver accepts (CCD_EXPOSURE's minimum; a bias is taken at it)."""
        snap = self.client.snapshot(self.name, self.head.exposure)
        lo = None if snap is None else snap.limits.get(f"{self.head.exposure}_VALUE", (None, None))[0]
        return float(lo) if lo is not None and lo >= 0 else 0.0

    def abort(self) -> None:
        """Abort the running exposure: the driver is told, and a waiting ``expose`` raises ExposureAborted
        within a quarter second (without waiting for the driver's answer)."""
        self._abort_requested.set()
        if self.client.snapshot(self.name, self.head.abort) is not None:
            set_switch(self.client, self.name, self.head.abort, ["ABORT"], self.property_timeout, wait=False)

    def prepare(self, binning: int = 1, frame_type: str = "light") -> None:
        """Set frame type and binning (waiting for the driver) so expose() can start at once."""
        if frame_type not in FRAME_TYPES:
            raise DeviceError(f"unknown frame type {frame_type!r}; allowed: {', '.join(FRAME_TYPES)}")
        c, t = self.client, self.property_timeout
        snap = c.snapshot(self.name, self.head.frame_type)
        if snap is not None and not snap.values.get(FRAME_TYPES[frame_type]):
            set_switch(c, self.name, self.head.frame_type, [FRAME_TYPES[frame_type]], t)
        snap = c.snapshot(self.name, self.head.binning)
        if snap is not None and (snap.values.get("HOR_BIN") != binning or snap.values.get("VER_BIN") != binning):
            set_number(c, self.name, self.head.binning, {"HOR_BIN": binning, "VER_BIN": binning}, t)

    def expose(self, seconds: float, binning: int = 1, frame_type: str = "light") -> fits.PrimaryHDU:
        """Take one frame and return it with a header that says what it is. Blocks until it arrives."""
        self.prepare(binning, frame_type)
        c = self.client
        blobs = c.blob_queue(self.name)
        while not blobs.empty():  # a stale frame from an earlier, aborted exposure
            blobs.get_nowait()
        self._abort_requested.clear()
        before = c.generation()
        started = datetime.now(timezone.utc)
        set_number(c, self.name, self.head.exposure, {f"{self.head.exposure}_VALUE": seconds}, self.property_timeout, wait=False)
        blob = self._wait_blob(blobs, seconds, before)
        hdu = self._decode(blob)
        self._complete_header(hdu.header, seconds, binning, frame_type, started)
        return hdu

    def _wait_blob(self, blobs: "queue.Queue", seconds: float, before: int):
        deadline = time.monotonic() + seconds + self.readout_timeout
        while True:
            try:
                blob = blobs.get(timeout=0.25)
            except queue.Empty:
                blob = None
            if blob is not None and blob.property == self.head.blob:
                return blob
            if self._abort_requested.is_set():
                raise ExposureAborted(f"{self.name}: exposure aborted on request; no frame")
            self.client.check_alive()
            snap = self.client.snapshot(self.name, self.head.exposure)
            if snap is None:
                raise DeviceError(
                    f"{self.name} vanished during the exposure (driver crashed or restarted); the frame is lost"
                )
            if snap.state == "Alert" and snap.generation > before:
                raise PropertyAlert(
                    f"{self.name} failed the exposure: {last_message(self.client, self.name) or 'no message'}"
                )
            if snap.state == "Idle" and snap.generation > before:
                # INDI's answer to CCD_ABORT_EXPOSURE (ours or another client's): Idle, and no image.
                raise ExposureAborted(f"{self.name}: the exposure was aborted at the camera; no frame")
            if time.monotonic() > deadline:
                self.abort()
                raise DeviceError(
                    f"{self.name}: no image {seconds + self.readout_timeout:g}s after starting a {seconds:g}s "
                    "exposure; aborted it. Check the camera, or raise indi.readout_timeout"
                )

    def _decode(self, blob) -> fits.PrimaryHDU:
        if not blob.format.startswith(".fits"):
            raise DeviceError(f"{self.name} sent a {blob.format} image; set its CCD_TRANSFER_FORMAT to FITS")
        from astropy.io import fits

        with fits.open(io.BytesIO(blob.data)) as hdul:
            hdul_data = hdul[0].data
            header = hdul[0].header.copy()
            if hdul_data is None and len(hdul) > 1:  # compressed: image in the first extension
                hdul_data, header = hdul[1].data, hdul[1].header.copy()
            data = None if hdul_data is None else hdul_data.copy()
        return fits.PrimaryHDU(data=data, header=header)

    def _complete_header(self, header, seconds, binning, frame_type, started: datetime) -> None:
        header["EXPTIME"] = (float(seconds), "[s] exposure time requested")
        header.setdefault("INSTRUME", self.name)
        header["INSTRUME"] = header.get("INSTRUME") or self.name
        header["XBINNING"] = (binning, "binning factor, x")
        header["YBINNING"] = (binning, "binning factor, y")
        header["IMAGETYP"] = IMAGETYP[frame_type]
        driver_date = str(header.get("DATE-OBS", ""))
        if "." not in driver_date:  # the driver gave none, or whole seconds: ours has milliseconds
            header["DATE-OBS"] = (started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond // 1000:03d}",
                                  "UTC exposure start")
