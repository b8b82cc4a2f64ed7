"""Sky flats in twilight: ``sky_flats(ctx, direction)``, the action of dusk_flats and dawn_flats.

The sets come from the night record (indisync.calib.needs over the master's night logs, plus
flats.always): nothing needed anywhere answers at once without moving anything. Otherwise, through
the arbiter (a park pre-empts it at any step): the dome opens, the mount unparks, slews to the flat
spot (indisync.calib.sky.flat_spot: the anti-solar azimuth at flats.altitude) and stops tracking;
every node cools meanwhile (bounded by flats.cool_timeout; the flats go on whatever it reached).
Then every node takes its own flats at once (its `flats` command: sky mode, the direction, the sets
its lights used) while this action moves the mount every flats.offset_every_s to the flat spot as
it is then, alternately flats.offset_arcmin north and south of it (stars never stack), tracking off
after every move. Leaving the state (rain, stop, the interval's end) cancels the token: every node
aborts (frames kept so far stay), the nudging stops, and nothing is answered.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from ...calib import needs as calib_needs
from ...calib import sky
from ...calib.model import FlatSet
from ...contracts import FlatsArgs
from ...errors import ActionCancelled
from ...record.service import nights_directory
from ..events import FlatsDone
from ..planning import ANSWER_MARGIN_S, COMMAND_TIMEOUT_S, COOL_MARGIN_S, flats_site, slew_timeout
from ..rig import Outcome, each
from ..token import AnyOf

log = logging.getLogger(__name__)

JOIN_S = 10.0  # how long the cancelled nudging or the flats' threads are waited for


def sets_needed(ctx, names: list[str], direction: str, now: float) -> dict[str, list[FlatSet]]:
    """Per node: the sets its lights used since its last flats of them, plus flats.always (those
    already taken tonight left out)."""
    cfg = ctx.rig.cfg
    entries = calib_needs.read_entries(nights_directory(cfg), cfg.flats.lookback_days, now)
    return calib_needs.needed_flats(entries, cfg.flats.always, nodes=names, since=_night_began(ctx, now))


def _night_began(ctx, now: float) -> float:
    """When tonight's calibration began: the dusk interval's start, else the window's, else a day ago."""
    snap = getattr(ctx.night, "snapshot", None)
    starts = [v for v in ((snap.flats_dusk or [None])[0] if snap else None, snap.window_start if snap else None)
              if v is not None and v <= now]
    return min(starts) if starts else now - 86400.0


def sky_flats(ctx, direction: str):
    rig, token, flats = ctx.rig, ctx.token, ctx.rig.cfg.flats
    now = ctx.night.clock()
    participants = list(rig.participants())
    needs = sets_needed(ctx, [p.name for p in participants], direction, now)
    takers = [p for p in participants if needs.get(p.name)]
    if not takers:
        log.info("%s flats: no flats needed (no lights since the last flats, no flats.always)", direction)
        return FlatsDone(ok=True, direction=direction, reason="no flats needed")
    for p in takers:
        log.info("%s flats on %s: %s", direction, p.name, ", ".join(s.label() for s in needs[p.name]))
    devices = rig.devices()
    site = flats_site(rig.cfg, devices)
    if site is None:
        return FlatsDone(ok=False, direction=direction, reason="no site for the flat spot (no site: section, no "
                                                               "GEOGRAPHIC_COORD from the mount)")
    cooled = _cool_in_background(takers, flats.cool_timeout)
    rig.arbiter.move(token, f"{direction} flats: point at the flat spot",
                     lambda: _open_and_point(ctx, devices, site, 0.0, first=True))
    cooled.join(flats.cool_timeout + COOL_MARGIN_S)  # whatever it reached: the flats go on
    token.check(f"{direction} flats")
    outcomes = _take_while_nudging(ctx, takers, devices, site, needs, direction)
    token.check(f"{direction} flats")  # cancelled meanwhile: whoever cancelled decides what comes next
    return summarise(direction, outcomes)


def _cool_in_background(participants: list, timeout: float) -> threading.Thread:
    def run() -> None:
        try:
            outcomes = each(participants, lambda p: p.cool(timeout), timeout + COOL_MARGIN_S, "cool")
            missing = sorted(n for n, o in outcomes.items() if not o.ok or not o.result.get("reached", True))
            if missing:
                log.warning("flats: %s did not reach the cooling setpoint within %g s (flats.cool_timeout); "
                            "taking flats anyway", ", ".join(missing), timeout)
        except Exception:  # noqa: BLE001 - the thread never dies silently; cooling is a nicety here
            log.exception("flats: cooling failed")

    thread = threading.Thread(target=run, name="night-flats-cool", daemon=True)
    thread.start()
    return thread


def _open_and_point(ctx, devices, site, offset_deg: float, first: bool) -> None:
    """(First: open the dome, unpark.) Slew to the flat spot as it is now, ``offset_deg`` north of
    it, and stop tracking. Runs inside the arbiter's move: every step checks the token."""
    token, rig = ctx.token, ctx.rig
    if first:
        dome = getattr(devices, "dome", None)
        if dome is not None:
            dome.unpark(COMMAND_TIMEOUT_S, cancel=token)
            token.check("open the dome")
            dome.open_shutter(COMMAND_TIMEOUT_S, cancel=token)
        token.check("unpark the mount")
        devices.mount.unpark(COMMAND_TIMEOUT_S, cancel=token)
    ra, dec = sky.flat_spot(site, datetime.fromtimestamp(ctx.night.clock(), timezone.utc), rig.cfg.flats.altitude)
    dec = max(-89.9, min(89.9, dec + offset_deg))
    token.check("slew to the flat spot")
    devices.mount.slew_j2000(ra, dec, slew_timeout(rig.cfg), cancel=token)
    token.check("tracking off")
    devices.mount.set_tracking(False, cancel=token)
    log.info("flats: at the flat spot RA %.3f Dec %+.3f (J2000)%s, tracking off", ra, dec,
             f", {offset_deg * 60:+.0f}'" if offset_deg else "")


def _take_while_nudging(ctx, takers, devices, site, needs, direction) -> dict[str, Outcome]:
    """Every node's flats at once (this thread waits for them); a thread of its own moves the mount
    every flats.offset_every_s meanwhile. Both end with the token."""
    rig, token, flats = ctx.rig, ctx.token, ctx.rig.cfg.flats
    args = {p.name: FlatsArgs(mode="sky", direction=direction, sets=tuple(s.to_wire() for s in needs[p.name]),
                              timeout=flats.timeout) for p in takers}
    finished = threading.Event()
    problems: list[str] = []

    def nudge() -> None:
        k, stop = 0, AnyOf(finished, token)
        while not stop.wait(flats.offset_every_s):
            k += 1
            offset = (flats.offset_arcmin / 60.0) * (1 if k % 2 else -1)
            try:
                rig.arbiter.move(token, f"{direction} flats: offset",
                                 lambda: _open_and_point(ctx, devices, site, offset, first=False))
            except ActionCancelled:
                return
            except Exception as exc:  # noqa: BLE001 - a missed nudge costs a frame's offset, not the flats
                if not problems:
                    log.warning("flats: moving the mount between frames failed (%s); the flats go on", exc)
                    rig.report.error(f"flats: moving the mount between frames failed: {exc}"[:1000])
                problems.append(str(exc))

    nudger = threading.Thread(target=nudge, name="night-flats-nudge", daemon=True)
    nudger.start()
    started = time.monotonic()
    try:
        outcomes = each(takers, lambda p: p.flats(args[p.name], flats.timeout + ANSWER_MARGIN_S, cancel=token),
                        flats.timeout + 2 * ANSWER_MARGIN_S, "flats")
    finally:
        finished.set()
        nudger.join(JOIN_S + slew_timeout(rig.cfg))
    log.info("%s flats: every node answered in %.0f s (%d mount move(s) failed)", direction,
             time.monotonic() - started, len(problems))
    return outcomes


def summarise(direction: str, outcomes: dict[str, Outcome]) -> FlatsDone:
    """The nodes' answers as one FlatsDone: frames kept and taken over every node, and per node what
    it did (sets ok / partial / failed, with the reasons of the failed ones)."""
    kept = taken = 0
    parts, good = [], 0
    for node in sorted(outcomes):
        o = outcomes[node]
        if not o.ok:
            parts.append(f"{node}: failed ({o.reason or 'no reason given'})")
            continue
        result = o.result or {}
        sets = result.get("sets") or ()
        kept += sum(int(s.get("kept") or 0) for s in sets)
        taken += sum(int(s.get("taken") or 0) for s in sets)
        status = result.get("status", "ok")
        good += status in ("ok", "partial", "nothing")
        failed = [f"{FlatSet.from_wire(s).label()}: {s.get('reason') or s.get('status')}" for s in sets
                  if s.get("status") in ("failed", "stopped")]
        words = f"{node}: {status}, {sum(int(s.get('kept') or 0) for s in sets)} kept in {len(sets)} set(s)"
        if result.get("reason") and not failed:  # the node's reason repeats its failed sets' own
            words += f" ({result['reason']})"
        if failed:
            words += "; " + "; ".join(failed)
        parts.append(words)
    ok = good > 0
    return FlatsDone(ok=ok, direction=direction, kept=kept, taken=taken, reason="; ".join(parts)[:500] or None)
