"""The V-curve PNG (Pillow): written, the right size, and the curve, points and focus line where they belong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from indisync.focus.fit import FocusPoint, FitSettings, fit_vcurve, point_errors
from indisync.focus.plot import BLUE, GREEN, GREY, ORANGE, draw_vcurve, nice_ticks
from indisync.focus.record import plot_vcurve
from indisync.focus.routine import FocusResult


def _result(points, fit, status="ok", position=None, start=40000, reason=None, check=None):
    best = fit.best if fit is not None else None
    return FocusResult(status=status, reason=reason, position=position if position is not None else start,
                       start_position=start, hfr=None, predicted_hfr=None, frames=len(points),
                       model=best.model if best else None, sigma_position=best.sigma_position if best else None,
                       points=points, check=check, fit=fit)


def _vcurve_points():
    rng = np.random.default_rng(3)
    xs = range(38400, 41700, 400)
    return [FocusPoint(x, float(1.2 + ((x - 40300) / 800) ** 2 + rng.normal(0, 0.02)), 0.2, 40) for x in xs]


def _near(image, xy, colour, reach=2, tol=40):
    """Is there a pixel of about ``colour`` within ``reach`` pixels of ``xy``?"""
    px = image.load()
    cx, cy = int(round(xy[0])), int(round(xy[1]))
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            x, y = cx + dx, cy + dy
            if 0 <= x < image.width and 0 <= y < image.height:
                if all(abs(a - b) <= tol for a, b in zip(px[x, y], colour)):
                    return True
    return False


def test_vcurve_png_has_points_curve_and_focus_line(tmp_path):
    points = _vcurve_points()
    fit = fit_vcurve(points)
    assert fit.best is not None
    result = _result(points, fit, position=round(fit.best.position), check=FocusPoint(40300, 1.22, 0.1, 40))
    path = tmp_path / "v.png"
    canvas = draw_vcurve(result, path, list(point_errors(points, FitSettings())))
    image = Image.open(path)
    assert image.format == "PNG" and image.size == (700, 450)
    image = image.convert("RGB")
    for p in points:  # every sweep point is drawn, at its place
        assert _near(image, canvas.px(p.position, p.hfr), BLUE), p
    for x in (38600, 39300, 41000, 41500):  # the chosen fit runs through its predictions (away from the legend)
        assert _near(image, canvas.px(x, float(fit.best.predict([x])[0])), ORANGE), x
    fx, _ = canvas.px(result.position, 1.0)
    assert _near(image, (fx, (canvas.top + canvas.bottom) / 2), GREEN, reach=1)  # the focus line
    sx, _ = canvas.px(result.start_position, 1.0)
    column = [image.getpixel((int(round(sx)), y)) for y in range(int(canvas.top) + 1, int(canvas.bottom))]
    assert sum(c == GREY for c in column) > 20  # the start position, dotted
    # the frame has ink beyond the plot: tick labels, axis labels, title
    margin = np.asarray(image)[int(canvas.bottom) + 5:, :, :]
    assert (margin.min(axis=2) < 128).sum() > 200


def test_failed_run_without_fit_still_plots(tmp_path):
    points = [FocusPoint(40000 + 400 * i, None, None, 0) for i in range(4)]
    points += [FocusPoint(41600, 3.0, 0.5, 6), FocusPoint(42000, 3.1, 0.5, 6)]
    result = _result(points, None, status="failed", reason="too few stars on 4 of 6 frames" * 5)
    path = tmp_path / "failed.png"
    plot_vcurve(result, path)
    image = Image.open(path).convert("RGB")
    assert image.size == (700, 450)
    assert any(_near(image, (x, y), BLUE, reach=0) for x in range(700) for y in range(0, 450, 2))


def test_plot_does_not_import_matplotlib(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'tests/unit'); import test_focus_plot as t\n"
        "from indisync.focus.record import plot_vcurve\n"
        "pts = t._vcurve_points(); plot_vcurve(t._result(pts, t.fit_vcurve(pts)), sys.argv[1])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "v.png")], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_nice_ticks():
    assert nice_ticks(38210, 41790) == [39000, 40000, 41000]
    ticks = nice_ticks(0.93, 6.6)
    assert ticks[0] >= 0.93 and ticks[-1] <= 6.6 and len(ticks) >= 4
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1
    assert nice_ticks(5, 5)  # a flat range still gets ticks
