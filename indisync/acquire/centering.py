"""Centring on a target: slew, take a frame, plate-solve it, correct, and slew again until the
solved centre is within acquire.tolerance_arcsec of the target or acquire.attempts are used.

Correction (acquire.correction):
- ``offset`` (default) re-aims the goto by the measured error: the next slew goes to
  aim + (target - solved). It needs nothing from the mount but gotos, leaves any pointing model
  alone, and is what converges on a mount whose error is a function of where it points (the INDI
  simulators' SIM_POLAR is exactly that: a sync does not move the simulated field).
- ``sync`` tells the mount it points at the solved position (ON_COORD_SET=SYNC) and slews to the
  target again: right for a mount that builds its model from syncs.

The routine sees the mount and camera through a few methods (slew_j2000, sync_j2000,
focal_length_mm; expose), so the night executor, the CLI and a unit test drive the same code.
Each attempt is reported through ``on_attempt`` as it happens (the night publishes it as an event).
A device failure (the slew timed out, the camera failed) raises DeviceError: the caller decides
whether that means parking; a solve that fails is an attempt used, except when no index can ever
solve this field (NoIndexError), which ends centring at once.

The mount must be unparked by the caller: its slew never unparks (a parked mount is a DeviceError).
``cancel`` reaches the slew too, which stops its goto when cancelled; either way the result says
"cancelled".
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from ..errors import ActionCancelled, NoIndexError, SolveError
from .geometry import apply_offset, tangent_offset
from .settings import AcquireSettings
from .solver import hints_from_header, solve_hdu

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    ra: float  # J2000 degrees
    dec: float
    name: str | None = None


@dataclass
class CenterAttempt:
    number: int
    aim_ra: float  # where the goto was sent (J2000 degrees)
    aim_dec: float
    solved_ra: float | None = None
    solved_dec: float | None = None
    offset_arcsec: float | None = None  # solved centre to target
    offset_east_arcsec: float | None = None  # target minus solved, on the sky
    offset_north_arcsec: float | None = None
    rotation_deg: float | None = None
    solve_seconds: float | None = None
    error: str | None = None  # why this attempt's solve failed
    # the solved field, for co-alignment against this frame (the night's last attempt is the master's)
    field_w_arcmin: float | None = None
    field_h_arcmin: float | None = None
    parity: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CenterResult:
    target: Target
    centered: bool
    attempts: list[CenterAttempt] = field(default_factory=list)
    final_offset_arcsec: float | None = None
    reason: str | None = None  # why it failed
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"target": asdict(self.target), "centered": self.centered,
                "attempts": [a.as_dict() for a in self.attempts], "final_offset_arcsec": self.final_offset_arcsec,
                "reason": self.reason, "seconds": self.seconds}


def center(mount, camera, target: Target, settings: AcquireSettings,
           on_attempt: Callable[[CenterAttempt], None] | None = None,
           cancel: threading.Event | None = None, solve=solve_hdu) -> CenterResult:
    started = time.monotonic()
    result = CenterResult(target, centered=False)
    aim = (target.ra, target.dec)
    focal = getattr(mount, "focal_length_mm", None)
    for number in range(1, settings.attempts + 1):
        if cancel is not None and cancel.is_set():
            result.reason = "cancelled"
            break
        attempt = CenterAttempt(number, aim[0], aim[1])
        result.attempts.append(attempt)
        try:
            mount.slew_j2000(aim[0], aim[1], timeout=settings.slew_timeout, cancel=cancel)
        except ActionCancelled:
            result.reason = "cancelled"
            break
        if _pause(settings.settle, cancel):
            result.reason = "cancelled"
            break
        hdu = camera.expose(settings.exposure, settings.binning)
        hints = hints_from_header(hdu.header, settings, focal_mm=focal, ra=aim[0], dec=aim[1])
        try:
            solution = solve(hdu, hints, settings, cancel)
        except NoIndexError as exc:
            attempt.error = str(exc)
            _report(on_attempt, attempt)
            result.reason = str(exc)
            break
        except SolveError as exc:
            attempt.error = str(exc)
            log.warning("centring attempt %d: %s", number, exc)
            _report(on_attempt, attempt)
            continue
        east, north = tangent_offset(solution.ra, solution.dec, target.ra, target.dec)
        attempt.solved_ra, attempt.solved_dec = solution.ra, solution.dec
        attempt.offset_east_arcsec, attempt.offset_north_arcsec = east, north
        attempt.offset_arcsec = math.hypot(east, north)
        attempt.rotation_deg, attempt.solve_seconds = solution.rotation_deg, solution.seconds
        attempt.field_w_arcmin, attempt.field_h_arcmin = solution.field_w_arcmin, solution.field_h_arcmin
        attempt.parity = solution.parity
        result.final_offset_arcsec = attempt.offset_arcsec
        _report(on_attempt, attempt)
        if attempt.offset_arcsec <= settings.tolerance_arcsec:
            result.centered = True
            break
        if number == settings.attempts:
            break
        if settings.correction == "sync":
            mount.sync_j2000(solution.ra, solution.dec)
            aim = (target.ra, target.dec)
        else:
            aim = apply_offset(aim[0], aim[1], east, north)
    if not result.centered and result.reason is None:
        if result.final_offset_arcsec is None:
            result.reason = (f"no frame solved in {len(result.attempts)} attempt(s): "
                             f"{result.attempts[-1].error if result.attempts else 'none made'}")
        else:
            result.reason = (f"still {result.final_offset_arcsec:.1f}\" from the target after {len(result.attempts)} "
                             f"attempt(s) (acquire.tolerance_arcsec {settings.tolerance_arcsec:g}); raise "
                             "acquire.attempts or the tolerance, or check the mount for slop")
            solved = [a.offset_arcsec for a in result.attempts if a.offset_arcsec is not None]
            if settings.correction == "sync" and len(solved) >= 2 and solved[-1] > 0.8 * solved[0]:
                # seen on the INDI simulators: their pointing error follows the reported position
                result.reason += "; the syncs did not reduce the error: try acquire.correction: offset"
    result.seconds = time.monotonic() - started
    return result


def _pause(seconds: float, cancel: threading.Event | None) -> bool:
    """Let the mount settle after a slew; True when cancelled meanwhile."""
    if cancel is not None:
        return cancel.wait(seconds)
    time.sleep(seconds)
    return False


def _report(on_attempt, attempt: CenterAttempt) -> None:
    if on_attempt is None:
        return
    try:
        on_attempt(attempt)
    except Exception:  # a listener's bug must not end centring half-way, nor pass in silence
        log.exception("centring: on_attempt listener failed")
