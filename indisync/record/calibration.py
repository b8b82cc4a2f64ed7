"""The calibration a night log records, put together per node: each flat, dark and bias set with
what it kept and took, its exposure and ADU range, and why it failed, was skipped or waits.

A set's frames arrive as ``calib_progress`` events (one per frame: test, kept or discarded) and its
end as one ``calib_set_done`` (indisync.node.calibrating). The end's figures win; where it does not
say them (an older node, a field of the wrong kind) the frames' own are used. A set whose end never
came (the log stops mid-set: a crash, a power cut) is shown as ``unfinished`` with what its frames
said. Values of the wrong kind are left out and noted, as ``record.night`` does.

Pure: night-log entries in, plain dicts out. Stdlib and indisync.calib.model only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from ..calib.model import DarkSet, FlatSet

CALIB_NUMBERS = ("binning", "rotator_angle", "gain", "offset", "exposure", "setpoint", "temperature", "adu",
                 "target_adu", "kept", "count", "taken", "adu_min", "adu_max", "exposure_min", "exposure_max",
                 "seconds")
CALIB_TEXTS = ("kind", "mode", "direction", "filter", "frame", "status", "reason", "file", "folder")
KINDS = ("flat", "dark", "bias")
# dark/bias set outcomes counted per node (calib_set_done's status for darks)
DARK_OUTCOMES = ("taken", "skipped", "waiting", "failed", "stopped", "unfinished")


def _key(node: str, p: dict) -> tuple | None:
    """(node, kind, FlatSet | DarkSet) of an event's payload; None when its kind is not a calibration kind."""
    kind = p.get("kind")
    if kind not in KINDS:
        return None
    binning = p.get("binning")
    binning = int(binning) if binning is not None and 1 <= binning <= 8 else 1
    if kind == "flat":
        return node, kind, FlatSet.make(p.get("filter"), binning, p.get("rotator_angle"), p.get("gain"),
                                        p.get("offset"))
    return node, kind, DarkSet.make(kind, p.get("exposure") or 0.0, binning, p.get("gain"), p.get("offset"))


def _span(values: list[float]) -> tuple[float | None, float | None]:
    return (min(values), max(values)) if values else (None, None)


def _first(*values):
    return next((v for v in values if v is not None), None)


class _Open:
    """The frames of one set seen so far (its calib_progress events)."""

    def __init__(self, start: str | None):
        self.start = start
        self.frames: Counter = Counter()  # test / kept / discarded
        self.exposures: list[float] = []  # of kept frames
        self.adu: list[float] = []  # of kept frames
        self.reasons: Counter = Counter()  # why frames were discarded
        self.last: dict = {}  # the last progress payload (mode, direction, count, setpoint, ...)
        self.temperatures: list[float] = []

    def add(self, p: dict) -> None:
        frame = p.get("frame")
        self.frames[frame or "?"] += 1
        if frame == "kept":
            if p.get("exposure") is not None:
                self.exposures.append(float(p["exposure"]))
            if p.get("adu") is not None:
                self.adu.append(float(p["adu"]))
        elif frame == "discarded" and p.get("reason"):
            self.reasons[p["reason"]] += 1
        if p.get("temperature") is not None:
            self.temperatures.append(float(p["temperature"]))
        self.last = p


def _row(key: tuple, done: dict | None, acc: _Open | None, time: str | None) -> dict:
    node, kind, cset = key
    acc = acc or _Open(None)
    d = done or {}
    last = acc.last
    discarded = acc.frames.get("discarded", 0)
    kept = _first(d.get("kept"), acc.frames.get("kept", 0) if acc.frames else None)
    taken = _first(d.get("taken"), sum(acc.frames.values()) if acc.frames else None)
    reason = d.get("reason")
    if done is None:
        status = "unfinished"
        reason = "the log ends before this set did (the node stopped or lost its broker mid-set)"
    else:
        status = d.get("status") or "?"
    row = {"time": time, "start": acc.start, "node": node, "kind": kind, "set": cset.label(), "status": status,
           "reason": reason, "count": _first(d.get("count"), last.get("count")), "kept": kept, "taken": taken,
           "seconds": d.get("seconds"), "folder": d.get("folder")}
    if kind == "flat":
        emin, emax = _span(acc.exposures)
        amin, amax = _span(acc.adu)
        row.update(filter=cset.filter, binning=cset.binning, rotator_angle=cset.rotator_angle, gain=cset.gain,
                   offset=cset.offset, mode=_first(d.get("mode"), last.get("mode")),
                   direction=_first(d.get("direction"), last.get("direction")), discarded=discarded,
                   discard_reason=acc.reasons.most_common(1)[0][0] if acc.reasons else None,
                   exposure_min=_first(d.get("exposure_min"), emin), exposure_max=_first(d.get("exposure_max"), emax),
                   adu_min=_first(d.get("adu_min"), amin), adu_max=_first(d.get("adu_max"), amax),
                   target_adu=last.get("target_adu"))
    else:
        temps = acc.temperatures
        row.update(exposure=cset.exposure, binning=cset.binning, gain=cset.gain, offset=cset.offset,
                   setpoint=_first(d.get("setpoint"), last.get("setpoint")),
                   temperature=_first(d.get("temperature"), round(sum(temps) / len(temps), 2) if temps else None))
    return row


def collect_calibration(entries: list[dict], clean_payload: Callable[[dict], dict],
                        note: Callable[[dict, str, Any, str], None]) -> list[dict]:
    """One row per calibration set in the log, in the order they ended (unfinished ones last).

    ``clean_payload(entry)``: the entry's payload with CALIB_NUMBERS numbers and CALIB_TEXTS texts
    checked (record.night's cleaner); ``note(entry, field, value, wanted)``: a value left out."""
    open_sets: dict[tuple, _Open] = {}
    rows = []
    for e in entries:
        if e.get("kind") != "event" or e.get("type") not in ("calib_progress", "calib_set_done"):
            continue
        node = e.get("node")
        p = clean_payload(e)
        if not isinstance(node, str) or not p:
            continue
        key = _key(node, p)
        if key is None:
            note(e, "kind", p.get("kind"), f"one of {', '.join(KINDS)}")
            continue
        if e["type"] == "calib_progress":
            open_sets.setdefault(key, _Open(e.get("rx"))).add(p)
        else:
            rows.append(_row(key, p, open_sets.pop(key, None), e.get("rx")))
    rows += [_row(key, None, acc, acc.start) for key, acc in open_sets.items()]
    return rows


def per_node(rows: list[dict]) -> dict[str, dict]:
    """Per node: its flat rows, dark/bias rows, flats kept/taken per filter (exposure and ADU range
    over its sets) and how many dark/bias sets were taken, skipped, waiting, failed."""
    out: dict[str, dict] = {}
    for row in rows:
        node = out.setdefault(row["node"], {"flats": [], "darks": [], "flats_by_filter": {},
                                            "dark_sets": {k: 0 for k in DARK_OUTCOMES}})
        if row["kind"] == "flat":
            node["flats"].append(row)
            f = node["flats_by_filter"].setdefault(row["filter"] or "none", {
                "sets": 0, "kept": 0, "taken": 0, "exposure_min": None, "exposure_max": None, "adu_min": None,
                "adu_max": None})
            f["sets"] += 1
            f["kept"] += row["kept"] or 0
            f["taken"] += row["taken"] or 0
            for lo, hi in (("exposure_min", "exposure_max"), ("adu_min", "adu_max")):
                if row[lo] is not None:
                    f[lo] = row[lo] if f[lo] is None else min(f[lo], row[lo])
                if row[hi] is not None:
                    f[hi] = row[hi] if f[hi] is None else max(f[hi], row[hi])
        else:
            node["darks"].append(row)
            if row["status"] in node["dark_sets"]:
                node["dark_sets"][row["status"]] += 1
    return dict(sorted(out.items()))


def failures(rows: list[dict]) -> list[dict]:
    """The failed sets, for the report's "What failed and why"."""
    return [{"time": r["time"], "node": r["node"], "what": f"{'flats' if r['kind'] == 'flat' else r['kind']} "
             f"{r['set']} {r['status']}", "why": r["reason"]}
            for r in rows if r["status"] in ("failed", "unfinished")]


# ---- words, shared by the report and `indisync flats/darks` ------------------------------------
def _g(value: float) -> str:
    return f"{value:g}"


def exposure_range(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "-"
    lo, hi = _first(lo, hi), _first(hi, lo)
    return f"{lo:.2f} s" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f} s"


def adu_range(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "-"
    lo, hi = _first(lo, hi), _first(hi, lo)
    return f"{lo:,.0f} ADU" if round(lo) == round(hi) else f"{lo:,.0f}–{hi:,.0f} ADU"


def dark_outcome(row: dict) -> str:
    """'20 frames at -10.0 °C (setpoint -10)', 'kept: a set 3.2 days old', 'waiting: ...'."""
    status = row["status"]
    if status == "taken" or (status == "stopped" and row.get("kept")):
        frames = _first(row.get("kept"), row.get("taken"), row.get("count"))
        temp = row.get("temperature")
        at = f" at {temp:.1f} °C" if temp is not None else ""
        setpoint = f" (setpoint {_g(row['setpoint'])} °C)" if row.get("setpoint") is not None else ""
        return f"{frames if frames is not None else '?'} frame(s){at}{setpoint}" + (
            f"; {row['reason']}" if row.get("reason") else "")
    return row.get("reason") or "-"
