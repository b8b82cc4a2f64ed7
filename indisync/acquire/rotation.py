"""Turning an OTA's camera to a target's position angle with its rotator.

The sky's position angle of a frame is astrometry.net's orientation (the image's up, degrees east
of north: ``rotation_deg`` of a solve). A rotator knows only its own angle; how that maps onto the
sky depends on how the camera sits on it: the zero is anywhere, and the sense may be either way
(a rotator mounted the other way round, a mirror diagonal, a driver's reverse switch). So:

- the step is pure: ``next_angle(angle, solved_pa, target_pa, sign)`` turns the rotator by the PA's
  error (``pa_error``: target minus solved, -180..180), times ``sign`` (+1: the field's PA grows with
  the rotator's angle);
- the sign is learned from the first move: before it, +1 is assumed (or the sign this node learned
  at an earlier target); after it, the angle the rotator turned (read back) is compared with the
  angle the field turned (solved again). Same sense: +1, opposite: -1. When the field turned by
  less than half or more than twice what the rotator did, the camera is not on this rotator (or
  the rotator slips): rotating fails with that reason rather than guess;
- ``rotate_to`` drives it: solve, and while the PA is farther than acquire.pa_tolerance_deg from the
  target's, move and solve again, at most acquire.rotate_attempts moves. Each solve is an attempt,
  reported through ``on_attempt`` as it happens. A solve that fails is retried without a move
  (within the same number of solves); a field no index can solve ends it at once.

A failure is a result with a reason, never an exception: the night reports it and images on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..errors import ActionCancelled, DeviceError, IndisyncError, NoIndexError, SolveError
from .geometry import wrap180

log = logging.getLogger(__name__)

# The field must turn by this share of the rotator's move (either sense) for the sign to be learned;
# outside it the camera does not follow the rotator. Not a tuning knob: a geometric sanity check.
FOLLOW_RATIO = (0.5, 2.0)
CANCEL_POLL_S = 0.1  # how often the settle pause looks at its cancel flag


def pa_error(solved_pa: float, target_pa: float) -> float:
    """How far the field must still turn: target minus solved, -180..180 degrees."""
    return wrap180(target_pa - solved_pa)


def within_tolerance(solved_pa: float, target_pa: float, tolerance_deg: float) -> bool:
    return abs(pa_error(solved_pa, target_pa)) <= tolerance_deg


def next_angle(angle: float, solved_pa: float, target_pa: float, sign: int | None) -> float:
    """The rotator angle (0..360) that brings the field from ``solved_pa`` to ``target_pa``: the
    rotator turns by the PA's error, in its own sense (``sign``; None: not learned yet, +1 assumed)."""
    if sign not in (None, 1, -1):
        raise ValueError(f"sign must be +1, -1 or None, got {sign!r}")
    return (angle + (sign or 1) * pa_error(solved_pa, target_pa)) % 360.0


def learn_sign(angle_before: float, angle_after: float, pa_before: float, pa_after: float,
               min_turn_deg: float) -> int | None:
    """+1 when the field's PA turned the way the rotator's angle did, -1 the other way; None when
    the rotator turned less than ``min_turn_deg`` (nothing to learn from). ValueError when the field
    turned by less than half or more than twice the rotator's turn (see FOLLOW_RATIO)."""
    turned = wrap180(angle_after - angle_before)
    seen = wrap180(pa_after - pa_before)
    if abs(turned) < min_turn_deg:
        return None
    ratio = abs(seen) / abs(turned)
    if not FOLLOW_RATIO[0] <= ratio <= FOLLOW_RATIO[1]:
        raise ValueError(f"the rotator turned {turned:+.2f} deg but the field {seen:+.2f} deg: is this camera "
                         "on indi.rotator, and does the rotator hold it (no slip)?")
    return 1 if seen * turned > 0 else -1


@dataclass
class RotateAttempt:
    number: int  # the solve's number, from 1
    angle: float  # the rotator's angle during this frame
    pa: float | None = None  # solved (rotation_deg)
    error_deg: float | None = None  # target minus solved, -180..180
    solve_seconds: float | None = None
    error: str | None = None  # why this solve failed

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RotationResult:
    target_pa: float
    ok: bool = False
    pa: float | None = None  # the last solved PA
    error_deg: float | None = None  # its error
    angle: float | None = None  # the rotator's angle at the end
    moves: int = 0
    sign: int | None = None  # learned (or given and not contradicted)
    attempts: list[RotateAttempt] = field(default_factory=list)
    reason: str | None = None  # why it failed
    seconds: float = 0.0
    solution: Any = None  # the last successful solve's result (the caller's type), for co-alignment

    @property
    def solves(self) -> int:
        return len(self.attempts)


def rotate_to(rotator, solve: Callable[[], Any], target_pa: float, settings,
              on_attempt: Callable[[RotateAttempt], None] | None = None, cancel=None,
              sign: int | None = None) -> RotationResult:
    """Turn ``rotator`` until ``solve()``'s ``rotation_deg`` is within settings.pa_tolerance_deg of
    ``target_pa``. ``solve()`` takes and solves one frame (SolveError when it cannot); ``rotator``
    has ``angle`` and ``move_to(angle, cancel=...)``; ``sign``: one learned before (checked again by
    this rotation's first move). DeviceError of the rotator is a failed result with its reason."""
    started = time.monotonic()
    result = RotationResult(target_pa=target_pa % 360.0, sign=sign)
    tolerance, budget = settings.pa_tolerance_deg, settings.rotate_attempts + 1
    before: tuple[float, float] | None = None  # (angle, pa) of the solve before the last move
    learned = False
    try:
        while len(result.attempts) < budget:
            if cancel is not None and cancel.is_set():
                result.reason = "cancelled"
                break
            angle = rotator.angle
            attempt = RotateAttempt(len(result.attempts) + 1, angle)
            result.attempts.append(attempt)
            result.angle = angle
            try:
                solution = solve()
            except NoIndexError as exc:
                attempt.error = str(exc)
                _report(on_attempt, attempt)
                result.reason = str(exc)
                break
            except SolveError as exc:
                attempt.error = str(exc)
                _report(on_attempt, attempt)
                continue
            except ActionCancelled:
                raise
            except IndisyncError as exc:  # the camera failed, or stayed busy: no frame to solve
                attempt.error = str(exc)
                _report(on_attempt, attempt)
                result.reason = f"no solve frame: {exc}"
                break
            pa = float(solution.rotation_deg)
            attempt.pa, attempt.error_deg = pa, pa_error(pa, target_pa)
            attempt.solve_seconds = getattr(solution, "seconds", None)
            result.pa, result.error_deg, result.solution = pa, attempt.error_deg, solution
            _report(on_attempt, attempt)
            if before is not None and not learned:
                try:
                    found = learn_sign(before[0], angle, before[1], pa, min_turn_deg=tolerance / 2)
                except ValueError as exc:
                    result.reason = str(exc)
                    break
                if found is not None:
                    if result.sign is not None and found != result.sign:
                        log.warning("rotator: the field now turns the other way than learned before (%+d)",
                                    result.sign)
                    result.sign, learned = found, True
                    log.info("rotator: the field's PA turns %s the rotator's angle (sign %+d, from its first move)",
                             "with" if found > 0 else "against", found)
            if abs(attempt.error_deg) <= tolerance:
                result.ok = True
                break
            if result.moves >= settings.rotate_attempts:
                break
            target_angle = next_angle(angle, pa, target_pa, result.sign)
            log.info("rotator: PA %.2f, target %.2f: turning %.2f -> %.2f deg", pa, target_pa % 360.0, angle,
                     target_angle)
            try:
                result.angle = rotator.move_to(target_angle, cancel=cancel)
            except ActionCancelled:
                raise
            except IndisyncError as exc:
                result.reason = f"the rotator failed: {exc}"
                break
            result.moves += 1
            before = (angle, pa)
            if _pause(getattr(settings, "settle", 0.0), cancel):
                result.reason = "cancelled"
                break
    except ActionCancelled:
        result.reason = "cancelled"
    except DeviceError as exc:  # reading the rotator's angle
        result.reason = f"the rotator failed: {exc}"
    if not result.ok and result.reason is None:
        if result.pa is None:
            last = result.attempts[-1].error if result.attempts else "none made"
            result.reason = f"no frame solved in {len(result.attempts)} attempt(s): {last}"
        else:
            result.reason = (f"the field's PA is still {abs(result.error_deg):.2f} deg from the target's "
                             f"{result.target_pa:.2f} after {result.moves} move(s) (acquire.pa_tolerance_deg "
                             f"{tolerance:g}, rotate_attempts {settings.rotate_attempts})")
    result.seconds = time.monotonic() - started
    return result


def _pause(seconds: float, cancel) -> bool:
    """Let the rotator settle before the check frame (acquire.settle); True when cancelled meanwhile.
    ``cancel`` needs only ``is_set()`` (a node's abort-or-stop), so the wait is in short slices."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        if cancel is not None and cancel.is_set():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(CANCEL_POLL_S, left))


def _report(on_attempt, attempt: RotateAttempt) -> None:
    if on_attempt is None:
        return
    try:
        on_attempt(attempt)
    except Exception:  # a listener's bug must not end rotating half-way, nor pass in silence
        log.exception("rotation: on_attempt listener failed")
