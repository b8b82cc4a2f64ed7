"""What a night log says, put together: frames, autofocus runs, dithers, timelines, failures, and
the figures the report shows (efficiency, learned focus-temperature slope, start skew).

Pure: a list of night-log entries in, plain dicts and lists out (``summarize``). No matplotlib.

A log is read as it is: one event with a value of the wrong kind (an HFR of "2.1", null, a nested
object where a number belongs, a payload that is not a mapping) must not cost the whole report.
Every field the report computes with is checked where it is read (``_Cleaner``): a value that is
not a finite number, or not a string where text belongs, is left out and listed in
``skipped_values`` (event, node, field, value), which the report shows.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from . import calibration

# Night states (helper `night`) in which the rig could be collecting light: the usable window.
USABLE_NIGHT_STATES = ("slewing", "centering", "starting_guider", "imaging", "dithering", "refocusing", "flipping")
# Night states shown on an idle (or waiting) node's timeline lane instead of its phase.
TIMELINE_NIGHT_STATES = ("unsafe", "flipping", "waiting_dark", "cooling", "parked", "dusk_flats", "dawn_flats",
                         "waiting_dawn", "calibrating")
MIN_TEMPERATURE_SPAN_C = 0.3  # below this spread of temperatures a slope is noise, not learned


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:  # DATE-OBS: UTC without a zone
        from datetime import timezone

        value = value.replace(tzinfo=timezone.utc)
    return value


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _events(entries, type_: str):
    return [e for e in entries if e.get("kind") == "event" and e.get("type") == type_]


# The fields the report computes with, per message, and what they must be. Others pass as they are
# (ids are used through str(); free text is only shown, escaped).
FRAME_NUMBERS = ("duration", "hfr", "stars", "fwhm", "focuser_position", "focuser_temperature", "ccd_temperature",
                 "guide_rms_arcsec")
FRAME_TEXTS = ("status", "filter", "file", "start", "reason", "grade", "grade_reason", "shutter_opened",
               "image_arrived", "frame_type")
AUTOFOCUS_NUMBERS = ("position", "hfr", "stars", "temperature")
AUTOFOCUS_TEXTS = ("filter", "status", "reason")
DITHER_NUMBERS = ("seconds",)
CENTERING_NUMBERS = ("error_arcsec", "attempts")
COALIGNMENT_NUMBERS = ("offset_east_arcmin", "offset_north_arcmin", "rotation_diff_deg", "overlap_pct")
STATE_TEXTS = ("role", "phase")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class _Cleaner:
    """Reads payload fields as the report needs them; what does not fit is left out and noted."""

    def __init__(self, skipped: list | None = None):
        self.skipped = skipped if skipped is not None else []

    def note(self, entry: dict, field: str, value: Any, wanted: str) -> None:
        self.skipped.append({"time": entry.get("rx"), "node": entry.get("node"), "kind": entry.get("kind"),
                             "event": entry.get("type"), "field": field, "value": _short(value), "wanted": wanted})

    def payload(self, entry: dict, numbers=(), texts=()) -> dict:
        """A copy of the entry's payload with ``numbers`` finite numbers (or None) and ``texts`` strings (or None)."""
        raw = entry.get("payload")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.note(entry, "payload", raw, "a mapping")
            return {}
        out = dict(raw)
        for key in numbers:
            if key in out:
                out[key] = self.number(entry, key, out[key])
        for key in texts:
            if key in out:
                out[key] = self.text(entry, key, out[key])
        return out

    def number(self, entry: dict, field: str, value: Any):
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
        self.note(entry, field, value, "a number")
        return None

    def text(self, entry: dict, field: str, value: Any):
        if value is None or isinstance(value, str):
            return value
        self.note(entry, field, value, "text")
        return None


def shutter_interval(opened: Any, arrived: Any, start: Any, duration: Any, done_rx: Any) -> dict:
    """A frame's real shutter interval: ``open_start``/``open_end`` (ISO UTC) and ``open_s``.

    ``measured``: the node's own clock at the exposure's start and at the image's arrival
    (exposure_done's ``shutter_opened``/``image_arrived``). A log from before those fields gives an
    ``estimated`` interval: from DATE-OBS for EXPTIME, but never past the moment exposure_done
    arrived (the image was in by then; under a simulator time factor EXPTIME is far longer than
    the real exposure). ``None`` when neither says when the frame began.
    """
    begin, end = parse_time(opened), parse_time(arrived)
    source = "measured"
    if begin is None or end is None or end < begin:
        begin, source = parse_time(start), "estimated"
        if begin is None:
            return {"open_start": None, "open_end": None, "open_s": None, "open_source": None}
        nominal = begin + timedelta(seconds=float(duration or 0))
        received = parse_time(done_rx)
        end = min(nominal, received) if received is not None and received >= begin else nominal
    return {"open_start": _iso(begin), "open_end": _iso(end), "open_s": round((end - begin).total_seconds(), 3),
            "open_source": source}


def collect_frames(entries: list[dict], skipped: list | None = None) -> list[dict]:
    """One dict per exposure_done, joined with its exposure_started (same node and exposure id).
    Values of the wrong kind are left out and appended to ``skipped`` (see ``_Cleaner``)."""
    clean = _Cleaner(skipped)
    started: dict[tuple[str, str], dict] = {}
    frames = []
    for e in entries:
        if e.get("kind") != "event" or e.get("type") not in ("exposure_started", "exposure_done"):
            continue
        p = clean.payload(e, FRAME_NUMBERS, FRAME_TEXTS)
        key = (e.get("node"), str(p.get("exposure_id")))
        if e.get("type") == "exposure_started":
            started[key] = p
        elif e.get("type") == "exposure_done":
            s = started.pop(key, {})
            frame = {"node": e.get("node"), "exposure_id": p.get("exposure_id"), "status": p.get("status"),
                     "frame_type": p.get("frame_type") or s.get("frame_type"),
                     "filter": p.get("filter") or s.get("filter"), "file": p.get("file"),
                     "start": p.get("start") or s.get("start"), "duration": p.get("duration") or s.get("duration"),
                     "end_rx": e.get("rx"), "reason": p.get("reason")}
            for k in ("hfr", "stars", "fwhm", "focuser_position", "focuser_temperature", "ccd_temperature",
                      "guide_rms_arcsec", "grade", "grade_reason"):
                frame[k] = p.get(k)
            frame.update(shutter_interval(p.get("shutter_opened"), p.get("image_arrived"), frame["start"],
                                          frame["duration"], frame["end_rx"]))
            frames.append(frame)
    # A node that measures after its reply (helper `footprint`'s frame_measured) says HFR, stars and
    # grade in a later event: fill them into its frame.
    by_key = {(f["node"], str(f["exposure_id"])): f for f in frames}
    for e in entries:
        if e.get("kind") == "event" and e.get("type") == "frame_measured":
            p = clean.payload(e, FRAME_NUMBERS, FRAME_TEXTS)
            frame = by_key.get((e.get("node"), str(p.get("exposure_id"))))
            if frame is not None:
                for k in ("hfr", "stars", "fwhm", "grade", "grade_reason"):
                    if p.get(k) is not None:
                        frame[k] = p[k]
    frames.sort(key=lambda f: f["start"] or "")
    return frames


def collect_autofocus(entries: list[dict], skipped: list | None = None) -> list[dict]:
    clean = _Cleaner(skipped)
    runs: dict[str, dict] = {}
    for e in entries:
        if e.get("kind") != "event" or not str(e.get("type", "")).startswith("autofocus_"):
            continue
        p = clean.payload(e, AUTOFOCUS_NUMBERS, AUTOFOCUS_TEXTS)
        run = runs.setdefault(str(p.get("run_id")), {"run_id": p.get("run_id"), "node": e.get("node"), "points": [],
                                                    "start": e.get("rx"), "status": None})
        if e["type"] == "autofocus_started":
            run.update(start=e.get("rx"), filter=p.get("filter"), start_position=p.get("position"),
                       reason=p.get("reason"))
        elif e["type"] == "autofocus_point":
            run["points"].append([p.get("position"), p.get("hfr"), p.get("stars")])
        elif e["type"] == "autofocus_done":
            run.update(end=e.get("rx"), status=p.get("status"), position=p.get("position"), hfr=p.get("hfr"),
                       failure=p.get("reason"), temperature=p.get("temperature"))
    # The fitted model comes with the node's reply to the master's autofocus command.
    for e in entries:
        if e.get("kind") == "reply" and isinstance(e.get("payload"), dict) and e["payload"].get("command") == "autofocus":
            result = e["payload"].get("result")
            if not isinstance(result, dict):
                continue
            for run in runs.values():
                if run["node"] == e.get("node") and run.get("position") == result.get("position") and "model" not in run:
                    run["model"] = result.get("model")
                    break
    return sorted(runs.values(), key=lambda r: r.get("start") or "")


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of position against temperature (steps per degC)."""
    if len(points) < 2:
        return None
    temps = [t for t, _ in points]
    if max(temps) - min(temps) < MIN_TEMPERATURE_SPAN_C:
        return None
    mt = statistics.fmean(temps)
    mp = statistics.fmean(p for _, p in points)
    sxx = sum((t - mt) ** 2 for t in temps)
    return sum((t - mt) * (p - mp) for t, p in points) / sxx


def focus_temperature(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """Per node and filter: the good autofocus results against the focuser temperature, the fitted
    slope, and the ``focus.temp_coefficient`` it suggests (the same number: steps per degC)."""
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("status") == "ok" and run.get("temperature") is not None and run.get("position") is not None:
            grouped[run["node"]][run.get("filter") or "none"].append((float(run["temperature"]), float(run["position"])))
    out: dict[str, dict[str, dict]] = {}
    for node, by_filter in grouped.items():
        out[node] = {}
        for filter_name, points in by_filter.items():
            slope = fit_slope(points)
            out[node][filter_name] = {
                "points": [[t, p] for t, p in points], "n": len(points),
                "slope_steps_per_c": None if slope is None else round(slope, 2),
                "suggested_temp_coefficient": None if slope is None else round(slope, 1),
            }
    return out


def timelines(entries: list[dict], end: datetime | None, skipped: list | None = None) -> dict[str, list[dict]]:
    """Per node: segments {start, end, activity} from its phase changes, offline periods and (on the
    master) the night's unsafe / flipping states."""
    clean = _Cleaner(skipped)
    changes: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for e in entries:
        node, when = e.get("node"), parse_time(e.get("rx"))
        if node is None or when is None:
            continue
        p = clean.payload(e, texts=STATE_TEXTS) if e.get("kind") == "state" else _mapping(e.get("payload"))
        if e.get("kind") == "state" and p.get("phase"):
            night = (p.get("night") or {}).get("state") if isinstance(p.get("night"), dict) else None
            calib = p.get("calib") if isinstance(p.get("calib"), dict) else None
            if calib and calib.get("kind") in calibration.KINDS:  # taking flats, darks or bias
                activity = "flats" if calib["kind"] == "flat" else "darks"
            elif night in TIMELINE_NIGHT_STATES and p["phase"] in ("idle", "waiting"):
                activity = night
            else:
                activity = p["phase"]
            changes[node].append((when, activity))
        elif e.get("kind") == "status" and p.get("status") == "offline":
            changes[node].append((when, "offline"))
    out = {}
    for node, points in changes.items():
        segments = []
        for i, (when, activity) in enumerate(points):
            stop = points[i + 1][0] if i + 1 < len(points) else (end or when)
            if segments and segments[-1]["activity"] == activity:
                segments[-1]["end"] = _iso(stop)
                continue
            segments.append({"start": _iso(when), "end": _iso(stop), "activity": activity})
        out[node] = segments
    return out


def usable_window(entries: list[dict], frames: list[dict]) -> tuple[datetime | None, datetime | None]:
    """The night's usable window: the time in the night machine's observing states when it reported
    them; else from the first frame's start to the last frame's end (the real shutter intervals of
    ``shutter_interval``, not DATE-OBS + EXPTIME: under a simulator time factor EXPTIME is nominal)."""
    spans = []
    current = None
    for e in _events(entries, "night_state"):
        to, when = _mapping(e.get("payload")).get("to"), parse_time(e.get("rx"))
        if when is None:
            continue
        if current is not None and to not in USABLE_NIGHT_STATES:
            spans.append((current, when))
            current = None
        elif current is None and to in USABLE_NIGHT_STATES:
            current = when
    ok = [f for f in frames if f["status"] == "ok" and f.get("open_start")]
    first = min((parse_time(f["open_start"]) for f in ok), default=None)
    last = max((parse_time(f["open_end"]).timestamp() for f in ok), default=None)
    if current is not None and last is not None:
        spans.append((current, datetime.fromtimestamp(max(last, current.timestamp()), tz=current.tzinfo)))
    if spans:
        return spans[0][0], spans[-1][1]
    if first is None:
        return None, None
    return first, datetime.fromtimestamp(last, tz=first.tzinfo)


def open_seconds(frames: list[dict], start: datetime | None, end: datetime | None) -> float:
    """Seconds one camera's shutter was really open inside the window [start, end]: the union of its
    frames' real intervals (one camera exposes one frame at a time; a union never counts a moment
    twice), each cut to the window. At most the window's length by construction."""
    if start is None or end is None:
        return 0.0
    spans = sorted((max(parse_time(f["open_start"]), start), min(parse_time(f["open_end"]), end))
                   for f in frames if f.get("open_start") and f.get("open_end"))
    total, reach = 0.0, start
    for begin, stop in spans:
        begin = max(begin, reach)
        if stop > begin:
            total += (stop - begin).total_seconds()
            reach = stop
    return total


def start_skews(frames: list[dict], roles: dict[str, str]) -> dict[str, dict]:
    """Per slave: its frame's DATE-OBS minus the master frame's of the same exposure id, in ms."""
    masters = {str(f["exposure_id"]): parse_time(f["start"]) for f in frames
               if roles.get(f["node"]) == "master" and f["status"] == "ok"}
    skews: dict[str, list[float]] = defaultdict(list)
    for f in frames:
        if roles.get(f["node"]) != "slave" or f["status"] != "ok":
            continue
        key = str(f["exposure_id"]).split(".")[0]
        if "." in str(f["exposure_id"]) or key not in masters or masters[key] is None or not parse_time(f["start"]):
            continue  # loose-sync follow-up frames start when the previous one ends, not with the master
        skews[f["node"]].append((parse_time(f["start"]) - masters[key]).total_seconds() * 1000.0)
    out = {}
    for node, values in skews.items():
        ordered = sorted(values)
        out[node] = {"pairs": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
                     "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
                     "max_ms": round(max(ordered, key=abs), 1), "values_ms": [round(v, 1) for v in values]}
    return out


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def is_light(frame: dict) -> bool:
    """A light frame (an exposure_done that says no frame type is one: logs before issue 17)."""
    return frame.get("frame_type") in (None, "light")


def summarize(entries: list[dict]) -> dict:
    """Everything the report shows, as JSON-ready data; ``skipped_values`` lists the values left out."""
    skipped: list[dict] = []
    clean = _Cleaner(skipped)
    roles: dict[str, str] = {}
    for e in entries:
        role = _mapping(e.get("payload")).get("role") if e.get("kind") == "state" else None
        if role and isinstance(role, str):  # one of another kind is noted by timelines()
            roles[e["node"]] = role
    # lights only: flats, darks and bias are the calibration section's (calib_progress / calib_set_done)
    frames = [f for f in collect_frames(entries, skipped) if is_light(f)]
    runs = collect_autofocus(entries, skipped)
    calib_rows = calibration.collect_calibration(
        entries, lambda e: clean.payload(e, calibration.CALIB_NUMBERS, calibration.CALIB_TEXTS), clean.note)
    start, end = usable_window(entries, frames)
    window_s = (end - start).total_seconds() if start and end else 0.0
    last_rx = max((parse_time(e.get("rx")) for e in entries if parse_time(e.get("rx"))), default=None)
    names = sorted({e["node"] for e in entries if e.get("node")} | {f["node"] for f in frames})
    nodes = {}
    for name in names:
        mine = [f for f in frames if f["node"] == name]
        ok = [f for f in mine if f["status"] == "ok"]
        open_s = open_seconds(ok, start, end)
        exptime: Counter = Counter()
        for f in ok:
            exptime[f["filter"] or "none"] += float(f["duration"] or 0)
        rejected = [f for f in ok if f.get("grade") == "rejected"]
        hfrs = [f["hfr"] for f in ok if f.get("hfr") is not None]
        nodes[name] = {
            "role": roles.get(name),
            "frames": len(ok),
            "frames_by_filter": dict(sorted(Counter(f["filter"] or "none" for f in ok).items())),
            # real time (exposure start to image arrival, node's clock) inside the usable window
            "shutter_open_s": round(open_s, 3),
            "shutter_open_pct": round(100.0 * open_s / window_s, 1) if window_s > 0 else None,
            "shutter_estimated": sum(1 for f in ok if f.get("open_source") == "estimated"),  # frames of an old log
            # nominal: the frames' EXPTIME, summed (integration per filter)
            "exptime_s": round(sum(exptime.values()), 3),
            "exptime_by_filter": {k: round(v, 3) for k, v in sorted(exptime.items())},
            "rejected": len(rejected),
            "rejected_frames": [{"file": f["file"], "reason": f["grade_reason"]} for f in rejected],
            "failed": len(mine) - len(ok),
            "hfr_median": round(statistics.median(hfrs), 3) if hfrs else None,
            "autofocus": {"runs": sum(1 for r in runs if r["node"] == name),
                          "ok": sum(1 for r in runs if r["node"] == name and r["status"] == "ok")},
        }
    failures = [{"time": e.get("rx"), "node": e.get("node"), "what": "error", "why": _mapping(e.get("payload")).get("message")}
                for e in _events(entries, "error")]
    failures += [{"time": f["end_rx"], "node": f["node"], "what": f"exposure {f['exposure_id']} {f['status']}",
                  "why": f["reason"]} for f in frames if f["status"] != "ok"]
    failures += [{"time": r.get("end"), "node": r["node"], "what": f"autofocus {r['run_id']} failed", "why": r.get("failure")}
                 for r in runs if r["status"] == "failed"]
    failures += [{"time": e.get("rx"), "node": e.get("node"), "what": "dither did not settle",
                  "why": _mapping(e.get("payload")).get("reason")}
                 for e in _events(entries, "dither_settled") if _mapping(e.get("payload")).get("status") != "ok"]
    failures += calibration.failures(calib_rows)
    failures.sort(key=lambda x: str(x["time"] or ""))
    guiding = []
    for e in entries:
        g = _mapping(e.get("payload")).get("guiding") if e.get("kind") == "state" else None
        if isinstance(g, dict) and g.get("rms_arcsec") is not None:
            rms = clean.number(e, "guiding.rms_arcsec", g["rms_arcsec"])
            if rms is not None:
                guiding.append({"time": e.get("rx"), "node": e.get("node"), "rms_arcsec": rms, "state": g.get("state")})
    dithers = [{"time": e.get("rx"), "node": e.get("node"), "status": p.get("status"), "seconds": p.get("seconds")}
               for e in _events(entries, "dither_settled") for p in (clean.payload(e, DITHER_NUMBERS),)]
    night_states = [{"time": e.get("rx"), **clean.payload(e)} for e in _events(entries, "night_state")]
    # the master's centrings (center_done) and each OTA's co-alignment after them (indisync.acquire)
    centerings = [{"time": e.get("rx"), "node": e.get("node"), **clean.payload(e, CENTERING_NUMBERS)}
                  for e in _events(entries, "center_done")]
    coalignment = [{"time": e.get("rx"), "node": e.get("node"), **clean.payload(e, COALIGNMENT_NUMBERS)}
                   for e in _events(entries, "coalignment")]
    return {
        "window": {"start": _iso(start), "end": _iso(end), "seconds": round(window_s, 3)},
        "nodes": nodes,
        "frames": frames,
        "autofocus": runs,
        "focus_temperature": focus_temperature(runs),
        "guiding": guiding,
        "dithers": dithers,
        "start_skew": start_skews(frames, roles),
        "timelines": timelines(entries, end if end and last_rx and end > last_rx else last_rx, skipped),
        "night_states": night_states,
        "centering": centerings,
        "coalignment": coalignment,
        # per node: flat and dark/bias sets, flats kept/taken per filter, dark sets taken/skipped/waiting
        "calibration": calibration.per_node(calib_rows),
        "failures": failures,
        "skipped_values": skipped,
    }
