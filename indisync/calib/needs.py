"""Which calibration sets the night record asks for: pure over night-log entries.

A light frame is an ``exposure_done`` event with status ok and frame type light (or none said: older
logs); what its flat must match is its FlatSet (filter, binning, rotator angle, gain, offset; older
logs lack the last four: binning 1, the others None). A node's flats of a set are its
``calib_set_done`` events with kind flat and status ok or partial. The time of an entry is its
payload's ``start`` when it has one, else the recorder's ``rx``.

- flats: per node, every set with a light after that node's last flats of it, plus ``flats.always``.
- darks: per node, one dark per (exposure, binning, gain, offset) its lights used, the extra
  exposures per (binning, gain, offset), a bias per (binning, gain, offset). How old a matching set
  in the library may be is the library's business (CalibLibrary.find_dark_set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from ..record.night import parse_time as parse_iso
from ..record.nightlog import read_night
from .model import DarkSet, FlatSet
from .settings import FlatSetSpec

log = logging.getLogger(__name__)

FLAT_DONE_STATUSES = ("ok", "partial")


@dataclass(frozen=True)
class LightUse:
    node: str
    at: float  # epoch s (the frame's start, else when the recorder got it)
    flat: FlatSet
    exposure: float | None  # s (the nominal duration); None: an old log that did not say
    set_temperature: float | None


def parse_time(text: Any) -> float | None:
    """An ISO-8601 time (record.night's: ``Z`` or an offset; naive: UTC) or a number as epoch
    seconds; None when it is neither."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    when = parse_iso(text)
    return None if when is None else when.timestamp()


def entry_time(entry: dict) -> float | None:
    payload = entry.get("payload")
    when = parse_time(payload.get("start")) if isinstance(payload, dict) else None
    return when if when is not None else parse_time(entry.get("rx"))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _binning(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8 else 1


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read_entries(directory, lookback_days: float, now: float) -> list[dict]:
    """The entries of the night logs (``YYYY-MM-DD.jsonl``) in ``directory`` dated within the last
    ``lookback_days`` before ``now`` (by file date, a day of margin for the site's zone), oldest file
    first, each file in its order. A torn line is skipped; a missing directory gives no entries."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    today = datetime.fromtimestamp(now, timezone.utc).date()
    first = today - timedelta(days=float(lookback_days)) - timedelta(days=1)
    entries: list[dict] = []
    for path in sorted(directory.glob("????-??-??.jsonl")):
        try:
            day = date.fromisoformat(path.stem)
        except ValueError:
            continue
        if day < first:
            continue
        try:
            result = read_night(path)
        except OSError as exc:
            log.warning("night log %s cannot be read (%s); its lights are not counted", path, exc)
            continue
        if result.skipped:
            log.info("night log %s: %d torn or foreign line(s) skipped", path, result.skipped)
        entries.extend(result.entries)
    return entries


def _events(entries, type_: str):
    for entry in entries:
        if isinstance(entry, dict) and entry.get("kind") == "event" and entry.get("type") == type_ \
                and isinstance(entry.get("payload"), dict) and isinstance(entry.get("node"), str):
            yield entry


def light_uses(entries) -> list[LightUse]:
    """Every ok light frame of the entries (frame type light, or none said), in time order."""
    uses = []
    for entry in _events(entries, "exposure_done"):
        p = entry["payload"]
        if p.get("status") != "ok" or p.get("frame_type") not in (None, "light"):
            continue
        at = entry_time(entry)
        if at is None:
            continue
        flat = FlatSet.make(_text(p.get("filter")), _binning(p.get("binning")), _num(p.get("rotator_angle")),
                            _num(p.get("gain")), _num(p.get("offset")))
        uses.append(LightUse(entry["node"], at, flat, _num(p.get("duration")), _num(p.get("set_temperature"))))
    uses.sort(key=lambda u: u.at)
    return uses


def last_flats(entries) -> dict[tuple[str, FlatSet], float]:
    """(node, set) -> the time of that node's last flats of the set (ok or partial)."""
    last: dict[tuple[str, FlatSet], float] = {}
    for entry in _events(entries, "calib_set_done"):
        p = entry["payload"]
        if p.get("kind") != "flat" or p.get("status") not in FLAT_DONE_STATUSES:
            continue
        at = entry_time(entry)
        if at is None:
            continue
        fset = FlatSet.make(_text(p.get("filter")), _binning(p.get("binning")), _num(p.get("rotator_angle")),
                            _num(p.get("gain")), _num(p.get("offset")))
        key = (entry["node"], fset)
        last[key] = max(at, last.get(key, at))
    return last


def seen_nodes(entries) -> list[str]:
    """The nodes that took frames or calibration in the entries, in order of appearance."""
    seen: dict[str, None] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("kind") == "event" and isinstance(entry.get("node"), str) \
                and entry.get("type") in ("exposure_done", "calib_set_done", "calib_progress"):
            seen.setdefault(entry["node"], None)
    return list(seen)


def needed_flats(entries, always: Iterable[FlatSetSpec] = (), nodes: Iterable[str] | None = None,
                 since: float | None = None) -> dict[str, list[FlatSet]]:
    """Per node: every set with a light after that node's last flats of it, in first-use order (the
    first such light); then the ``always`` sets (a spec's node None: every node of ``nodes``, else
    every node seen in the entries) not already listed, unless that node took flats of the set at or
    after ``since``. ``nodes`` given: only those nodes (each with a list, maybe empty)."""
    entries = list(entries)
    wanted = None if nodes is None else list(dict.fromkeys(nodes))
    done = last_flats(entries)
    needs: dict[str, list[FlatSet]] = {n: [] for n in (wanted or [])}
    for use in light_uses(entries):
        if wanted is not None and use.node not in wanted:
            continue
        if use.at > done.get((use.node, use.flat), float("-inf")):
            sets = needs.setdefault(use.node, [])
            if use.flat not in sets:
                sets.append(use.flat)
    targets = wanted if wanted is not None else list(dict.fromkeys([*seen_nodes(entries), *needs]))
    for spec in always:
        fset = FlatSet.make(spec.filter, spec.binning, spec.rotator_angle, spec.gain, spec.offset)
        for node in ([spec.node] if spec.node is not None else targets):
            if wanted is not None and node not in wanted:
                continue
            taken = done.get((node, fset))
            if since is not None and taken is not None and taken >= since:
                continue
            sets = needs.setdefault(node, [])
            if fset not in sets:
                sets.append(fset)
    return needs


def needed_darks(entries, extra_exposures: Iterable[float] = (), bias: bool = True,
                 nodes: Iterable[str] | None = None) -> dict[str, list[DarkSet]]:
    """Per node: a dark per (exposure, binning, gain, offset) its lights used (first-use order), then
    each extra exposure per (binning, gain, offset) it used, then a bias per (binning, gain, offset)."""
    wanted = None if nodes is None else list(dict.fromkeys(nodes))
    extra = [float(e) for e in extra_exposures]
    darks: dict[str, list[DarkSet]] = {n: [] for n in (wanted or [])}
    modes: dict[str, list[tuple]] = {}
    for use in light_uses(entries):
        if wanted is not None and use.node not in wanted:
            continue
        sets = darks.setdefault(use.node, [])
        mode = (use.flat.binning, use.flat.gain, use.flat.offset)
        if mode not in modes.setdefault(use.node, []):
            modes[use.node].append(mode)
        if use.exposure is None or use.exposure <= 0:
            continue
        dset = DarkSet.make("dark", use.exposure, *mode)
        if dset not in sets:
            sets.append(dset)
    for node, node_modes in modes.items():
        sets = darks[node]
        for mode in node_modes:
            for exposure in extra:
                dset = DarkSet.make("dark", exposure, *mode)
                if dset not in sets:
                    sets.append(dset)
        if bias:
            for mode in node_modes:
                dset = DarkSet.make("bias", 0.0, *mode)
                if dset not in sets:
                    sets.append(dset)
    return darks


def setpoint_of(entries, node: str) -> float | None:
    """The cooling setpoint of the node's last light that said one."""
    for use in reversed(light_uses(entries)):
        if use.node == node and use.set_temperature is not None:
            return use.set_temperature
    return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def plan_rows(needs: dict[str, list[FlatSet]], lights: list[LightUse]) -> list[dict]:
    """One row per node and needed set, for `indisync flats --plan`: the lights of that set in
    ``lights`` (0: an ``always`` set) and the last one's time (ISO UTC, None without lights)."""
    rows = []
    for node, sets in needs.items():
        for fset in sets:
            mine = [u for u in lights if u.node == node and u.flat == fset]
            rows.append({"node": node, "set": fset.label(), "filter": fset.filter, "binning": fset.binning,
                         "rotator_angle": fset.rotator_angle, "gain": fset.gain, "offset": fset.offset,
                         "lights": len(mine), "last_light": _iso(max((u.at for u in mine), default=None))})
    return rows
