"""`indisync plan`'s views of a NightPlan: the data (``build_view``, what --json prints), a table
(``render``) and a timeline picture (``draw_timeline``, Pillow as in focus/plot.py: altitude curves
of the candidates, the chosen blocks shaded, the sun and the moon). Times are shown on the site's
wall clock (site.timezone) with UTC in the data."""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime, timezone, tzinfo
from pathlib import Path

import numpy as np

from .constraints import table_for
from .ephem import NightSky
from .scheduler import Decision, NightPlan

MAX_CURVES = 12  # the timeline's altitude curves: the targets imaged, then the best scored
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127), (174, 199, 232), (255, 187, 120))


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _hm(t: float | None, zone: tzinfo) -> str:
    if t is None:
        return "--:--"
    return datetime.fromtimestamp(t, timezone.utc).astimezone(zone).strftime("%H:%M")


def _span(span, sun_below: float) -> dict | None:
    return None if span is None else {"from": _iso(span[0]), "to": _iso(span[1]), "sun_below": sun_below}


def first_choice(plan: NightPlan) -> Decision | None:
    """The decision whose candidates the view lists: the first that chose a target, else the first."""
    for decision in plan.decisions:
        if decision.target is not None:
            return decision
    return plan.decisions[0] if plan.decisions else None


def build_view(plan: NightPlan, sky: NightSky, settings, site, zone: tzinfo) -> dict:
    """The plan as plain data (JSON): the night, the blocks, the candidates at the first choice, every decision."""
    dark = sky.dark_span(settings.sun_altitude.broadband)
    nautical = sky.dark_span(settings.sun_altitude.narrowband)
    mid = sky.at((sky.start + sky.end) / 2.0)
    choice = first_choice(plan)
    return {
        "night": {"date": sky.night_date, "sunset": _iso(sky.start), "sunrise": _iso(sky.end),
                  "dark": _span(dark, settings.sun_altitude.broadband),
                  "narrowband_dark": _span(nautical, settings.sun_altitude.narrowband),
                  "moon": {"illumination": round(mid["moon_illum"], 3), "age_days": round(mid["moon_age_days"], 1)},
                  "site": {"latitude": site.latitude, "longitude": site.longitude_east},
                  "timezone": getattr(zone, "key", None) or str(zone)},
        "blocks": [{"from": _iso(b.start), "to": _iso(b.end), "target": b.target, "frames": b.frames,
                    "surplus": b.surplus, "why": b.reason} for b in plan.blocks],
        "candidates_at": None if choice is None else _iso(choice.at),
        "candidates": [] if choice is None else [c.to_dict() | {"until": _iso(c.until)} for c in choice.candidates],
        "decisions": [{"at": _iso(d.at), "target": d.target, "switch": d.switch, "why": d.reason}
                      for d in plan.decisions],
    }


def _frames_text(frames: dict[str, dict[str, int]], surplus: dict[str, dict[str, int]]) -> str:
    out = []
    for node in sorted(set(frames) | set(surplus)):
        items = [f"{f} {n}" for f, n in frames.get(node, {}).items()]
        items += [f"{f} +{n} surplus" for f, n in surplus.get(node, {}).items()]
        out.append(f"{node} " + ", ".join(items))
    return "; ".join(out)


def render(plan: NightPlan, sky: NightSky, settings, site, zone: tzinfo) -> str:
    """The table: the night, each block (from, to, target, frames per node, why), then every candidate
    at the first choice with its score or the constraint that excluded it."""
    view = build_view(plan, sky, settings, site, zone)
    zname = view["night"]["timezone"]
    moon = view["night"]["moon"]
    lines = [f"night of {sky.night_date} at {site.latitude:.4f}, {site.longitude_east:.4f}: sunset "
             f"{_hm(sky.start, zone)}, sunrise {_hm(sky.end, zone)} ({zname}); "
             f"moon {moon['illumination'] * 100:.0f}% lit, {moon['age_days']:.1f} days old"]
    dark = sky.dark_span(settings.sun_altitude.broadband)
    if dark:
        lines.append(f"dark (sun below {settings.sun_altitude.broadband:g}°): "
                     f"{_hm(dark[0], zone)} - {_hm(dark[1], zone)}")
    if not plan.blocks:
        why = plan.decisions[-1].reason if plan.decisions else "no targets"
        lines.append(f"nothing to image tonight: {why}")
    else:
        width = max(len(b.target) for b in plan.blocks)
        lines.append("")
        lines.append(f"{'from':5}  {'to':5}  {'target':{width}}  frames / why")
        for b in plan.blocks:
            frames = _frames_text(b.frames, b.surplus)
            lines.append(f"{_hm(b.start, zone):5}  {_hm(b.end, zone):5}  {b.target:{width}}  {frames}")
            lines.append(f"{'':5}  {'':5}  {'':{width}}  why: {b.reason}")
    choice = first_choice(plan)
    if choice is not None and choice.candidates:
        lines.append("")
        lines.append(f"candidates at {_hm(choice.at, zone)}:")
        width = max(len(c.target) for c in choice.candidates)
        for c in choice.candidates:
            if c.score is not None:
                parts = ", ".join(f"{k} {v:.2f}" for k, v in c.parts.items())
                lines.append(f"  {c.target:{width}}  {c.score:6.2f}  "
                             f"({parts}; observable until {_hm(c.until, zone)})")
            else:
                lines.append(f"  {c.target:{width}}  {'-':>6}  {c.excluded_by}")
    return "\n".join(lines)


# -- the timeline picture ------------------------------------------------------------------------------

def _local_hours(t, sky: NightSky, zone: tzinfo):
    """Hours on the site's clock since the midnight that starts the night's date (after midnight: > 24)."""
    base = datetime.fromisoformat(sky.night_date).replace(tzinfo=zone) if sky.night_date else \
        datetime.fromtimestamp(sky.start, timezone.utc).astimezone(zone).replace(hour=0, minute=0, second=0)
    return (np.asarray(t, dtype=float) - base.timestamp()) / 3600.0


def draw_timeline(plan: NightPlan, sky: NightSky, targets, settings, zone: tzinfo, path: str | Path):
    """The night's timeline to the PNG ``path`` (written atomically); returns the canvas."""
    from ..focus.plot import BLACK, GREY, Canvas, nice_ticks

    class TimeCanvas(Canvas):
        def axes(self, xlabel, ylabel, title):
            super().axes(xlabel, ylabel, title)
            # clock labels for the x ticks: redraw the tick labels' strip
            d = self.draw
            d.rectangle([0, self.bottom + 5, self.width, self.bottom + 20], fill=(255, 255, 255))
            for t in nice_ticks(self.x0, self.x1):
                px, _ = self.px(t, self.y0)
                hours = t % 24.0
                d.text((px, self.bottom + 6), f"{int(hours):02d}:{int(round((hours % 1) * 60)) % 60:02d}",
                       fill=BLACK, font=self.small, anchor="mt")

    hours = _local_hours(sky.times, sky, zone)
    c = TimeCanvas(float(hours[0]), float(hours[-1]), -30.0, 90.0, width=900, height=500)
    zname = getattr(zone, "key", None) or str(zone)
    c.axes(f"{zname} time", "altitude (°)", f"season plan, night of {sky.night_date}")
    d = c.draw
    # the dark (broadband sun limit) shaded grey, the narrowband twilight lighter
    def xpx(t: float) -> float:
        return c.px(float(_local_hours(t, sky, zone)), 0.0)[0]

    shades = ((settings.sun_altitude.narrowband, (242, 242, 242)), (settings.sun_altitude.broadband, (228, 228, 228)))
    for limit, shade in shades:
        span = sky.dark_span(limit)
        if span:
            d.rectangle([xpx(span[0]), c.top + 1, xpx(span[1]), c.bottom - 1], fill=shade)
    table = table_for(sky, targets, settings)
    imaged = []
    for b in plan.blocks:
        if b.target not in imaged:
            imaged.append(b.target)
    choice = first_choice(plan)
    others = [cand.target for cand in (choice.candidates if choice else []) if cand.target not in imaged]
    shown = [n for n in imaged + others if n in table.index][:MAX_CURVES]
    colour = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(shown)}
    # the blocks: a tinted band per block, its target's name on top
    for b in plan.blocks:
        col = colour.get(b.target, GREY)
        tint = tuple(int(v + (255 - v) * 0.75) for v in col)
        x0, x1 = xpx(b.start), xpx(b.end)
        d.rectangle([x0, c.top + 1, x1, c.bottom - 1], fill=tint)
        if x1 - x0 > 30:
            d.text(((x0 + x1) / 2, c.top + 4), b.target, fill=col, font=c.small, anchor="mt")
    _, y_zero = c.px(hours[0], 0.0)
    d.line([(c.left, y_zero), (c.right, y_zero)], fill=GREY, width=1)
    xs = [float(h) for h in hours]
    c.polyline(xs, [float(v) for v in sky.sun_alt], (230, 160, 0), width=2)
    c.polyline(xs, [float(v) for v in sky.moon_alt], (120, 120, 160), width=2, dash=6)
    legend = [("-", "sun", (230, 160, 0)), ("--", f"moon ({sky.moon_illum.mean() * 100:.0f}% lit)", (120, 120, 160))]
    for name in shown:
        row = table.index[name]
        alt = [float(v) for v in table.alt[row]]
        c.polyline(xs, alt, colour[name], width=1)
        for b in plan.blocks:
            if b.target == name:
                sel = [(x, a) for x, a, t in zip(xs, alt, sky.times)
                       if b.start - sky.step_s <= t <= b.end + sky.step_s]
                if len(sel) >= 2:
                    c.polyline([s[0] for s in sel], [s[1] for s in sel], colour[name], width=4)
        legend.append(("-", name + (" (imaged)" if name in imaged else ""), colour[name]))
    _legend_right(c, legend)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent or Path(".")))
    os.close(fd)
    try:
        c.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return c


def _legend_right(c, entries) -> None:
    from ..focus.plot import BLACK, GREY

    d, font = c.draw, c.small
    line_h = 13
    w = max((d.textbbox((0, 0), t, font=font)[2] for _, t, _ in entries), default=40) + 34
    x = c.right - w - 4
    y = c.top + 18
    d.rectangle([x, y, x + w, y + line_h * len(entries) + 6], fill=(255, 255, 255), outline=GREY)
    for i, (kind, text, colour) in enumerate(entries):
        cy = y + 3 + line_h * i + line_h / 2
        if kind == "--":
            for sx in range(int(x + 5), int(x + 25), 10):
                d.line([(sx, cy), (sx + 5, cy)], fill=colour, width=2)
        else:
            d.line([(x + 5, cy), (x + 25, cy)], fill=colour, width=2)
        d.text((x + 30, cy), text, fill=BLACK, font=font, anchor="lm")
