"""A node's `rotate` command (master and slave alike): turn its rotator (indi.rotator) until its
solved field's position angle is the target's (indisync.acquire.rotation).

Each solve frame is taken under the node's device lock (as the `solve` command's) and solved after
it is released; each rotator move holds the lock too, so no exposure of this node runs while its
camera turns. The node's abort (the `abort` command, the master's night leaving the state) or its
stop cancels the rotation: the rotator stops, the result says "cancelled". The sign this node's
rotator showed at its first move is kept for the next target (in memory; checked again each time).
"""

from __future__ import annotations

import contextlib
import logging

from ..contracts import RotateArgs, RotateResult
from ..errors import IndisyncError

log = logging.getLogger(__name__)

LOCK_WAIT_S = 60.0  # the node's camera busy longer than this: the rotation fails with the reason


class _AbortOrStop:
    """Cancelled when the node aborts (its abort gate) or stops."""

    def __init__(self, *events):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _held(lock, what: str):
    @contextlib.contextmanager
    def hold():
        if not lock.acquire(timeout=LOCK_WAIT_S):
            raise IndisyncError(f"busy: another exposure or autofocus did not finish within {LOCK_WAIT_S:g} s "
                                f"({what})")
        try:
            yield
        finally:
            lock.release()

    return hold


class _LockedRotator:
    """The rotator as rotate_to sees it: every move under the node's device lock."""

    def __init__(self, rotator, lock):
        self.rotator, self.hold = rotator, _held(lock, "rotator move")

    @property
    def angle(self) -> float:
        return self.rotator.angle

    def move_to(self, angle: float, cancel=None) -> float:
        with self.hold():
            return self.rotator.move_to(angle, cancel=cancel)


def rotate_node(node, command, progress) -> RotateResult:
    from ..acquire.live import SolveReport, take_and_solve
    from ..acquire.rotation import rotate_to

    args = RotateArgs.from_wire(command.args)
    target = args.pa % 360.0
    devices = node.supervisor.get()
    rotator = getattr(devices, "rotator", None)
    if rotator is None:
        name = node.cfg.indi.rotator
        why = "no rotator (indi.rotator is null)" if name is None else \
            f"no rotator: {name!r} (indi.rotator) is not on indiserver {node.cfg.indi.host}:{node.cfg.indi.port}"
        log.info("rotate to PA %.2f: %s", target, why)
        return RotateResult(status="no_rotator", reason=why, target_pa=target)
    if devices.camera is None:
        return RotateResult(status="failed", reason="no camera to solve with", target_pa=target)
    node.abort_gate.begin(command.sender, command.ts, "rotate")
    cancel = _AbortOrStop(node.abort_event, node.stop_event)
    settings = node.cfg.acquire
    hint = (args.ra, args.dec) if args.ra is not None and args.dec is not None else None
    hold = _held(node.device_lock, "solve frame")

    def solve():
        return SolveReport.from_dict(take_and_solve(devices.camera, devices.mount, settings, hint=hint, hold=hold(),
                                                    cancel=cancel))

    def on_attempt(a) -> None:
        if a.error:
            log.warning("rotate attempt %d: not solved: %s", a.number, a.error)
        else:
            log.info("rotate attempt %d: rotator %.2f deg, PA %.2f, %.2f deg from the target's %.2f", a.number,
                     a.angle, a.pa, a.error_deg, target)
        progress(None, attempt=a.number, angle=a.angle, pa=a.pa, error_deg=a.error_deg)

    log.info("rotating to PA %.2f (tolerance %g deg, at most %d move(s))", target, settings.pa_tolerance_deg,
             settings.rotate_attempts)
    result = rotate_to(_LockedRotator(rotator, node.device_lock), solve, target, settings, on_attempt=on_attempt,
                       cancel=cancel, sign=getattr(node, "rotator_sign", None))
    if result.sign is not None:
        node.rotator_sign = result.sign
    solution = result.solution
    answer = RotateResult(
        status="ok" if result.ok else "failed", reason=None if result.ok else (result.reason or "")[:500],
        target_pa=target, pa=result.pa, error_deg=None if result.error_deg is None else round(result.error_deg, 3),
        angle=result.angle, moves=result.moves, solves=result.solves, sign=result.sign,
        seconds=round(result.seconds, 3),
        ra=None if solution is None else solution.ra % 360.0, dec=None if solution is None else solution.dec,
        field_w_arcmin=None if solution is None else solution.field_w_arcmin,
        field_h_arcmin=None if solution is None else solution.field_h_arcmin,
        parity=None if solution is None else solution.parity)
    (log.info if result.ok else log.warning)(
        "rotate to PA %.2f: %s after %d move(s), %.0f s%s", target, "ok" if result.ok else "FAILED", result.moves,
        result.seconds, "" if result.ok else f": {result.reason}")
    return answer
