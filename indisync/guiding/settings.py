"""The ``guider:`` config section and the dither settings the master uses between frames.

Example (all keys optional; these are the defaults)::

    guider:
      exposure: 1.0              # seconds per guide frame
      binning: 1
      calibration_step_ms: 500   # one calibration pulse
      calibration_distance: 15.0 # px to move along each axis while calibrating
      calibration_max_steps: 12  # pulses per direction before giving up
      calibration_min_move: 3.0  # px; less than this after all steps: the mount did not move
      max_orthogonality_error: 15.0  # degrees the RA and Dec axes may be off square
      aggressiveness: 0.7        # fraction of the measured error corrected per frame (RA)
      dec_aggressiveness: 0.7
      hysteresis: 0.1            # RA: weight of the previous correction
      drift_gain: 0.1            # RA: fraction of the summed error added per frame (cancels steady drift)
      dec_drift_gain: 0.0        # the same for Dec (off: Dec reversals meet backlash)
      min_move: 0.15             # px; smaller errors get no pulse
      min_pulse_ms: 10
      max_pulse_ms: 2000
      dec_mode: auto             # auto | north | south | off
      pulse_settle: 0.2          # s to wait after a pulse ends before the next exposure
      pixel_scale: null          # arcsec/px; null: from the frame header (SCALE or PIXSIZE1/FOCALLEN)
      search_radius: 20          # px around each star's expected position
      max_stars: 5               # stars averaged into one measurement (1 = single-star guiding)
      min_snr: 8.0
      saturation: null           # ADU; null: 95% of the frame's data type maximum
      edge_margin: 30            # px; guide stars keep this far from the frame edges
      isolation: 15              # px; no comparable star may be nearer
      lost_after_frames: 3       # consecutive frames without the star before "star lost"
      reacquire_after_frames: 10 # frames lost before a new star is chosen; 0 = wait for it
      exposure_retries: 2        # failed guide frames in a row ridden out before guiding stops
      pulse_via: mount           # mount: the mount's TIMED_GUIDE; camera: the guide camera's ST4 port
      calibration_max_dec: 80.0  # degrees; closer to a pole calibration is refused (RA barely moves)

    master:
      dither: {every_frames: 1, pixels: 3.0, ra_only: false,
               settle: {pixels: 1.5, time: 10, timeout: 60}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError


@dataclass
class GuiderSettings:
    exposure: float = 1.0  # seconds per guide frame
    binning: int = 1
    # Calibration: pulse one direction in steps of calibration_step_ms until the star has moved
    # calibration_distance px (PHD2 aims at ~25 px in ~12 steps), then back; the same for Dec.
    calibration_step_ms: int = 500
    calibration_distance: float = 15.0
    calibration_max_steps: int = 12
    # A move shorter than this after calibration_max_steps means the mount does not respond
    # (guide cable, parked, pulses going to another device): calibration fails rather than guess.
    calibration_min_move: float = 3.0
    # RA and Dec should move the star at right angles; further off than this the calibration is
    # not trusted (star confusion, backlash, a mount that moved during calibration).
    max_orthogonality_error: float = 15.0
    # Fraction of the measured error corrected per frame. Below 1 because the measurement carries
    # seeing noise; PHD2's defaults are 0.7 (RA) and 1.0 (Dec resist-switch).
    aggressiveness: float = 0.7
    dec_aggressiveness: float = 0.7
    # RA hysteresis: the correction is (1-h)·error + h·previous (PHD2's hysteresis algorithm).
    hysteresis: float = 0.1
    # RA: each frame the sum of past errors times this is added to the correction, so a steady drift
    # (periodic error, polar misalignment) is cancelled instead of trailed by drift/aggressiveness px.
    # 0 = PHD2's plain hysteresis guider. Dec: off by default, a Dec integrator reverses into backlash.
    drift_gain: float = 0.1
    dec_drift_gain: float = 0.0
    # Errors below this many pixels are seeing, not drift: no pulse.
    min_move: float = 0.15
    min_pulse_ms: int = 10  # shorter pulses are dropped: mounts ignore or mangle them
    max_pulse_ms: int = 2000  # one correction never exceeds this (a bad centroid cannot fling the mount)
    # auto: pulse both ways; north/south: only that way (a mount with Dec backlash guided against a
    # known drift); off: no Dec corrections.
    dec_mode: Literal["auto", "north", "south", "off"] = "auto"
    # Seconds to wait after a pulse ends before the next exposure starts, so the frame shows the
    # corrected position (mounts report completion before they have fully settled).
    pulse_settle: float = 0.2
    pixel_scale: float | None = None  # arcsec per (binned) pixel; null: from the frame header
    search_radius: float = 20.0  # px around a star's expected position where its centroid is sought
    max_stars: int = 5  # averaging several stars beats single-star seeing and pixel noise
    min_snr: float = 8.0  # a star below this SNR is not found (lost, or not chosen)
    saturation: float | None = None  # ADU at which a pixel counts as saturated; null: 95% of dtype max
    edge_margin: float = 30.0  # px; a guide star nearer the edge could drift out of the frame
    isolation: float = 15.0  # px; a neighbour within this (and >10% of the flux) spoils the centroid
    lost_after_frames: int = 3
    reacquire_after_frames: int = 10
    # A guide frame that fails (driver ALERT, a BLOB that never came) is retried this many times in a
    # row before guiding stops with an error: one bad frame must not end a night's guiding.
    exposure_retries: int = 2
    # Where guide pulses go: the mount's TELESCOPE_TIMED_GUIDE_NS/WE (pulse guiding), or the guide
    # camera's own TIMED_GUIDE properties (its ST4 jack, cabled to the mount's autoguider port).
    pulse_via: Literal["mount", "camera"] = "mount"
    # Calibration is refused with |Dec| above this: RA pulses move the star by cos(Dec) of their rate,
    # so near a pole the RA axis cannot be measured (cos(80) = 0.17; PHD2 advises |Dec| < 60).
    calibration_max_dec: float = 80.0
    # After a meridian flip the calibration is mirrored for the new pier side: the RA direction on
    # the sensor turns 180 deg (always), the Dec direction too only with flip_dec (PHD2's "reverse Dec
    # output after meridian flip", off by default there too). Measured on INDI's Telescope + Guide
    # Simulator: calibrated afresh east of the pier, RA had turned 180 deg and Dec had not.
    # (flip.recalibrate: true calibrates afresh instead.)
    flip_dec: bool = False

    def validate(self) -> None:
        positive = ("exposure", "calibration_distance", "search_radius", "min_snr", "isolation")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: a positive number")
        for key in ("binning", "calibration_step_ms", "calibration_max_steps", "max_pulse_ms", "max_stars",
                    "lost_after_frames"):
            if getattr(self, key) < 1:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: an integer >= 1")
        for key in ("aggressiveness", "dec_aggressiveness"):
            if not 0 < getattr(self, key) <= 2:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: 0 < value <= 2 (1 = full correction)")
        for key in ("drift_gain", "dec_drift_gain"):
            if not 0 <= getattr(self, key) <= 0.5:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: 0 <= value <= 0.5 (0 = off)")
        if not 0 <= self.hysteresis < 1:
            raise ConfigValueError("hysteresis", f"got {self.hysteresis}; allowed: 0 <= value < 1")
        for key in ("min_move", "min_pulse_ms", "pulse_settle", "edge_margin", "reacquire_after_frames",
                    "exposure_retries", "max_orthogonality_error", "calibration_min_move"):
            if getattr(self, key) < 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: a number >= 0")
        if not 0 < self.calibration_max_dec <= 90:
            raise ConfigValueError("calibration_max_dec", f"got {self.calibration_max_dec}; allowed: 0 < degrees <= 90")
        if self.min_pulse_ms > self.max_pulse_ms:
            raise ConfigValueError("min_pulse_ms", "must not exceed max_pulse_ms")
        if self.calibration_min_move >= self.calibration_distance:
            raise ConfigValueError("calibration_min_move", "must be smaller than calibration_distance")
        if self.pixel_scale is not None and self.pixel_scale <= 0:
            raise ConfigValueError("pixel_scale", "allowed: a positive number of arcsec per pixel, or null")
        if self.saturation is not None and self.saturation <= 0:
            raise ConfigValueError("saturation", "allowed: a positive ADU level, or null")


@dataclass
class SettleSettings:
    pixels: float = 1.5  # the star is settled when within this many px of the lock position...
    time: float = 10.0  # ...continuously for this many seconds
    timeout: float = 60.0  # and the dither fails if that has not happened within this many seconds

    def validate(self) -> None:
        if self.pixels <= 0:
            raise ConfigValueError("pixels", f"got {self.pixels}; allowed: a positive number of pixels")
        if self.time < 0:
            raise ConfigValueError("time", f"got {self.time}; allowed: seconds >= 0")
        if self.timeout <= self.time:
            raise ConfigValueError("timeout", f"got {self.timeout}; allowed: more seconds than settle.time ({self.time})")


@dataclass
class DitherSettings:
    every_frames: int = 1  # dither after every Nth frame of the master; 0 = never
    pixels: float = 3.0  # largest shift of the lock position per axis, in guide-camera pixels
    ra_only: bool = False  # shift along RA only (mounts with bad Dec backlash)
    settle: SettleSettings = field(default_factory=SettleSettings)

    def validate(self) -> None:
        if self.every_frames < 0:
            raise ConfigValueError("every_frames", f"got {self.every_frames}; allowed: an integer >= 0 (0 = never)")
        if self.pixels <= 0:
            raise ConfigValueError("pixels", f"got {self.pixels}; allowed: a positive number of pixels")
