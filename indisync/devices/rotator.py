"""A camera rotator over INDI's ABS_ROTATOR_ANGLE (degrees, as the rotator counts them).

The angle is the rotator's own: how it relates to the sky's position angle (the sign, the zero)
depends on how the camera sits on it, and indisync.acquire.rotation learns that from the solved
frames, never from here. A move is bounded by ``move_timeout``: a move that does not end in time,
ends in Alert or whose driver vanishes is stopped (ROTATOR_ABORT_MOTION) and raises DeviceError; a
move given ``cancel`` (see props.py) stops the rotator when cancelled and raises ActionCancelled. The
angle it ends at is read back: farther than ``tolerance_deg`` from the one asked for is an error.
"""

from __future__ import annotations

import logging
import time

from ..errors import ActionCancelled, DeviceError
from .device import IndiDevice
from .props import Cancel, check_cancel, last_message, set_number, set_switch, wait_answer

log = logging.getLogger(__name__)

ANGLE = ("ABS_ROTATOR_ANGLE", "ANGLE")
ABORT = ("ROTATOR_ABORT_MOTION", "ABORT")


def angle_apart(a: float, b: float) -> float:
    """The angle between two rotator angles, 0..180 degrees (360 = 0)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


class Rotator(IndiDevice):
    key_properties = (ANGLE[0],)

    @property
    def angle(self) -> float:
        """Where the rotator is now, degrees (its own 0..360)."""
        snap = self.client.wait_property(self.name, ANGLE[0], self.property_timeout)
        return float(snap.values[ANGLE[1]])

    @property
    def limits(self) -> tuple[float, float]:
        """The angles the driver accepts (the Rotator Simulator: 0..360)."""
        snap = self.client.wait_property(self.name, ANGLE[0], self.property_timeout)
        lo, hi = snap.limits.get(ANGLE[1], (0.0, 360.0))
        return (0.0, 360.0) if lo is None or hi is None or hi <= lo else (float(lo), float(hi))

    def move_to(self, angle: float, timeout: float | None = None, tolerance_deg: float = 0.5,
                cancel: Cancel | None = None) -> float:
        """Turn to ``angle`` (taken modulo 360) and wait until the rotator stops there; returns the
        angle read back. DeviceError when the driver refuses (Alert), does not finish within
        ``timeout`` (default move_timeout: the motion is aborted) or ends elsewhere."""
        timeout = self.move_timeout if timeout is None else timeout
        target = angle % 360.0
        lo, hi = self.limits
        if not lo <= target <= hi:
            raise DeviceError(f"{self.name}: angle {target:.2f} is outside the rotator's range {lo:g}..{hi:g}")
        what = f"{self.name}: turn to {target:.2f} deg"
        started = time.monotonic()
        check_cancel(cancel, what)
        in_flight = False
        try:
            before = self.client.generation()
            set_number(self.client, self.name, ANGLE[0], {ANGLE[1]: target}, self.property_timeout, wait=False,
                       cancel=cancel)
            in_flight = True
            wait_answer(self.client, self.name, ANGLE[0], before, timeout, cancel)
        except ActionCancelled:
            if in_flight:
                self._abort_quietly()
                raise ActionCancelled(f"{what} cancelled after {time.monotonic() - started:.1f} s; motion aborted") \
                    from None
            raise
        except DeviceError as exc:
            if in_flight:
                self._abort_quietly()
            raise DeviceError(f"{what} failed{', motion aborted' if in_flight else ''}: {exc}") from None
        got = self.angle
        if angle_apart(got, target) > tolerance_deg:
            raise DeviceError(f"{what} ended at {got:.2f} deg (allowed {tolerance_deg:g} deg off): "
                              f"{last_message(self.client, self.name) or 'no message from the driver'}")
        log.info("%s turned to %.2f deg in %.1f s", self.name, got, time.monotonic() - started)
        return got

    def abort(self) -> None:
        """Stop the rotator now (ROTATOR_ABORT_MOTION) and wait for the driver's answer."""
        set_switch(self.client, self.name, ABORT[0], [ABORT[1]], self.property_timeout)

    def _abort_quietly(self) -> None:
        try:
            self.abort()
        except DeviceError as exc:
            log.error("%s: could not abort the motion: %s", self.name, exc)
