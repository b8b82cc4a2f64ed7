"""The night's `center` action: plate-solved centring on the master's mount and camera, then the
OTAs' co-alignment (indisync.acquire).

Centring (acquire.centering.center) runs under the master's device lock, as one motion of the rig's
arbiter under the token of ``centering``: leaving the state (rain, `indisync stop`, the window's end)
or a safety park cancels it, and the master stopping too. Every attempt is an event
(``center_attempt``) and a log line; the answer is ``Centered`` (ok, reason, error_arcsec, attempts)
and the machine decides what follows (acquire.on_failure).

After a good centring every live slave solves one frame of its own (the `solve` command, all at once,
bounded) and the master compares each field with its own last solution: the result is published in
the master's state (``coalign``), as one ``coalignment`` event per OTA (the night log keeps both)
and logged; an OTA below acquire.min_overlap_pct raises an error event. A slave that cannot solve
is reported as failed with its reason; one that never answers within the bound, likewise.

When the aim has a position angle (``rig.aim().pa``), every OTA with a rotator turns first (the
`rotate` command, the master's own in-process; all at once, bounded by rotate_wait): it solves,
turns, solves again until its PA is within acquire.pa_tolerance_deg (indisync.acquire.rotation).
Each OTA's result is the master's state ``rotation`` and a ``rotation`` event; an OTA without a
rotator says so; a failure is an error event, never the night's end. The co-alignment that follows
compares the fields as they are after rotating (the master's own from its rotation's last solve).
"""

from __future__ import annotations

import logging
import time

from ...errors import ActionCancelled
from ...node.locking import bounded
from ...protocol import messages
from ..events import Centered
from ..rig import aim_of, each

log = logging.getLogger(__name__)

CENTER_LOCK_WAIT_S = 60.0  # the master's camera busy longer than this: centring fails with the reason
COALIGN_MARGIN_S = 60.0  # beyond a slave's exposure and solve_timeout, for its download and the lock
DEFAULT_MOVE_TIMEOUT_S = 120.0  # indi.move_timeout's default: a rotator move, when the rig's config does not say


def centering_timeout(settings, rotate: bool = True) -> float:
    """The longest a centring plus co-alignment (and, with ``rotate``, the OTAs' rotation to a
    target's PA at the default indi.move_timeout) may take before the night counts as stuck."""
    one = settings.slew_timeout + settings.settle + settings.exposure + settings.solve_timeout + 30.0
    return settings.attempts * one + coalign_wait(settings) + 60.0 + (rotate_wait(settings) if rotate else 0.0)


def coalign_wait(settings) -> float:
    return 2 * settings.exposure + settings.solve_timeout + COALIGN_MARGIN_S


def rotate_wait(settings, move_timeout: float = DEFAULT_MOVE_TIMEOUT_S) -> float:
    """The longest an OTA's rotation may take: acquire.rotate_attempts moves (each up to
    indi.move_timeout, then acquire.settle) and one solve more than moves."""
    moves = settings.rotate_attempts * (move_timeout + settings.settle)
    return moves + (settings.rotate_attempts + 1) * coalign_wait(settings)


def center(ctx) -> Centered | None:
    """Plate-solved centring on the master's mount and camera, as one motion of the arbiter under the
    centering state's token: rain, a stop or the window's end cancels it (the slew inside aborts)."""
    from ...acquire.centering import Target, center as center_on

    rig, cfg, token = ctx.rig, ctx.rig.cfg, ctx.token
    if not ctx.plan.center:
        return Centered(ok=True, reason="night.center is off")
    settings = cfg.acquire
    where = aim_of(rig)  # master.target, or the season's current target
    devices = rig.devices()
    if where is None or getattr(devices, "mount", None) is None or devices.camera is None:
        return Centered(ok=False, reason="centring needs a target with ra/dec (master.target, or the season's), a "
                                         "mount and a camera", attempts=0)
    target = Target(where.ra, where.dec, where.name)

    def on_attempt(a) -> None:
        if a.error:
            log.warning("centring attempt %d/%d: not solved: %s", a.number, settings.attempts, a.error)
        else:
            log.info("centring attempt %d/%d: %.1f\" from the target (E %+.1f\", N %+.1f\"), solved in %.1f s",
                     a.number, settings.attempts, a.offset_arcsec, a.offset_east_arcsec, a.offset_north_arcsec,
                     a.solve_seconds or 0.0)
        rig.report.event("center_attempt", attempt=a.number, offset_arcsec=a.offset_arcsec,
                         offset_east_arcsec=a.offset_east_arcsec, offset_north_arcsec=a.offset_north_arcsec,
                         rotation_deg=a.rotation_deg, solve_s=a.solve_seconds,
                         error=None if a.error is None else a.error[:500])

    log.info("centring on %s (%.4f, %.4f J2000): tolerance %g\", at most %d attempt(s)", target.name,
             target.ra, target.dec, settings.tolerance_arcsec, settings.attempts)

    def motion():
        with bounded(rig.device_lock, CENTER_LOCK_WAIT_S, "centre on the target"):
            return center_on(devices.mount, devices.camera, target, settings, on_attempt=on_attempt, cancel=token)

    try:
        result = rig.arbiter.move(token, "centring", motion)
    except ActionCancelled:
        result = None
    if result is None:
        return None  # pre-empted before it began: whoever cancelled decides
    ok = result.centered and not token.is_set()
    reason = None if ok else ("cancelled: the night left centering" if token.is_set() else result.reason)
    error = result.final_offset_arcsec
    answer = Centered(ok=ok, reason=reason, error_arcsec=None if error is None else round(error, 2),
                      attempts=len(result.attempts))
    rig.report.event("center_done", ok=ok, attempts=len(result.attempts), error_arcsec=answer.error_arcsec,
                     seconds=round(result.seconds, 2), reason=None if reason is None else reason[:500])
    rig.report.update_state(centering={"ok": ok, "error_arcsec": answer.error_arcsec,
                                       "attempts": len(result.attempts), "at": messages.now_iso(),
                                       "reason": None if reason is None else reason[:500]})
    if ok:
        log.info("centred: %.1f\" from the target after %d attempt(s), %.0f s", error, len(result.attempts),
                 result.seconds)
        last = result.attempts[-1]
        mine = None
        if where.pa is not None and not token.is_set():  # the aim's position angle: the OTAs' rotators turn
            _, mine = rotate_rig(rig, last, where.pa, settings, token)
        if last.field_w_arcmin is not None and not token.is_set():
            coalign_rig(rig, last, settings, mine=mine)
    elif not token.is_set():
        log.error("centring failed: %s", reason)
        rig.report.error(f"centring failed: {reason}"[:1000])
    return answer


def coalign_rig(rig, last, settings, mine=None) -> dict[str, dict]:
    """Every live slave solves a frame; each field against the master's (``last``: its centring's
    last attempt; ``mine``: the master's field solved after its rotator turned, when it did).
    Published, logged, and returned (node -> entry)."""
    from ...acquire.coalign import (FieldSolution, coalign_entry, coalignment, describe_entry, failed_entry,
                                   low_overlap_warning)
    from ...acquire.live import SolveReport

    if mine is None:
        mine = FieldSolution(last.solved_ra, last.solved_dec, last.rotation_deg, last.field_w_arcmin,
                             last.field_h_arcmin, last.parity if last.parity is not None else 1)
    others = [p for p in rig.participants() if not p.local]
    if not others:
        log.info("co-alignment: no live slave to compare with")
        return {}
    wait = coalign_wait(settings)
    started = time.monotonic()
    # the hint: a slave without a mount of its own solves near the master's centre
    hint = {"ra": mine.ra % 360.0, "dec": mine.dec}
    outcomes = each(others, lambda p: p.solve(hint, wait), wait, "solve")
    entries: dict[str, dict] = {}
    for node, outcome in sorted(outcomes.items()):
        if not outcome.answered:
            entries[node] = failed_entry(f"no solve answer within {wait:g} s (acquire.exposure, solve_timeout)")
            continue
        if not outcome.ok:
            entries[node] = failed_entry(f"its solve failed: {outcome.reason or 'no reason given'}")
            continue
        try:
            theirs = SolveReport.from_dict(outcome.result or {}).field()
        except (TypeError, ValueError) as exc:
            entries[node] = failed_entry(f"its solve answered something else: {exc}")
            continue
        entries[node] = coalign_entry(coalignment(mine, theirs, settings.min_overlap_pct))
    entries = {node: entries[node] for node in sorted(entries, key=lambda n: (not outcomes[n].answered, n))}
    log.info("co-alignment of %d OTA(s) in %.1f s", len(entries), time.monotonic() - started)
    rig.report.update_state(coalign=entries)
    for node, entry in entries.items():
        rig.report.event("coalignment", ota=node, **entry)
        line = "co-alignment " + describe_entry(node, entry)
        warning = low_overlap_warning(node, entry, settings.min_overlap_pct)
        if warning is not None:
            log.warning(warning)
            rig.report.error(warning[:1000])
        elif entry["status"] != "ok":
            log.warning(line)
        else:
            log.info(line)
    return entries


def rotate_rig(rig, last, pa: float, settings, token) -> tuple[dict[str, dict], object | None]:
    """Every participant with a rotator turns its camera to ``pa`` (the aim's position angle), all
    at once and bounded (rotate_wait); one without a rotator says so. Each OTA's result is published
    (state ``rotation``, a ``rotation`` event each) and logged; a failure is an error event, never the
    night's end. Returns (node -> entry, the master's own field after it turned or None)."""
    from ...acquire.coalign import FieldSolution
    from ...contracts import RotateResult
    from ...errors import ProtocolError

    indi = getattr(rig.cfg, "indi", None)
    wait = rotate_wait(settings, getattr(indi, "move_timeout", DEFAULT_MOVE_TIMEOUT_S))
    hint = {} if last.solved_ra is None else {"ra": last.solved_ra % 360.0, "dec": last.solved_dec}
    participants = rig.participants()
    started = time.monotonic()
    log.info("rotating the OTAs to PA %.2f (acquire.pa_tolerance_deg %g)", pa % 360.0, settings.pa_tolerance_deg)
    outcomes = each(participants, lambda p: p.rotate(pa, hint, wait, cancel=token), wait, "rotate")
    local = {p.name for p in participants if p.local}
    entries: dict[str, dict] = {}
    mine = None
    for node, outcome in sorted(outcomes.items()):
        if not outcome.answered:
            entries[node] = _rotation_failed(pa, f"no rotate answer within {wait:g} s")
            continue
        if not outcome.ok:
            entries[node] = _rotation_failed(pa, f"its rotate failed: {outcome.reason or 'no reason given'}")
            continue
        try:
            r = RotateResult.from_wire(outcome.result or {})
        except ProtocolError as exc:
            entries[node] = _rotation_failed(pa, f"its rotate answered something else: {exc}")
            continue
        entries[node] = {"status": r.status, "target_pa": r.target_pa, "pa": r.pa, "error_deg": r.error_deg,
                         "moves": r.moves, "sign": r.sign, "angle": r.angle, "seconds": r.seconds,
                         "reason": None if r.reason is None else r.reason[:500]}
        if node in local and r.moves > 0 and r.ra is not None and r.field_w_arcmin is not None:
            mine = FieldSolution(r.ra, r.dec, r.pa, r.field_w_arcmin, r.field_h_arcmin,
                                 r.parity if r.parity is not None else 1)
    log.info("rotation of %d OTA(s) in %.1f s", len(entries), time.monotonic() - started)
    rig.report.update_state(rotation=entries)
    for node, entry in entries.items():
        rig.report.event("rotation", ota=node, **entry)
        line = describe_rotation(node, entry)
        if entry["status"] == "failed":
            log.warning(line)
            rig.report.error(line[:1000])
        else:
            log.info(line)
    return entries, mine


def _rotation_failed(pa: float, reason: str) -> dict:
    return {"status": "failed", "target_pa": round(pa % 360.0, 3), "pa": None, "error_deg": None, "moves": 0,
            "sign": None, "angle": None, "seconds": None, "reason": reason[:500]}


def describe_rotation(node: str, entry: dict) -> str:
    """'slave1: PA 30.12 (target 30.00, 0.12 deg off) after 2 move(s), sign -1'."""
    if entry["status"] == "no_rotator":
        return f"rotation {node}: {entry.get('reason') or 'no rotator'}"
    if entry["status"] != "ok":
        return f"rotation {node}: FAILED: {entry.get('reason') or 'no reason given'}"
    sign = "" if entry.get("sign") is None else f", sign {entry['sign']:+d}"
    return (f"rotation {node}: PA {entry['pa']:.2f} (target {entry['target_pa']:.2f}, "
            f"{abs(entry['error_deg']):.2f} deg off) after {entry['moves']} move(s){sign}")
