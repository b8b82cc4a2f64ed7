"""V-curve fits and their judgement on synthetic curves (no devices)."""

import math

import numpy as np
import pytest

from indisync.configtypes import ConfigValueError, build
from indisync.focus.fit import FitSettings, FocusPoint, fit_vcurve
from indisync.focus.settings import FocusSettings

SCALE = 5.2 / 900 * 206.3  # arcsec per pixel of the INDI CCD simulator


def sim_hfr(pos, focus, seeing=3.0, fmax=10000.0):
    """HFR (px) of a Gaussian star whose FWHM follows the INDI CCD simulator's focus model."""
    fwhm = 0.5625 * (20.0 * (pos - focus) / fmax) ** 2 + seeing
    return fwhm / 2.0 / SCALE


def hyperbola_hfr(pos, focus, best=1.5, slope=0.004):
    return math.sqrt(best**2 + (slope * (pos - focus)) ** 2)


def sweep(model, focus, rng, noise=0.02, step=400, points=9, stars=40, centre=0, **kw):
    out = []
    for i in range(points):
        pos = int(centre + (i - (points - 1) / 2) * step)
        h = model(pos, focus, **kw) * (1 + noise * rng.standard_normal())
        out.append(FocusPoint(pos, h, 0.15 * h, stars))
    return out


@pytest.mark.parametrize("model", [sim_hfr, hyperbola_hfr])
@pytest.mark.parametrize("focus", [-900, -250, 0, 430, 1000])
def test_finds_the_minimum_of_a_noisy_curve(model, focus):
    rng = np.random.default_rng(abs(focus) + 7)
    outcome = fit_vcurve(sweep(model, focus, rng))
    assert outcome.trusted, outcome.reason
    best = outcome.best
    assert abs(best.position - focus) < 80, (best.model, best.position)
    assert best.r2 > 0.95
    assert 0 < best.sigma_position < 200
    assert best.hfr == pytest.approx(model(focus, focus), rel=0.1)
    assert best.p_vs_constant < 0.01 and best.p_vs_line < 0.01


def test_sigma_position_is_honest():
    """Over many noisy sweeps, about 68 % of the errors lie within one reported σ."""
    rng = np.random.default_rng(3)
    inside = []
    for _ in range(150):
        focus = rng.uniform(-600, 600)
        outcome = fit_vcurve(sweep(sim_hfr, focus, rng, noise=0.03))
        assert outcome.trusted
        # points carry 15 % spread / sqrt(40) ≈ 3 % error, the true noise: σ should be calibrated
        inside.append(abs(outcome.best.position - focus) <= outcome.best.sigma_position)
    assert 0.55 < np.mean(inside) < 0.85


def test_one_outlier_is_rejected_and_the_refit_kept():
    rng = np.random.default_rng(11)
    points = sweep(sim_hfr, 200, rng, noise=0.01)
    bad = points[2]
    points[2] = FocusPoint(bad.position, bad.hfr * 2.2, bad.spread, bad.stars)
    with_test = fit_vcurve(points)
    without = fit_vcurve(points, FitSettings(outlier_test="none"))
    assert with_test.rejected is points[2]
    assert with_test.trusted
    assert abs(with_test.best.position - 200) < 40
    assert points[2] not in with_test.points
    # the uncorrected fit is worse (pulled off, or not trusted at all)
    assert not without.trusted or abs(without.best.position - 200) > abs(with_test.best.position - 200)


def test_no_outlier_rejected_on_clean_data():
    rng = np.random.default_rng(5)
    outcome = fit_vcurve(sweep(sim_hfr, -300, rng, noise=0.01))
    assert outcome.trusted and outcome.rejected is None


def test_minimum_outside_the_sampled_range_is_rejected():
    rng = np.random.default_rng(2)
    outcome = fit_vcurve(sweep(sim_hfr, 3500, rng, noise=0.01))
    assert not outcome.trusted
    assert "outside sampled range" in outcome.reason
    # but the trend is there: the routine uses this to extend the sweep
    assert outcome.p_line_vs_constant < 0.01


def test_flat_curve_is_rejected():
    rng = np.random.default_rng(4)
    points = [FocusPoint(p, 2.0 * (1 + 0.03 * rng.standard_normal()), 0.3, 40) for p in range(-1600, 1601, 400)]
    outcome = fit_vcurve(points)
    assert not outcome.trusted
    assert "does not beat a constant" in outcome.reason
    assert outcome.p_line_vs_constant > 0.01


def test_straight_line_is_not_a_v():
    rng = np.random.default_rng(6)
    points = [FocusPoint(p, 2.0 + 0.0005 * p * (1 + 0.02 * rng.standard_normal()), 0.3, 40)
              for p in range(-1600, 1601, 400)]
    outcome = fit_vcurve(points)
    assert not outcome.trusted


def test_pure_noise_never_trusted():
    """Clouds that leave a few random stars: no fit may be trusted (NINA walks off in this case)."""
    rng = np.random.default_rng(8)
    trusted = 0
    for _ in range(200):
        points = [FocusPoint(p, float(rng.uniform(1.0, 4.0)), 0.8, 6) for p in range(-1600, 1601, 400)]
        trusted += fit_vcurve(points).trusted
    assert trusted <= 4  # significance 0.01 against two simpler models, plus R², σ and range gates


def test_starless_points_are_ignored_and_too_few_points_fail():
    rng = np.random.default_rng(9)
    points = sweep(sim_hfr, 0, rng)
    holed = [FocusPoint(p.position, None, None, 0) if i in (0, 8) else p for i, p in enumerate(points)]
    outcome = fit_vcurve(holed)
    assert outcome.trusted and len(outcome.points) == 7
    few = [FocusPoint(p.position, None, None, 0) if i % 2 else p for i, p in enumerate(points)][:8]
    outcome = fit_vcurve(few)
    assert not outcome.trusted and "usable points" in outcome.reason


def test_weights_follow_the_spread():
    """A wild point with a huge spread barely moves the fit; with a tight spread it would."""
    rng = np.random.default_rng(12)
    points = sweep(sim_hfr, 0, rng, noise=0.005)
    p = points[6]
    loose = list(points)
    loose[6] = FocusPoint(p.position, p.hfr * 0.7, p.hfr * 50, 40)
    outcome = fit_vcurve(loose, FitSettings(outlier_test="none"))
    assert outcome.trusted and abs(outcome.best.position) < 40


def test_models_can_be_restricted():
    rng = np.random.default_rng(13)
    outcome = fit_vcurve(sweep(hyperbola_hfr, 100, rng), FitSettings(models=["v"]))
    assert [f.model for f in outcome.fits] == ["v"]
    assert outcome.trusted and abs(outcome.best.position - 100) < 150


def test_settings_from_yaml_data_and_errors():
    s = build(FocusSettings, {"step": 250, "offsets": {"R": 30}, "fit": {"min_r2": 0.9}}, "focus")
    assert s.step == 250 and s.offsets == {"R": 30} and s.fit.min_r2 == 0.9 and s.points == 9
    with pytest.raises(ConfigValueError, match="focus.points"):
        build(FocusSettings, {"points": 3}, "focus")
    with pytest.raises(ConfigValueError, match="focus.fit.significance"):
        build(FocusSettings, {"fit": {"significance": 2}}, "focus")
    with pytest.raises(ConfigValueError, match="focus.stepp"):
        build(FocusSettings, {"stepp": 1}, "focus")
    with pytest.raises(ConfigValueError, match="focus.approach"):
        build(FocusSettings, {"approach": "sideways"}, "focus")


@pytest.mark.parametrize("focus", [-1500, -300, 0, 800, 2200])
def test_hyperbola_fit_recovers_an_exact_curve(focus):
    """The numpy Levenberg-Marquardt (no scipy.optimize) lands on the true parameters, the minimum
    near an end of the sweep or past it included (the latter then rejected as outside the range)."""
    pts = [FocusPoint(p, hyperbola_hfr(p, focus), 0.05, 40) for p in range(-1600, 1601, 400)]
    fit = next(f for f in fit_vcurve(pts, FitSettings(models=["hyperbola"])).fits if f.model == "hyperbola")
    assert fit.position == pytest.approx(focus, abs=0.5)
    assert fit.hfr == pytest.approx(1.5, rel=1e-4) and fit.params[2] == pytest.approx(0.004, rel=1e-4)
    assert fit.chi2 < 1e-6
    assert fit.accepted == (-1600 <= focus <= 1600)


def test_fit_module_needs_no_scipy_optimize():
    import subprocess
    import sys

    code = ("import sys, indisync.focus.fit as f, numpy as np\n"
            "pts = [f.FocusPoint(p, (1 + (p / 800) ** 2) ** 0.5, 0.1, 30) for p in range(-1600, 1601, 400)]\n"
            "assert f.fit_vcurve(pts).trusted\n"
            "print([m for m in sys.modules if m.startswith(('scipy.optimize', 'scipy.spatial', 'scipy.stats'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
