"""Calibration on every node at once, from the master: panel flats and darks of the sets the night
record asks for. The master's `calibrate` command (indisync flats --panel, indisync darks) and the
night's calibrate / darks actions both call these, with their own ``cancel`` (the state's token).

- ``panel_flats_all``: per node the flat sets its lights used since its last flats
  (calib.needs.needed_flats over the master's night logs) plus flats.always, sent to every
  participant at once as a panel `flats` command; a node without a light panel answers no_panel.
- ``darks_all``: per node the darks and bias its lights used (calib.needs.needed_darks, + the extra
  exposures and darks.exposures), at the setpoint its lights used (else its own), ``covered`` as the
  caller saw the OTAs (the dome read closed, or the user said so).
- ``summary``: one status and reason over the nodes' answers (the calibrate reply, the night log).
- ``calibrate_rig``: the master's `calibrate` command: refused while the night has the mount out.

Built on night.rig.each: every participant on its own thread, bounded; a node that does not answer
is a failed Outcome saying so.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable

from ..contracts import CalibrateArgs, CalibrateResult, DarksArgs, FlatsArgs
from ..errors import IndisyncError
from ..night.rig import Outcome, each
from ..night.state import ALWAYS_SAFE
from ..record.service import nights_directory
from .model import DarkSet, FlatSet
from .needs import needed_darks, needed_flats, read_entries, setpoint_of

log = logging.getLogger(__name__)

ANSWER_MARGIN_S = 30.0  # beyond a command's own reply bound, for the slowest node's answer
NO_PANEL = ("no light panel: none of {nodes} has indi.light_panel set; set it to the panel's INDI device "
            "(e.g. \"Light Panel Simulator\") on the node it covers")


def _entries(cfg, now: float) -> list[dict]:
    return read_entries(nights_directory(cfg), cfg.flats.lookback_days, now)


def panel_flats_all(participants: list, cfg, now: float | None = None, cancel=None) -> dict[str, Outcome]:
    """Panel flats on every participant at once; node name -> its Outcome (result: FlatsResult fields)."""
    now = time.time() if now is None else now
    names = [p.name for p in participants]
    needs = needed_flats(_entries(cfg, now), cfg.flats.always, nodes=names)
    args = {p.name: FlatsArgs(mode="panel", sets=[s.to_wire() for s in needs.get(p.name, [])],
                              timeout=cfg.flats.timeout) for p in participants}
    for name in names:
        log.info("panel flats on %s: %s", name, ", ".join(FlatSet.from_wire(s).label() for s in args[name].sets) or "nothing")
    wait = max(a.reply_timeout() for a in args.values()) + ANSWER_MARGIN_S if args else 0.0
    return each(participants, lambda p: p.flats(args[p.name], args[p.name].reply_timeout(), cancel=cancel), wait,
                "flats")


def dark_sets_for(cfg, entries: list[dict], names: list[str], extra: Iterable[float] = ()) -> dict[str, list[DarkSet]]:
    """Per node: the darks its lights used, plus ``extra`` and darks.exposures (a node without lights in
    the record: those at binning 1), plus a bias per mode when darks.bias."""
    exposures = list(dict.fromkeys([float(e) for e in extra] + [float(e) for e in cfg.darks.exposures]))
    sets = needed_darks(entries, exposures, bias=cfg.darks.bias, nodes=names)
    for name in names:
        if not sets.get(name) and exposures:
            sets[name] = [DarkSet.make("dark", e) for e in exposures] + (
                [DarkSet.make("bias", 0.0)] if cfg.darks.bias else [])
    return sets


def darks_all(participants: list, cfg, covered: bool, extra: Iterable[float] = (), cancel=None,
              now: float | None = None) -> dict[str, Outcome]:
    """Darks on every participant at once; node name -> its Outcome (result: DarksResult fields)."""
    now = time.time() if now is None else now
    names = [p.name for p in participants]
    entries = _entries(cfg, now)
    sets = dark_sets_for(cfg, entries, names, extra)
    args = {p.name: DarksArgs(sets=[s.to_wire() for s in sets.get(p.name, [])], setpoint=setpoint_of(entries, p.name),
                              covered=bool(covered), timeout=cfg.darks.timeout) for p in participants}
    for name in names:
        log.info("darks on %s%s: %s", name, f" at {args[name].setpoint:g} C" if args[name].setpoint is not None else "",
                 ", ".join(DarkSet.from_wire(s).label() for s in args[name].sets) or "nothing")
    wait = max(a.reply_timeout() for a in args.values()) + ANSWER_MARGIN_S if args else 0.0
    return each(participants, lambda p: p.darks(args[p.name], args[p.name].reply_timeout(), cancel=cancel), wait,
                "darks")


def _compact(result: dict) -> dict:
    """A node's result without the per-frame lists (files, ADU, exposures): the calibrate reply stays small."""
    out = {k: v for k, v in result.items() if k != "sets"}
    if "sets" in result:
        out["sets"] = [{k: v for k, v in s.items() if k not in ("files", "adu", "exposures")}
                       for s in result.get("sets") or ()]
    return out


def node_results(outcomes: dict[str, Outcome]) -> dict[str, dict]:
    """node -> its result as it answered (compacted), or {status failed, reason} when it did not."""
    return {node: _compact(o.result) if o.ok and o.result else {"status": "failed", "reason": o.reason or "failed"}
            for node, o in outcomes.items()}


def summary(what: str, outcomes: dict[str, Outcome]) -> tuple[str, str]:
    """(status ok | partial | failed | nothing, reason) over every node's answer to ``what`` (panel | darks)."""
    results = node_results(outcomes)
    statuses = {node: r.get("status") for node, r in results.items()}
    if not results:
        return "nothing", "no node to calibrate"
    if what == "panel":
        if all(s == "no_panel" for s in statuses.values()):
            return "failed", NO_PANEL.format(nodes=", ".join(sorted(results)))
        served = {n: s for n, s in statuses.items() if s != "no_panel"}
        without = sorted(n for n, s in statuses.items() if s == "no_panel")
        head = f"panel flats on {', '.join(sorted(served))}" + (f" (no panel: {', '.join(without)})" if without else "")
    else:
        served, head = statuses, "darks"
    good = ("ok", "nothing")
    if all(s == "nothing" for s in served.values()):
        status = "nothing"
    elif all(s in good for s in served.values()):
        status = "ok"
    elif all(s == "failed" for s in served.values()):
        status = "failed"
    else:
        status = "partial"
    parts = [f"{n}: {statuses[n]}" + (f" ({results[n]['reason']})" if results[n].get("reason") else "")
             for n in sorted(served)]
    return status, f"{head}: " + "; ".join(parts)


def refusal(night_state: str | None) -> str | None:
    """Why calibration on demand must wait (the night has the mount out, is about to, or is calibrating
    itself), or None."""
    if night_state in ("calibrating", "cooling"):
        what = "taking its own calibration frames" if night_state == "calibrating" else \
            "cooling before it opens"
        return f"the night is {what} ({night_state}); try again once it has moved on"
    if night_state is None or night_state in {s.value for s in ALWAYS_SAFE}:
        return None
    return (f"the night is in {night_state} (the mount is out): calibration on demand waits until it is parked "
            "(waiting for dark, parked for the weather, or done); try again then")


def calibrate_rig(args: CalibrateArgs, participants: list, cfg, night_state: str | None, cancel=None,
                  covered=lambda: False, now: float | None = None) -> CalibrateResult:
    """Panel flats or darks on every participant now; ``covered()``: the dome read closed (darks)."""
    why = refusal(night_state)
    if why is not None:
        raise IndisyncError(why)
    if args.what == "panel":
        outcomes = panel_flats_all(participants, cfg, now, cancel)
    else:
        outcomes = darks_all(participants, cfg, args.covered or bool(covered()), args.exposures, cancel, now)
    status, reason = summary(args.what, outcomes)
    (log.info if status in ("ok", "nothing") else log.warning)("calibrate %s: %s: %s", args.what, status, reason)
    return CalibrateResult(status=status, reason=reason[:500], nodes=node_results(outcomes))
