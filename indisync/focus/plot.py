"""The V-curve PNG drawn with Pillow: points with error bars, the fits, the start and focus positions.

Pillow, not matplotlib (issue 13): matplotlib costs ~30 MB of RSS on top of everything an autofocus
run already holds, and that made the end of the run its memory peak; Pillow costs ~4 MB and is
already installed (the Home Assistant frame preview uses it). The figure keeps what a person needs to
judge a run at a glance: the sweep, the chosen fit (others dashed), the minimum, ticks, labels, a
legend and a title with the verdict.

``Canvas`` maps data to pixels and draws the primitives; ``draw_vcurve`` lays the V-curve out on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

# matplotlib's tab10 colours, so the figure reads as before
BLUE, ORANGE, GREEN, RED, GREY = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (127, 127, 127)
FIT_COLOURS = ((148, 103, 189), (140, 86, 75), (227, 119, 194), (188, 189, 34))  # the models not chosen
BLACK, WHITE, GRID = (0, 0, 0), (255, 255, 255), (225, 225, 225)
WIDTH, HEIGHT = 700, 450
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 30, 46


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # FreeType (Pillow >= 10.1): scalable DejaVu-like font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()  # the fixed bitmap font


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 and step < 1 else 0
    if step > 0 and decimals == 0 and abs(step - round(step)) > 1e-9:
        decimals = 1  # 2.5
    return f"{value:.{decimals}f}"


@dataclass
class Canvas:
    """A white image with a plot area mapping (x0..x1, y0..y1) in data units to pixels."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT

    def __post_init__(self):
        self.image = Image.new("RGB", (self.width, self.height), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.font, self.small, self.title_font = _font(12), _font(10), _font(12)
        self.left, self.top = MARGIN_LEFT, MARGIN_TOP
        self.right, self.bottom = self.width - MARGIN_RIGHT, self.height - MARGIN_BOTTOM

    def px(self, x: float, y: float) -> tuple[float, float]:
        fx = (x - self.x0) / (self.x1 - self.x0)
        fy = (y - self.y0) / (self.y1 - self.y0)
        return self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top)

    def inside(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    def axes(self, xlabel: str, ylabel: str, title: str) -> None:
        d = self.draw
        for t in nice_ticks(self.x0, self.x1):
            px, _ = self.px(t, self.y0)
            d.line([(px, self.top), (px, self.bottom)], fill=GRID)
            d.line([(px, self.bottom), (px, self.bottom + 4)], fill=BLACK)
            d.text((px, self.bottom + 6), _label(t, _step(self.x0, self.x1)), fill=BLACK, font=self.small, anchor="mt")
        for t in nice_ticks(self.y0, self.y1):
            _, py = self.px(self.x0, t)
            d.line([(self.left, py), (self.right, py)], fill=GRID)
            d.line([(self.left - 4, py), (self.left, py)], fill=BLACK)
            d.text((self.left - 6, py), _label(t, _step(self.y0, self.y1)), fill=BLACK, font=self.small, anchor="rm")
        d.rectangle([self.left, self.top, self.right, self.bottom], outline=BLACK)
        d.text(((self.left + self.right) / 2, self.height - 6), xlabel, fill=BLACK, font=self.font, anchor="md")
        d.text(((self.left + self.right) / 2, self.top - 8), title, fill=BLACK, font=self.title_font, anchor="md")
        # the y label, written sideways
        box = self.draw.textbbox((0, 0), ylabel, font=self.font)
        label = Image.new("RGB", (box[2] - box[0] + 4, box[3] - box[1] + 4), WHITE)
        ImageDraw.Draw(label).text((2 - box[0], 2 - box[1]), ylabel, fill=BLACK, font=self.font)
        label = label.rotate(90, expand=True)
        self.image.paste(label, (4, int((self.top + self.bottom - label.height) / 2)))

    def polyline(self, xs: Sequence[float], ys: Sequence[float], colour, width: int = 2, dash: int = 0) -> None:
        """A line through the finite points (clipped to the plot area); ``dash`` > 0 draws it dashed."""
        pts = [self.px(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and self.inside(x, y)]
        if len(pts) < 2:
            return
        if not dash:
            self.draw.line(pts, fill=colour, width=width, joint="curve")
            return
        run, on = 0.0, True
        for (ax, ay), (bx, by) in zip(pts, pts[1:]):
            if on:
                self.draw.line([(ax, ay), (bx, by)], fill=colour, width=width)
            run += math.hypot(bx - ax, by - ay)
            if run >= dash:
                run, on = 0.0, not on

    def vline(self, x: float, colour, dotted: bool = False) -> None:
        if not self.x0 <= x <= self.x1:
            return
        px, _ = self.px(x, self.y0)
        if not dotted:
            self.draw.line([(px, self.top), (px, self.bottom)], fill=colour, width=2)
            return
        for y in range(int(self.top), int(self.bottom), 6):
            self.draw.line([(px, y), (px, min(y + 2, self.bottom))], fill=colour, width=2)

    def marker(self, x: float, y: float, kind: str, colour, size: float = 4.0) -> None:
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        cx, cy = self.px(x, y)
        self._glyph(kind, cx, cy, colour, size)

    def _glyph(self, kind: str, cx: float, cy: float, colour, s: float) -> None:
        d = self.draw
        if kind == "o":
            d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=colour)
        elif kind == "x":
            d.line([(cx - s, cy - s), (cx + s, cy + s)], fill=colour, width=2)
            d.line([(cx - s, cy + s), (cx + s, cy - s)], fill=colour, width=2)
        elif kind == "v":
            d.polygon([(cx - s, cy - s), (cx + s, cy - s), (cx, cy + s)], fill=colour)
        elif kind == "*":
            pts = []
            for k in range(10):
                r = s if k % 2 == 0 else s * 0.45
                a = math.pi / 2 + k * math.pi / 5
                pts.append((cx + r * math.cos(a), cy - r * math.sin(a)))
            d.polygon(pts, fill=colour)

    def errorbar(self, x: float, y: float, err: float, colour) -> None:
        if not all(math.isfinite(v) for v in (x, y, err)):
            return
        lo, hi = max(y - err, self.y0), min(y + err, self.y1)
        (px, plo), (_, phi) = self.px(x, lo), self.px(x, hi)
        self.draw.line([(px, plo), (px, phi)], fill=colour, width=1)
        for py in (plo, phi):
            self.draw.line([(px - 3, py), (px + 3, py)], fill=colour, width=1)

    def legend(self, entries: list[tuple[str, str, tuple]]) -> None:
        """(kind, text, colour) rows in a framed box at the top centre; kind is a marker or '-', '--', ':'."""
        if not entries:
            return
        d, font = self.draw, self.small
        rows = [(k, t, c, d.textbbox((0, 0), t, font=font)) for k, t, c in entries]
        line_h = max(b[3] - b[1] for *_, b in rows) + 5
        w = max(b[2] - b[0] for *_, b in rows) + 34
        x = (self.left + self.right - w) / 2
        y = self.top + 4
        d.rectangle([x, y, x + w, y + line_h * len(rows) + 6], fill=WHITE, outline=GREY)
        for i, (kind, text, colour, _) in enumerate(rows):
            cy = y + 3 + line_h * i + line_h / 2
            if kind in ("-", "--", ":"):
                step = {"-": 0, "--": 6, ":": 2}[kind]
                for sx in range(int(x + 5), int(x + 25), (step * 2) or 20):
                    d.line([(sx, cy), (min(sx + (step or 20), x + 25), cy)], fill=colour, width=2)
            else:
                self._glyph(kind, x + 15, cy, colour, 4)
            d.text((x + 30, cy), text, fill=BLACK, font=font, anchor="lm")

    def save(self, path: str | Path) -> None:
        self.image.save(str(path), format="PNG", optimize=False)


def _step(lo: float, hi: float) -> float:
    ticks = nice_ticks(lo, hi)
    return ticks[1] - ticks[0] if len(ticks) > 1 else 1.0


def _padded(lo: float, hi: float, fraction: float = 0.05) -> tuple[float, float]:
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * fraction
    return lo - pad, hi + pad


def draw_vcurve(result, path: str | Path, errors: Sequence[float]) -> Canvas:
    """Draw ``result`` (a FocusResult) to the PNG ``path``; ``errors`` are the usable points' 1-σ errors.

    Returns the canvas (its ``px`` maps data to pixels: the tests check the curve where it should be)."""
    usable = [p for p in result.points if p.usable]
    starless = [p for p in result.points if not p.usable]
    fit = result.fit
    positions = [p.position for p in result.points] or [result.start_position]
    extra = [result.start_position] + ([result.position] if result.ok and result.position is not None else [])
    x0, x1 = _padded(min(positions + extra), max(positions + extra))
    n = 300
    xs = [min(positions) + (max(positions) - min(positions)) * i / (n - 1) for i in range(n)]

    curves = []  # (model fit, ys)
    if fit is not None:
        for m in fit.fits:
            ys = [float(v) for v in m.predict(xs)]
            if m is fit.best or all(math.isfinite(v) for v in ys):
                curves.append((m, ys))
    lows = [p.hfr - e for p, e in zip(usable, errors)] + [p.hfr for p in usable]
    highs = [p.hfr + e for p, e in zip(usable, errors)]
    if result.check is not None and result.check.usable:
        lows.append(result.check.hfr)
        highs.append(result.check.hfr)
    if fit is not None and fit.best is not None:
        best_ys = [v for m, ys in curves if m is fit.best for v in ys if math.isfinite(v)]
        lows += best_ys
        highs += best_ys
    ymin = min((p.hfr for p in usable), default=1.0)
    if starless:
        lows.append(ymin * 0.9)
    y0, y1 = _padded(min(lows, default=0.0), max(highs, default=ymin * 2), 0.08)
    y1 += (y1 - y0) * 0.35  # room for the legend at the top

    c = Canvas(x0, x1, y0, y1)
    title = f"autofocus {result.status}"
    if result.reason:
        title += ": " + (result.reason if len(result.reason) < 70 else result.reason[:67] + "...")
    c.axes("focuser position (steps)", "median HFR (px)", title)
    legend: list[tuple[str, str, tuple]] = []

    c.vline(result.start_position, GREY, dotted=True)
    legend.append((":", f"start {result.start_position}", GREY))
    others = [(m, ys) for m, ys in curves if fit is None or m is not fit.best]
    for k, (m, ys) in enumerate(others):
        colour = FIT_COLOURS[k % len(FIT_COLOURS)]
        c.polyline(xs, ys, colour, width=1, dash=6)
        legend.append(("--", f"{m.model} ({'not chosen' if m.accepted else 'rejected'})", colour))
    if fit is not None and fit.best is not None:
        b = fit.best
        ys = next(ys for m, ys in curves if m is b)
        c.polyline(xs, ys, ORANGE, width=2)
        c.marker(b.position, b.hfr, "v", ORANGE, 5)
        legend.append(("-", f"{b.model}: {b.position:.0f} ± {b.sigma_position:.0f}, R^2={b.r2:.3f}", ORANGE))
    for p, e in zip(usable, errors):
        c.errorbar(p.position, p.hfr, float(e), BLUE)
        c.marker(p.position, p.hfr, "o", BLUE)
    if usable:
        legend.insert(0, ("o", "sweep", BLUE))
    if fit is not None and fit.rejected is not None:
        c.marker(fit.rejected.position, fit.rejected.hfr, "x", RED, 6)
        legend.append(("x", "outlier", RED))
    for p in starless:
        c.marker(p.position, ymin * 0.9, "v", GREY)
    if starless:
        legend.append(("v", "too few stars", GREY))
    if result.check is not None and result.check.usable:
        c.marker(result.check.position, result.check.hfr, "*", GREEN, 8)
        legend.append(("*", "check", GREEN))
    if result.ok and result.position is not None:
        c.vline(result.position, GREEN)
        legend.append(("-", f"focus {result.position}", GREEN))
    c.legend(legend)
    c.save(path)
    return c
