"""The night report: ``write_report(night_log, out_dir)`` writes ``index.html`` (one self-contained
page: figures embedded as data URIs), ``report.json`` (the same data) and each figure as a PNG.

matplotlib (Agg) is imported only here, inside the functions that draw.

The night is the site's (``site.timezone``; None: this computer's zone): the log's date when its name
is one (the writer named it so), else the date at dusk of its first entry; the usable window is
shown on the site's clock next to UTC. Values of the wrong kind in the log are left out and listed
("Values left out"), never the cause of a lost report. With a season (a ``scheduler:`` section), a
"Season" section shows each target imaged tonight from the master's database (record/season.py).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path

from ..timezones import local_zone, zone_name
from .calibration import adu_range, dark_outcome, exposure_range
from .night import parse_time, summarize
from .nightlog import night_of, read_night
from .season import night_bounds, season_section

log = logging.getLogger(__name__)

COLOURS = {"Luminance": "#444444", "Red": "#d62728", "Green": "#2ca02c", "Blue": "#1f77b4", "Ha": "#9467bd",
           "OIII": "#17becf", "SII": "#8c564b", "none": "#7f7f7f"}
ACTIVITY_COLOURS = {"exposing": "#2ca02c", "focusing": "#1f77b4", "dithering": "#ff7f0e", "waiting": "#bcbd22",
                    "guiding": "#17becf", "idle": "#dddddd", "error": "#d62728", "offline": "#000000",
                    "unsafe": "#e377c2", "flipping": "#9467bd", "waiting_dark": "#8c564b", "cooling": "#aec7e8",
                    "parked": "#7f7f7f", "flats": "#f7b6d2", "darks": "#393b79", "dusk_flats": "#ffbb78",
                    "dawn_flats": "#ffbb78", "waiting_dawn": "#c49c94", "calibrating": "#5254a3"}


MAX_SKIPPED_SHOWN = 50  # lines of "Values left out" on the page (report.json has them all)


def night_name(log_path: str | Path, entries: list[dict], zone: tzinfo, starts_hour: int = 12) -> str:
    """The night a log covers: its name when that is a date (YYYY-MM-DD.jsonl, as the writer names
    it), else the date at dusk, on the site's clock, of its first entry with a receive time."""
    stem = Path(log_path).stem
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stem):
        try:
            return date.fromisoformat(stem).isoformat()
        except ValueError:
            pass
    first = next((t for t in (parse_time(e.get("rx")) for e in entries) if t is not None), None)
    return night_of(first, starts_hour, zone).isoformat() if first is not None else stem


def _local(text: str | None, zone: tzinfo) -> str | None:
    when = parse_time(text)
    return None if when is None else when.astimezone(zone).isoformat(timespec="seconds")


def build(log_path: str | Path, zone: tzinfo | None = None, starts_hour: int = 12,
          season_db: str | Path | None = None) -> dict:
    """The report's data; ``zone``: the site's (None: this computer's), ``starts_hour``: record.night_starts_hour,
    ``season_db``: the master's season database (``season.store.db_path(cfg)`` when cfg.scheduler is set; None:
    no Season section)."""
    zone = zone if zone is not None else local_zone()
    result = read_night(log_path)
    data = summarize(result.entries)
    data["window"].update(start_local=_local(data["window"]["start"], zone), end_local=_local(data["window"]["end"], zone))
    data.update(night=night_name(log_path, result.entries, zone, starts_hour), timezone=zone_name(zone),
                log=str(Path(log_path).resolve()), entries=len(result.entries), skipped_lines=result.skipped,
                generated=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"))
    bounds = night_bounds(data["night"], zone, starts_hour)
    data["season"] = season_section(season_db, *bounds) if bounds is not None else None
    return data


def write_report(log_path: str | Path, out_dir: str | Path | None = None, zone: tzinfo | None = None,
                 starts_hour: int = 12, season_db: str | Path | None = None) -> Path:
    """Write the report of one night log; returns the path of index.html. ``zone``: the site's
    (``timezones.site_zone(cfg)``; None: this computer's); ``season_db``: see ``build``."""
    log_path = Path(log_path)
    out = Path(out_dir) if out_dir is not None else log_path.parent / f"report-{log_path.stem}"
    out.mkdir(parents=True, exist_ok=True)
    data = build(log_path, zone, starts_hour, season_db)
    figures = draw_figures(data, out)
    data["figures"] = {name: path.name for name, path in figures.items()}
    _atomic_write(out / "report.json", json.dumps(data, indent=1, default=str))
    _atomic_write(out / "index.html", render_html(data, figures))
    return out / "index.html"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---- figures --------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(filter_name: str | None) -> str:
    return COLOURS.get(filter_name or "none", "#e7ba52")


def draw_figures(data: dict, out: Path) -> dict[str, Path]:
    figures: dict[str, Path] = {}
    for name, draw in (("timeline", _timeline), ("quality", _quality), ("focus_temperature", _focus_temperature),
                       ("guiding", _guiding), ("frames", _frames)):
        try:
            path = out / f"{name}.png"
            if draw(data, path):
                figures[name] = path
        except Exception:  # noqa: BLE001 - one bad figure must not cost the report
            log.exception("report figure %s failed", name)
    for i, run in enumerate(data["autofocus"]):
        try:
            path = out / f"vcurve-{i + 1:02d}-{run['node']}.png"
            if _vcurve(run, path):
                figures[f"vcurve-{i + 1:02d}"] = path
                run["thumbnail"] = path.name
        except Exception:  # noqa: BLE001
            log.exception("V-curve thumbnail %s failed", run.get("run_id"))
    return figures


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _plt().close(fig)
    return True


def _timeline(data: dict, path: Path) -> bool:
    lanes = data["timelines"]
    if not lanes:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.5 * len(lanes)))
    seen = set()
    for row, (node, segments) in enumerate(sorted(lanes.items())):
        for seg in segments:
            start, end = parse_time(seg["start"]), parse_time(seg["end"])
            if start is None or end is None:
                continue
            label = None if seg["activity"] in seen else seg["activity"]
            seen.add(seg["activity"])
            ax.barh(row, (end - start).total_seconds() / 86400.0, left=plt.matplotlib.dates.date2num(start),
                    color=ACTIVITY_COLOURS.get(seg["activity"], "#c5b0d5"), label=label, height=0.6)
    ax.set_yticks(range(len(lanes)), sorted(lanes))
    ax.xaxis_date()
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_title("what each node did (UTC)")
    return _save(fig, path)


def _quality(data: dict, path: Path) -> bool:
    frames = [f for f in data["frames"] if f["status"] == "ok" and parse_time(f["start"])]
    if not frames:
        return False
    plt = _plt()
    nodes = sorted({f["node"] for f in frames})
    fig, axes = plt.subplots(len(nodes), 2, figsize=(10, 2.2 * len(nodes)), squeeze=False)
    for row, node in enumerate(nodes):
        mine = [f for f in frames if f["node"] == node]
        for col, key in enumerate(("hfr", "stars")):
            ax = axes[row][col]
            for filter_name in sorted({f["filter"] or "none" for f in mine}):
                pts = [f for f in mine if (f["filter"] or "none") == filter_name and f.get(key) is not None]
                good = [f for f in pts if f.get("grade") != "rejected"]
                bad = [f for f in pts if f.get("grade") == "rejected"]
                ax.plot([parse_time(f["start"]) for f in good], [f[key] for f in good], "o",
                        color=_colour(filter_name), label=filter_name, ms=4)
                if bad:
                    ax.plot([parse_time(f["start"]) for f in bad], [f[key] for f in bad], "x", color="red", ms=8,
                            label="rejected" if filter_name == sorted({f["filter"] or "none" for f in mine})[0] else None)
            ax.set_title(f"{node}: {'HFR (px)' if key == 'hfr' else 'stars'}", fontsize=9)
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.legend(fontsize=6)
    fig.autofmt_xdate()
    return _save(fig, path)


def _focus_temperature(data: dict, path: Path) -> bool:
    series = [(node, f, d) for node, by_filter in data["focus_temperature"].items() for f, d in by_filter.items()]
    if not series:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for node, filter_name, d in series:
        temps = [t for t, _ in d["points"]]
        positions = [p for _, p in d["points"]]
        label = f"{node} {filter_name}"
        if d["slope_steps_per_c"] is not None:
            label += f": {d['slope_steps_per_c']:+.1f} steps/°C"
            mt, mp = sum(temps) / len(temps), sum(positions) / len(positions)
            xs = [min(temps), max(temps)]
            ax.plot(xs, [mp + d["slope_steps_per_c"] * (x - mt) for x in xs], "-", color=_colour(filter_name), lw=1)
        ax.plot(temps, positions, "o", color=_colour(filter_name), label=label)
    ax.set_xlabel("focuser temperature (°C)")
    ax.set_ylabel("autofocus position (steps)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _guiding(data: dict, path: Path) -> bool:
    rms = [g for g in data["guiding"] if parse_time(g["time"])]
    settles = [d for d in data["dithers"] if d.get("seconds") is not None and parse_time(d["time"])]
    skews = data["start_skew"]
    if not (rms or settles or skews):
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    axes[0].plot([parse_time(g["time"]) for g in rms], [g["rms_arcsec"] for g in rms], "-", color="#1f77b4")
    axes[0].set_title("guiding RMS (arcsec)", fontsize=9)
    axes[1].plot([parse_time(d["time"]) for d in settles], [d["seconds"] for d in settles], "o", color="#ff7f0e")
    axes[1].set_title("dither settle time (s)", fontsize=9)
    for node, s in sorted(skews.items()):
        axes[2].plot(s["values_ms"], "o-", ms=3, label=node)
    axes[2].set_title("start skew vs master (ms)", fontsize=9)
    if skews:
        axes[2].legend(fontsize=7)
    for ax, empty in zip(axes, (not rms, not settles, not skews)):
        ax.tick_params(labelsize=7)
        if empty:
            ax.text(0.5, 0.5, "no data tonight", ha="center", va="center", transform=ax.transAxes, color="#999")
    fig.autofmt_xdate()
    return _save(fig, path)


def _frames(data: dict, path: Path) -> bool:
    nodes = {n: d for n, d in data["nodes"].items() if d["frames"]}
    if not nodes:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.5 * len(nodes)))
    for row, (node, d) in enumerate(sorted(nodes.items())):
        left = 0
        for filter_name, count in d["frames_by_filter"].items():
            ax.barh(row, count, left=left, color=_colour(filter_name), label=filter_name)
            ax.text(left + count / 2, row, f"{filter_name[:1]} {count}", ha="center", va="center", fontsize=7, color="white")
            left += count
    ax.set_yticks(range(len(nodes)), sorted(nodes))
    ax.set_xlabel("frames")
    return _save(fig, path)


def _vcurve(run: dict, path: Path) -> bool:
    points = [p for p in run["points"] if p[0] is not None and p[1] is not None]
    if not points:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.8, 2.0))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o", ms=3, color="#1f77b4")
    if run.get("status") == "ok" and run.get("position") is not None:
        ax.axvline(run["position"], color="#2ca02c", lw=1)
    ax.set_title(f"{run['node']} {run.get('filter') or ''} {run.get('status') or '?'}", fontsize=8)
    ax.tick_params(labelsize=6)
    return _save(fig, path)


# ---- the page -------------------------------------------------------------------------------------
def _img(path: Path, alt: str, width: str = "100%") -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" style="max-width:{width}" src="data:image/png;base64,{encoded}">'


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _shutter_cell(d: dict) -> str | None:
    if d["shutter_open_pct"] is None:
        return None
    return (f"{d['shutter_open_pct']:.1f} % ({_duration(d['shutter_open_s'])})"
            + (" (est.)" if d.get("shutter_estimated") else ""))


def _exptime_cell(d: dict) -> str:
    by_filter = d.get("exptime_by_filter") or {}
    total = _duration(d.get("exptime_s") or 0.0)
    return total if len(by_filter) < 2 else f"{total}: " + ", ".join(f"{k} {_duration(v)}" for k, v in by_filter.items())


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _window_line(data: dict) -> str:
    w = data["window"]
    if w.get("start_local") and w.get("end_local"):
        return (f"{w['start_local'][:16].replace('T', ' ')} to {w['end_local'][:16].replace('T', ' ')} "
                f"{data.get('timezone') or ''} ({w['start']} to {w['end']})")
    return f"{w['start']} to {w['end']}"


def _skipped_html(skipped: list[dict]) -> str:
    if not skipped:
        return ""
    e = html.escape
    lines = [f"<li>{e(str(s.get('event') or s.get('kind')))} from {e(str(s.get('node')))} at {e(str(s.get('time')))}: "
             f"<code>{e(str(s.get('field')))}</code> = <code>{e(str(s.get('value')))}</code> is not {e(str(s.get('wanted')))}"
             "; left out</li>" for s in skipped[:MAX_SKIPPED_SHOWN]]
    more = len(skipped) - MAX_SKIPPED_SHOWN
    return (f"<h2>Values left out ({len(skipped)})</h2><p>These values in the night log were not of the kind the "
            "report needs; the report was made without them.</p><ul>" + "".join(lines) +
            (f"<li>… and {more} more (report.json: skipped_values)</li>" if more > 0 else "") + "</ul>")


def _tonight_cell(row: dict) -> str:
    return f"{row['tonight']}" + (f" ({row['tonight_rejected']} rejected)" if row.get("tonight_rejected") else "")


def _season_html(season: dict | None) -> str:
    """Per season target imaged tonight, per OTA and filter: tonight's frames, accepted so far of the
    desired count, rejected so far (pending and surplus when any)."""
    if not season:
        return ""
    e = html.escape
    if season.get("error"):
        return (f"<h2>Season</h2><p>The season database <code>{e(season['db'])}</code> could not be read: "
                f"{e(season['error'])}. The rest of the report is complete.</p>")
    head = "<h2>Season</h2>"
    if not season["targets"]:
        return head + (f"<p>No season target was imaged tonight ({season.get('targets_in_db', 0)} target(s) in "
                       f"<code>{e(season['db'])}</code>).</p>")
    parts = [head, f"<p>Targets imaged tonight ({e(season['night_start'])} to {e(season['night_end'])}), from "
                   f"<code>{e(season['db'])}</code>. <i>Accepted / desired</i> and <i>rejected</i> are totals so far "
                   "(every night); rejected frames never count toward the goal.</p>"]
    for t in season["targets"]:
        title = t["name"] + (f" ({t['project']})" if t.get("project") else "")
        note = " — complete" if t["complete"] else ("" if t["in_db"] else " — no longer in the database")
        extra = [k for k in ("pending", "surplus") if any(r[k] for r in t["rows"])]
        rows = [[r["node"], r["filter"], _tonight_cell(r),
                 (f"{r['accepted']} / {r['desired']}" + (" met" if r["met"] else "")) if r["in_plan"]
                 else ("-" if not t["in_db"] else f"{r['accepted']} (not in the plan)"),
                 r["rejected"] if t["in_db"] else "-", *(r[k] or "" for k in extra)] for r in t["rows"]]
        parts.append(f"<h3>{e(title)}{e(note)}: {t['frames_tonight']} frame(s) tonight</h3>" +
                     _table(["OTA", "filter", "tonight", "accepted / desired", "rejected", *extra], rows))
    return "".join(parts)


def _calibration_html(calibration: dict | None) -> str:
    """Per node: flats kept/taken per filter with the exposure and ADU range, every flat set, and the
    dark/bias sets taken, skipped (a younger match kept) or waiting (the cooler, or nothing covers the OTA)."""
    if not calibration:
        return ""
    e = html.escape
    parts = ["<h2>Calibration</h2>"]
    for node, d in calibration.items():
        if d["flats"]:
            parts.append(f"<h3>{e(node)}: flats</h3>" + _table(
                ["filter", "sets", "kept / taken", "exposure", "ADU"],
                [[f, v["sets"], f"{v['kept']} / {v['taken']}", exposure_range(v["exposure_min"], v["exposure_max"]),
                  adu_range(v["adu_min"], v["adu_max"])] for f, v in d["flats_by_filter"].items()]))
            parts.append(_table(
                ["time", "set", "how", "status", "kept / wanted", "taken", "discarded", "exposure", "ADU", "why"],
                [[r["time"], r["set"], " ".join(x for x in (r.get("mode"), r.get("direction")) if x) or "-",
                  r["status"], f"{r['kept'] if r['kept'] is not None else '?'} / {r['count'] or '?'}", r["taken"],
                  r["discarded"], exposure_range(r["exposure_min"], r["exposure_max"]),
                  adu_range(r["adu_min"], r["adu_max"]), r["reason"] or r.get("discard_reason") or ""]
                 for r in d["flats"]]))
        if d["darks"]:
            counts = ", ".join(f"{n} {k}" for k, n in d["dark_sets"].items() if n)
            parts.append(f"<h3>{e(node)}: darks and bias ({e(counts)})</h3>" + _table(
                ["time", "set", "status", "what"],
                [[r["time"], r["set"], r["status"], dark_outcome(r)] for r in d["darks"]]))
    parts.append("<p><small>A flat set is one node's filter, binning, rotator angle and gain/offset; frames "
                 "outside the ADU band (flats.target_adu ± flats.tolerance of full scale) are discarded, not "
                 "written. A dark set is skipped while a matching one in the node's library is younger than "
                 "darks.max_age_days; it waits while the cooler is off its setpoint or nothing covers the "
                 "OTA.</small></p>")
    return "".join(parts)


def render_html(data: dict, figures: dict[str, Path]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>indisync night {e(data['night'])}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}th{background:#eee}"
             ".thumbs img{margin:2px}</style></head><body>",
             f"<h1>Night of {e(data['night'])}</h1>",
             f"<p>usable window {e(_window_line(data))} "
             f"({data['window']['seconds'] / 3600:.2f} h); {data['entries']} log entries"
             f"{', %d torn line(s) skipped' % data['skipped_lines'] if data['skipped_lines'] else ''}. "
             f"Log: <code>{e(data['log'])}</code></p>"]
    rows = [[n, d["role"], d["frames"], ", ".join(f"{k} {v}" for k, v in d["frames_by_filter"].items()),
             d["rejected"], d["failed"], _shutter_cell(d), _exptime_cell(d),
             d["hfr_median"], f"{d['autofocus']['ok']}/{d['autofocus']['runs']}"] for n, d in data["nodes"].items()]
    parts.append("<h2>Nodes</h2>" + _table(["node", "role", "frames", "by filter", "rejected", "failed",
                                            "shutter open (real)", "EXPTIME total", "median HFR", "autofocus ok"], rows))
    parts.append("<p><small>Shutter open: the real time from each exposure's start to its image's arrival, on "
                 "the node's clock, as a share of the usable window. EXPTIME total: the frames' nominal "
                 "exposure times (the integration in the files); under a simulator time factor it is far "
                 "longer than the real time." +
                 (" (est.): an older log without the real times; estimated from DATE-OBS, EXPTIME and when "
                  "each frame was reported." if any(d.get("shutter_estimated") for d in data["nodes"].values())
                  else "") + "</small></p>")
    parts.append(_season_html(data.get("season")))
    parts.append(_calibration_html(data.get("calibration")))
    for name, title in (("timeline", "Timeline"), ("quality", "HFR and stars per frame (x: rejected)"),
                        ("frames", "Frames per filter"), ("guiding", "Guiding, dithers, start skew"),
                        ("focus_temperature", "Focus position against focuser temperature")):
        if name in figures:
            parts.append(f"<h2>{title}</h2>{_img(figures[name], title)}")
    ft = [[n, f, d["n"], d["slope_steps_per_c"], d["suggested_temp_coefficient"]]
          for n, by in data["focus_temperature"].items() for f, d in by.items()]
    if ft:
        parts.append(_table(["node", "filter", "autofocus runs", "slope (steps/°C)", "suggested focus.temp_coefficient"], ft))
    if data["start_skew"]:
        parts.append(_table(["slave", "pairs", "p50 ms", "p99 ms", "max ms"],
                            [[n, s["pairs"], s["p50_ms"], s["p99_ms"], s["max_ms"]] for n, s in data["start_skew"].items()]))
    if data.get("centering"):
        parts.append("<h2>Centring</h2>" + _table(["time", "ok", "attempts", "error (arcsec)", "why not"],
                     [[c["time"], c.get("ok"), c.get("attempts"), c.get("error_arcsec"), c.get("reason") or ""]
                      for c in data["centering"]]))
    if data.get("coalignment"):
        parts.append("<h2>OTA co-alignment (against the master's field)</h2>" + _table(
            ["time", "OTA", "offset E (')", "offset N (')", "rotation (°)", "overlap %", "note"],
            [[c["time"], c.get("ota"), c.get("offset_east_arcmin"), c.get("offset_north_arcmin"),
              c.get("rotation_diff_deg"), c.get("overlap_pct"),
              c.get("reason") or ("LOW overlap" if c.get("low_overlap") else "")] for c in data["coalignment"]]))
    thumbs = [(k, p) for k, p in figures.items() if k.startswith("vcurve-")]
    if thumbs:
        parts.append("<h2>Autofocus V-curves</h2><div class='thumbs'>" +
                     "".join(_img(p, k, "280px") for k, p in thumbs) + "</div>")
    rejected = [[n, r["file"], r["reason"]] for n, d in data["nodes"].items() for r in d["rejected_frames"]]
    if rejected:
        parts.append("<h2>Rejected frames (kept on disk)</h2>" + _table(["node", "file", "why"], rejected))
    parts.append("<h2>What failed and why</h2>" + (_table(["time", "node", "what", "why"],
                 [[f["time"], f["node"], f["what"], f["why"]] for f in data["failures"]]) if data["failures"] else "<p>nothing</p>"))
    parts.append(_skipped_html(data.get("skipped_values") or []))
    parts.append(f"<p><small>generated {e(data['generated'])} by indisync; the same data: report.json</small></p></body></html>")
    return "".join(parts)
