"""A camera of the sky ("Sky Guider", "Sky Camera"): the CCD Simulator's properties for us, its own ST4
port into the sky's mount, and frames rendered from the sky's true error (``render``). The driver
(``driver.SkyDriver``) owns the sky, the mount and the XML; each camera answers its own requests."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from . import indixml as X
from .render import CameraParams, FrameTruth, fits_bytes, render, sky_to_sensor, star_field

CAMERA = "Sky Camera"


class RequestError(Exception):
    """A request the driver refuses: answered Alert with this message."""


CAMERA_PROPS = {
    "SKY_CAMERA_OPTICS": [("FOCAL_LENGTH", "focal_length", "Focal length (mm)", 10, 20000, 1),
                          ("ROTATION", "rotation", "Rotation (deg from West to North)", -360, 360, 0.1),
                          ("OPTICS_FWHM", "optics_fwhm", "Optics FWHM (arcsec)", 0, 20, 0.1),
                          ("MOFFAT_BETA", "moffat_beta", "Moffat beta (0 = Gaussian)", 0, 20, 0.1)],
    "SKY_CAMERA_NOISE": [("READ_NOISE", "read_noise", "Read noise (e-)", 0, 1000, 0.1),
                         ("GAIN", "gain", "Gain (e-/ADU)", 0.01, 100, 0.01),
                         ("BIAS", "bias", "Bias (ADU)", 0, 10000, 1),
                         ("SKY_BACKGROUND", "sky_background", "Sky (e-/px/s)", 0, 1e6, 1)],
    "SKY_CAMERA_FIELD": [("STAR_FLUX", "star_flux", "Brightest star (e-/s)", 0, 1e9, 100),
                         ("STARS", "stars", "Stars", 0, 500, 1),
                         ("TRANSPARENCY", "transparency", "Transparency (0..1)", 0, 1, 0.01),
                         ("FIELD_SEED", "field_seed", "Field seed", 0, 2 ** 31 - 1, 1)],
}

class SkyCamera:
    """One camera of the sky (the guider's or the main one). ``driver`` is the ``driver.SkyDriver`` that
    owns the sky, the mount and the XML (not imported here: it imports this module)."""

    def __init__(self, driver: Any, name: str, params: CameraParams):
        self.d, self.name, self.params = driver, name, params
        self.field = star_field(params)
        self.ends: float | None = None
        self.exposure = None
        self.seconds = 0.0
        self.offset_start = (0.0, 0.0)
        self.started_utc = datetime.now(timezone.utc)
        self.frames = 0
        self.reset_noise()

    def reset_noise(self) -> None:
        self.rng = np.random.default_rng([int(self.d.sky.params.seed), 1 + (self.name == CAMERA)])

    def define(self) -> None:
        d, p, add = self.name, self.params, self.d.add
        self.d._common(d)
        add(X.number(d, "CCD_EXPOSURE", "Expose", "Main Control",
                     [("CCD_EXPOSURE_VALUE", "Duration (s)", 1.0, 0.001, 3600, 0.001, "%5.3f")]))
        add(X.switch(d, "CCD_ABORT_EXPOSURE", "Abort", "Main Control", [("ABORT", "Abort", False)], rule="AtMostOne"))
        add(X.number(d, "CCD_BINNING", "Binning", "Image Settings",
                     [("HOR_BIN", "X", 1, 1, 4, 1), ("VER_BIN", "Y", 1, 1, 4, 1)]))
        add(X.number(d, "CCD_FRAME", "Frame", "Image Settings",
                     [("X", "Left", 0, 0, p.width - 1, 1), ("Y", "Top", 0, 0, p.height - 1, 1),
                      ("WIDTH", "Width", p.width, 1, p.width, 1), ("HEIGHT", "Height", p.height, 1, p.height, 1)]))
        add(X.switch(d, "CCD_FRAME_TYPE", "Frame Type", "Image Settings",
                     [("FRAME_LIGHT", "Light", True), ("FRAME_BIAS", "Bias", False), ("FRAME_DARK", "Dark", False),
                      ("FRAME_FLAT", "Flat", False)]))
        add(X.number(d, "CCD_INFO", "CCD Information", "Image Info",
                     [("CCD_MAX_X", "Max. Width", p.width, 1, 16000, 1), ("CCD_MAX_Y", "Max. Height", p.height, 1, 16000, 1),
                      ("CCD_PIXEL_SIZE", "Pixel size (um)", p.pixel_size, 0.1, 100, 0.01),
                      ("CCD_PIXEL_SIZE_X", "Pixel size X", p.pixel_size, 0.1, 100, 0.01),
                      ("CCD_PIXEL_SIZE_Y", "Pixel size Y", p.pixel_size, 0.1, 100, 0.01),
                      ("CCD_BITSPERPIXEL", "Bits per pixel", 16, 8, 64, 1)], perm="ro"))
        add(X.switch(d, "UPLOAD_MODE", "Upload", "Options",
                     [("UPLOAD_CLIENT", "Client", True), ("UPLOAD_LOCAL", "Local", False), ("UPLOAD_BOTH", "Both", False)]))
        add(X.switch(d, "CCD_TRANSFER_FORMAT", "Format", "Options", [("FORMAT_FITS", "FITS", True)]))
        add(X.blob(d, "CCD1", "Image Data", "Image Info", [("CCD1", "Image")]))
        self.d._define_st4(d)
        for name, items in CAMERA_PROPS.items():
            add(X.number(d, name, name.replace("SKY_CAMERA_", "Camera ").title(), "Sky",
                         [(e, label, getattr(p, f), lo, hi, st) for e, f, label, lo, hi, st in items]))

    def request(self, vector: X.Vector, values: dict) -> None:
        name, d = vector.name, self.d
        if name == "CONNECTION":
            return d._connection(self.name, vector, values)
        if name == "POLLING_PERIOD":
            vector["PERIOD_MS"] = values.get("PERIOD_MS", vector["PERIOD_MS"])
            return d.send(vector, "Ok")
        if name in CAMERA_PROPS:
            self.params = d._params_from(vector, values, CAMERA_PROPS[name], self.params, CameraParams)
            self.field = star_field(self.params)
            return d.send(vector, "Ok")
        if name in ("CCD_FRAME_TYPE", "UPLOAD_MODE", "CCD_TRANSFER_FORMAT"):
            chosen = [k for k, on in values.items() if on]
            if len(chosen) != 1:
                raise RequestError(f"choose one of {', '.join(vector.elements)}")
            if name == "UPLOAD_MODE" and chosen[0] != "UPLOAD_CLIENT":
                raise RequestError("this camera only uploads to the client (UPLOAD_CLIENT)")
            for k in vector.elements:
                vector[k] = k == chosen[0]
            return d.send(vector, "Ok")
        if name in ("CCD_BINNING", "CCD_FRAME"):
            for k, v in values.items():
                vector[k] = float(int(round(v)))
            return d.send(vector, "Ok")
        d._needs_connection(self.name)
        if name == "CCD_EXPOSURE":
            return self._start(vector, values.get("CCD_EXPOSURE_VALUE", vector["CCD_EXPOSURE_VALUE"]))
        if name == "CCD_ABORT_EXPOSURE":
            vector["ABORT"] = False
            if self.exposure is not None:
                d.sky.close_exposure(self.exposure)
                self.exposure, self.ends = None, None
                expo = d.prop(self.name, "CCD_EXPOSURE")
                expo["CCD_EXPOSURE_VALUE"] = 0.0
                d.send(expo, "Idle", "exposure aborted")
            return d.send(vector, "Ok")
        if name in ("TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE"):
            return d.pulse(self.name, vector, values)
        raise RequestError(f"{name} cannot be set")

    def _start(self, vector: X.Vector, seconds: float) -> None:
        if self.exposure is not None:
            raise RequestError("an exposure is already running: abort it first")
        if seconds <= 0:
            raise RequestError(f"exposure time {seconds:g} s: allowed: > 0")
        d = self.d
        self.seconds = seconds
        self.exposure = d.sky.open_exposure()
        self.offset_start = d.field_offset()
        self.started_utc = datetime.now(timezone.utc)
        self.ends = d.t0 + d.sky.t + seconds
        vector["CCD_EXPOSURE_VALUE"] = seconds
        d.send(vector, "Busy")

    def poll(self, now: float) -> None:
        if self.ends is not None:
            vector = self.d.prop(self.name, "CCD_EXPOSURE")
            left = max(0.0, self.ends - now)
            if abs(left - vector["CCD_EXPOSURE_VALUE"]) >= 1.0:  # a countdown, once a second
                vector["CCD_EXPOSURE_VALUE"] = round(left)
                self.d.send(vector, "Busy")

    def tick(self, now: float) -> None:
        if self.ends is None or now < self.ends:
            return
        d = self.d
        d.sky.advance(self.ends - d.t0)
        e = d.sky.close_exposure(self.exposure)
        self.exposure, self.ends = None, None
        data, header = self._frame(e)
        blob = d.prop(self.name, "CCD1")
        blob["CCD1"] = fits_bytes(data, header)
        d.send(blob, "Ok")
        expo = d.prop(self.name, "CCD_EXPOSURE")
        expo["CCD_EXPOSURE_VALUE"] = 0.0
        d.send(expo, "Ok")
        self.frames += 1

    def _frame(self, e) -> tuple[np.ndarray, dict]:
        d, p = self.d, self.params
        b = int(d.prop(self.name, "CCD_BINNING")["HOR_BIN"])
        kind = next(k for k, on in d.prop(self.name, "CCD_FRAME_TYPE").values().items() if on)
        frame_type = {"FRAME_LIGHT": "light", "FRAME_BIAS": "bias", "FRAME_DARK": "dark", "FRAME_FLAT": "flat"}[kind]
        app_ra, app_dec = e.mean()
        # the nominal pointing moved during the exposure (a slew, tracking off): its mean, and its blur
        (e0, n0), (e1, n1) = self.offset_start, d.field_offset()
        moved = math.hypot(e1 - e0, n1 - n0) / math.sqrt(12.0)
        # the mount points east/north of the field: the stars appear west/south of where they sit
        truth = FrameTruth(west=app_ra + (e0 + e1) / 2.0, north=-(app_dec + (n0 + n1) / 2.0),
                           smear=math.hypot(e.smear(), moved), pier_flip=d.pier_east)
        image = render(p, self.field, truth, self.seconds, b, d.sky.params.seeing_fwhm, self.rng, frame_type)
        frame = d.prop(self.name, "CCD_FRAME")
        x0, y0 = int(frame["X"]) // b, int(frame["Y"]) // b
        w, h = max(int(frame["WIDTH"]) // b, 1), max(int(frame["HEIGHT"]) // b, 1)
        image = np.ascontiguousarray(image[y0:y0 + h, x0:x0 + w])
        scale = p.scale * b
        rotation = p.rotation + (180.0 if d.pier_east else 0.0)
        dx, dy = sky_to_sensor(truth.west, truth.north, rotation, scale)
        err_ra, err_dec = e.mean_error()
        see_ra, see_dec = e.mean_seeing()
        header = {
            "EXPTIME": float(self.seconds), "PIXSIZE1": float(p.pixel_size), "PIXSIZE2": float(p.pixel_size),
            "XBINNING": b, "YBINNING": b, "FOCALLEN": float(p.focal_length), "SCALE": float(scale),
            "INSTRUME": self.name, "IMAGETYP": frame_type.title() + " Frame",
            "DATE-OBS": self.started_utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.started_utc.microsecond // 1000:03d}",
            "SKYTIME": float(e.start), "SKYEND": float(d.sky.t), "TRUERA": float(err_ra), "TRUEDEC": float(err_dec),
            "SEEINGRA": float(see_ra), "SEEINGDE": float(see_dec), "TRUEDX": float(dx), "TRUEDY": float(dy),
            "ROTATION": float(rotation), "PIERSIDE": "EAST" if d.pier_east else "WEST",
        }
        return image, header
