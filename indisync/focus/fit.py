"""Curve fits through (position, HFR) points and the judgement of whether to trust them.

Three models are fitted, each weighted by the uncertainty of its points' median HFR:

* ``parabola``  HFR = A + B·u + C·u²  (exact for the INDI CCD simulator, good near focus anywhere)
* ``hyperbola`` HFR = sqrt(a² + (b·(x − c))²)  (the geometric-optics shape of a real V-curve)
* ``v``         two straight lines meeting at the minimum (robust for deep, asymmetric V-curves)

A model is trusted only if (as RTS2's focusing does) it explains the data significantly better than a
constant and than a straight line: an F-test on the χ² drop, which does not depend on the absolute
error scale. It must also have a weighted R² above a floor, open upwards, have its minimum inside the
sampled positions and a small enough σ(position). Of the trusted models the one with the smallest
σ(position) wins. At most one outlier is rejected (Grubbs' test on the normalised residuals of the best
model); the refit is kept only if it improves the chosen model's reduced χ².

Everything here is pure: numbers in, dataclasses out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special  # special, not stats (~20 MB more RSS); no optimize (~14 MB): _hyperbola_lm

# FitSettings and the model names live in fit_settings.py, so loading the config needs no numpy/scipy.
from .fit_settings import MODELS, FitSettings, ModelName  # noqa: F401 - re-exported

MODEL_PARAMETERS = {"constant": 1, "line": 2, "parabola": 3, "hyperbola": 3, "v": 4}


@dataclass(frozen=True)
class FocusPoint:
    """One sweep frame: where the focuser was and what the stars looked like.

    ``hfr`` is None when the frame had too few stars to measure; such points are shown but never fitted.
    ``spread`` is the scatter of the individual stars' HFR (pixels); with ``stars`` it sets the weight.
    """

    position: int
    hfr: float | None
    spread: float | None
    stars: int

    @property
    def usable(self) -> bool:
        return self.hfr is not None and math.isfinite(self.hfr) and self.hfr > 0


@dataclass
class ModelFit:
    """One model fitted to the points, with its figures of merit and the verdict."""

    model: str
    params: tuple[float, ...]  # in the model's own parameterisation, see predict()
    position: float  # position of the minimum, focuser steps
    hfr: float  # HFR predicted at the minimum
    sigma_position: float  # 1-σ uncertainty of ``position`` (steps), scaled up by reduced χ² when > 1
    chi2: float
    dof: int
    reduced_chi2: float
    r2: float  # weighted R², i.e. 1 − χ²/χ²(constant)
    p_vs_constant: float  # F-test p-value of this model against a constant
    p_vs_line: float  # and against a straight line
    accepted: bool = False
    reason: str | None = None  # why it was not accepted

    def predict(self, x: np.ndarray | Sequence[float]) -> np.ndarray:
        return _evaluate(self.model, self.params, np.asarray(x, dtype=float))


@dataclass
class FitOutcome:
    """The verdict over all models. ``best`` is None when nothing can be trusted (``reason`` says why)."""

    best: ModelFit | None
    fits: list[ModelFit]
    points: list[FocusPoint]  # the usable points the final fits used
    rejected: FocusPoint | None = None  # the outlier removed, if the refit without it was kept
    reason: str | None = None
    p_line_vs_constant: float = 1.0  # is there any trend at all? (used to decide on extending a sweep)

    @property
    def trusted(self) -> bool:
        return self.best is not None


def point_errors(points: Sequence[FocusPoint], settings: FitSettings) -> np.ndarray:
    """1-σ error of each point's median HFR: spread/√stars with a floor relative to the HFR."""
    out = []
    for p in points:
        floor = settings.relative_error_floor * float(p.hfr)
        spread = p.spread if p.spread is not None and math.isfinite(p.spread) else 0.0
        # 1.2533 = √(π/2): the standard error of a median is that much larger than a mean's
        out.append(max(1.2533 * spread / math.sqrt(max(p.stars, 1)), floor, 1e-6))
    return np.asarray(out)


def fit_vcurve(points: Sequence[FocusPoint], settings: FitSettings | None = None) -> FitOutcome:
    """Fit every configured model to the usable points, judge them, and reject at most one outlier."""
    settings = settings or FitSettings()
    usable = sorted((p for p in points if p.usable), key=lambda p: p.position)
    if len(usable) < settings.min_points:
        return FitOutcome(None, [], usable, reason=f"only {len(usable)} usable points, need {settings.min_points}")
    if len({p.position for p in usable}) < 3:
        return FitOutcome(None, [], usable, reason="fewer than 3 distinct positions")

    first = _judge(usable, settings)
    candidate = _outlier(usable, first, settings)
    if candidate is None:
        return first
    trimmed = [p for p in usable if p is not candidate]
    second = _judge(trimmed, settings)
    if second.best is not None and (
        first.best is None or second.best.reduced_chi2 < first.best.reduced_chi2
    ):
        second.rejected = candidate
        return second
    return first


# --------------------------------------------------------------------------------------------- judging


def _judge(points: list[FocusPoint], settings: FitSettings) -> FitOutcome:
    x = np.array([p.position for p in points], dtype=float)
    y = np.array([p.hfr for p in points], dtype=float)
    sigma = point_errors(points, settings)
    w = 1.0 / sigma**2
    n = len(points)

    chi2_const = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
    chi2_line = _chi2_line(x, y, w)
    p_line = _f_test(chi2_const, 1, chi2_line, 2, n)
    spacing = float(np.median(np.diff(np.unique(x))))

    fits: list[ModelFit] = []
    for name in settings.models:
        fit = _FITTERS[name](x, y, sigma)
        if fit is None:
            continue
        fit.p_vs_constant = _f_test(chi2_const, 1, fit.chi2, MODEL_PARAMETERS[name], n)
        fit.p_vs_line = _f_test(chi2_line, 2, fit.chi2, MODEL_PARAMETERS[name], n)
        fit.r2 = 1.0 - fit.chi2 / chi2_const if chi2_const > 0 else 0.0
        fit.reason = _verdict(fit, x, spacing, settings)
        fit.accepted = fit.reason is None
        fits.append(fit)

    accepted = [f for f in fits if f.accepted]
    # the most precise trusted estimate wins; σ(position) is inflated by reduced χ² when the model
    # misfits, so a wrong shape loses even when it happens to thread the noise
    best = min(accepted, key=lambda f: f.sigma_position) if accepted else None
    reason = None
    if best is None:
        reason = "; ".join(f"{f.model}: {f.reason}" for f in fits) or "no model converged"
    return FitOutcome(best, fits, points, reason=reason, p_line_vs_constant=p_line)


def _verdict(fit: ModelFit, x: np.ndarray, spacing: float, s: FitSettings) -> str | None:
    """None if the fit is trusted, else a short sentence saying why not."""
    if not math.isfinite(fit.position) or not math.isfinite(fit.hfr) or fit.hfr <= 0:
        return "no finite minimum"
    if fit.p_vs_constant >= s.significance:
        return f"does not beat a constant (p={fit.p_vs_constant:.3g} >= {s.significance})"
    if fit.p_vs_line >= s.significance:
        return f"does not beat a straight line (p={fit.p_vs_line:.3g} >= {s.significance})"
    if fit.r2 < s.min_r2:
        return f"R²={fit.r2:.3f} below {s.min_r2}"
    if s.max_reduced_chi2 is not None and fit.reduced_chi2 > s.max_reduced_chi2:
        return f"reduced χ²={fit.reduced_chi2:.3g} above {s.max_reduced_chi2}"
    if not x.min() <= fit.position <= x.max():
        return f"minimum {fit.position:.0f} outside sampled range {x.min():.0f}..{x.max():.0f}"
    if not math.isfinite(fit.sigma_position) or fit.sigma_position > s.max_sigma_spacings * spacing:
        return f"σ(position)={fit.sigma_position:.0f} steps above {s.max_sigma_spacings * spacing:.0f}"
    return None


def _f_test(chi2_simple: float, k_simple: int, chi2_model: float, k_model: int, n: int) -> float:
    """p-value that the extra parameters of the bigger model explain nothing (1.0 = no evidence)."""
    dfn, dfd = k_model - k_simple, n - k_model
    if dfn <= 0 or dfd <= 0:
        return 1.0
    if chi2_model <= 0:
        return 0.0 if chi2_simple > 0 else 1.0
    f = ((chi2_simple - chi2_model) / dfn) / (chi2_model / dfd)
    if f <= 0:
        return 1.0
    return float(special.fdtrc(dfn, dfd, f))  # = scipy.stats.f.sf(f, dfn, dfd)


def _chi2_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    u, _, _ = _normalise(x)
    design = np.column_stack([np.ones_like(u), u])
    coef = _wls(design, y, w)[0]
    return float(np.sum(w * (y - design @ coef) ** 2))


def _outlier(points: list[FocusPoint], outcome: FitOutcome, s: FitSettings) -> FocusPoint | None:
    """Grubbs' test on the normalised residuals of the best-fitting model; the outlier or None."""
    n = len(points)
    if s.outlier_test == "none" or n < max(s.min_points + 1, 7) or not outcome.fits:
        return None
    model = outcome.best or min(outcome.fits, key=lambda f: f.reduced_chi2)
    x = np.array([p.position for p in points], dtype=float)
    y = np.array([p.hfr for p in points], dtype=float)
    r = (y - model.predict(x)) / point_errors(points, s)
    sd = float(np.std(r, ddof=1))
    if sd <= 0 or not math.isfinite(sd):
        return None
    g = np.abs(r - r.mean()) / sd
    i = int(np.argmax(g))
    t = special.stdtrit(n - 2, 1 - s.outlier_alpha / (2 * n))  # = scipy.stats.t.ppf(q, n - 2)
    g_crit = (n - 1) / math.sqrt(n) * math.sqrt(t * t / (n - 2 + t * t))
    return points[i] if g[i] > g_crit else None


# --------------------------------------------------------------------------------------------- models


def _normalise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Positions are large integers: fit in u = (x − centre)/scale for a well-conditioned problem."""
    centre = float((x.min() + x.max()) / 2)
    scale = float((x.max() - x.min()) / 2) or 1.0
    return (x - centre) / scale, centre, scale


def _wls(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares: coefficients and their covariance (for errors taken as absolute)."""
    sw = np.sqrt(w)
    a = design * sw[:, None]
    coef, *_ = np.linalg.lstsq(a, y * sw, rcond=None)
    cov = np.linalg.pinv(a.T @ a)
    return coef, cov


def _evaluate(model: str, params: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    if model == "parabola":
        a0, a1, a2, centre, scale = params
        u = (x - centre) / scale
        return a0 + a1 * u + a2 * u * u
    if model == "hyperbola":
        c, a, b = params
        return np.sqrt(a * a + (b * (x - c)) ** 2)
    if model == "v":
        c, h0, left, right = params
        return h0 + left * np.maximum(c - x, 0.0) + right * np.maximum(x - c, 0.0)
    raise ValueError(f"unknown focus model {model!r}; allowed: {', '.join(MODELS)}")


def _finish(model: str, params: tuple, x, y, sigma, position, hfr, var_position, k) -> ModelFit:
    resid = (y - _evaluate(model, params, x)) / sigma
    chi2 = float(np.sum(resid**2))
    dof = len(x) - k
    red = chi2 / dof if dof > 0 else math.inf
    sigma_pos = math.sqrt(max(var_position, 0.0) * max(1.0, red)) if math.isfinite(var_position) else math.inf
    return ModelFit(model, tuple(float(p) for p in params), float(position), float(hfr), sigma_pos,
                    chi2, dof, red, 0.0, 1.0, 1.0)


def _fit_parabola(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> ModelFit | None:
    u, centre, scale = _normalise(x)
    design = np.column_stack([np.ones_like(u), u, u * u])
    (a0, a1, a2), cov = _wls(design, y, 1.0 / sigma**2)
    params = (a0, a1, a2, centre, scale)
    if a2 <= 0:  # opens downwards or flat: no minimum; report it with an infinite position
        fit = _finish("parabola", params, x, y, sigma, math.nan, math.nan, math.inf, 3)
        return fit
    u0 = -a1 / (2 * a2)
    grad = np.array([0.0, -1 / (2 * a2), a1 / (2 * a2 * a2)])
    var_u = float(grad @ cov @ grad)
    return _finish("parabola", params, x, y, sigma, centre + u0 * scale, a0 - a1 * a1 / (4 * a2),
                   var_u * scale * scale, 3)


def _fit_hyperbola(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> ModelFit | None:
    u, centre, scale = _normalise(x)
    fitted = _hyperbola_lm(u, y, sigma)
    if fitted is None:
        return None
    (c, a, b), cov = fitted
    params = (centre + c * scale, a, b / scale)
    return _finish("hyperbola", params, x, y, sigma, params[0], a, cov[0, 0] * scale * scale, 3)


HYPERBOLA_CENTRE_BOUND = 20.0  # |c| in normalised units (half-widths of the sweep) a fit may wander to


def _hyperbola_lm(u: np.ndarray, y: np.ndarray, sigma: np.ndarray):
    """Weighted least squares of y = sqrt(a² + (b·(u − c))²): ((c, a, b), covariance) or None.

    Levenberg-Marquardt in numpy (scipy.optimize alone costs ~14 MB of RSS, issue 13), started from
    the lowest point with a slope from the data (curve_fit's start before), the parabola through y²
    (y² = a² + b²(u − c)² is linear in 1, u, u²), and the best centres of a grid (for a fixed c, y² is
    linear in a² and b²) inside and beyond each end of the sweep; the lowest χ² wins. The covariance
    is (JᵀJ)⁻¹ of the weighted residuals, errors taken as absolute (curve_fit's absolute_sigma=True).
    """
    i = int(np.argmin(y))
    b0 = max(float(np.max(np.abs(y - y.min()) / np.maximum(np.abs(u - u[i]), 1e-3))), 1e-3)
    starts = [(float(u[i]), float(y.min()) * 0.9, b0)]
    w = 1.0 / sigma**2
    (q0, q1, q2), _ = _wls(np.column_stack([np.ones_like(u), u, u * u]), y * y, w / np.maximum(4 * y * y, 1e-12))
    if q2 > 0:
        c = -q1 / (2 * q2)
        a2 = q0 - q1 * q1 / (4 * q2)
        if abs(c) < HYPERBOLA_CENTRE_BOUND and a2 > 0:
            starts.append((float(c), math.sqrt(a2), math.sqrt(q2)))
    starts += _hyperbola_grid(u, y, w)
    best = None
    for p0 in starts:
        p, chi2 = _lm(u, y, sigma, np.array(p0, dtype=float))
        if p is not None and (best is None or chi2 < best[1]):
            best = (p, chi2)
    if best is None:
        return None
    p = best[0]
    jac = _hyperbola_jacobian(u, p) / sigma[:, None]
    cov = np.linalg.pinv(jac.T @ jac)
    return (float(p[0]), float(p[1]), float(p[2])), cov


def _hyperbola_grid(u: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[tuple[float, float, float]]:
    """Starts (c, a, b) from a grid of centres, each with the linear fit of y² = a² + b²(u − c)²: the best
    inside the sweep and the best beyond each end (a curve still falling at an end has its minimum there)."""
    w2 = w / np.maximum(4 * y * y, 1e-12)  # σ(y²) = 2y·σ(y)
    outer = np.geomspace(1.6, HYPERBOLA_CENTRE_BOUND, 12)
    starts = []
    for zone in (-outer[::-1], np.linspace(-1.5, 1.5, 61), outer):
        best = None
        for c in zone:
            d2 = (u - c) ** 2
            (a2, b2), _ = _wls(np.column_stack([np.ones_like(u), d2]), y * y, w2)
            a, b = math.sqrt(max(a2, 1e-12)), math.sqrt(max(b2, 1e-12))
            chi2 = float(np.sum(w * (y - np.sqrt(a * a + b * b * d2)) ** 2))
            if best is None or chi2 < best[0]:
                best = (chi2, float(c), a, b)
        starts.append(best[1:])
    return starts


def _hyperbola(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(p[1] * p[1] + (p[2] * (u - p[0])) ** 2)


def _hyperbola_jacobian(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    c, a, b = p
    f = np.maximum(_hyperbola(u, p), 1e-300)
    d = u - c
    return np.column_stack([-b * b * d / f, a / f, b * d * d / f])


def _lm(u: np.ndarray, y: np.ndarray, sigma: np.ndarray, p: np.ndarray, iterations: int = 200):
    """Levenberg-Marquardt from ``p``: (parameters, χ²), or (None, inf) when it goes non-finite."""
    def chi2_of(q):
        return float(np.sum(((y - _hyperbola(u, q)) / sigma) ** 2))

    chi2, lam = chi2_of(p), 1e-3
    for _ in range(iterations):
        jac = _hyperbola_jacobian(u, p) / sigma[:, None]
        r = (y - _hyperbola(u, p)) / sigma
        jtj, jtr = jac.T @ jac, jac.T @ r
        improved = False
        while lam < 1e12:
            step = np.linalg.lstsq(jtj + lam * np.diag(np.maximum(np.diag(jtj), 1e-12)), jtr, rcond=None)[0]
            trial = p + step
            # the bounds curve_fit had: |c| <= 20 half-widths, a and b positive (the model has a², b²)
            trial[0] = min(max(trial[0], -HYPERBOLA_CENTRE_BOUND), HYPERBOLA_CENTRE_BOUND)
            trial[1], trial[2] = max(abs(trial[1]), 1e-6), max(abs(trial[2]), 1e-6)
            new = chi2_of(trial)
            if math.isfinite(new) and new <= chi2:
                done = chi2 - new <= 1e-12 * max(chi2, 1e-300) and np.all(np.abs(trial - p) <= 1e-10 * (np.abs(p) + 1e-10))
                p, chi2, lam, improved = trial, new, max(lam / 10, 1e-12), True
                if done:
                    return p, chi2
                break
            lam *= 10
        if not improved:
            break  # no step lowers χ²: at the minimum (to the precision of the arithmetic)
    if not (np.all(np.isfinite(p)) and math.isfinite(chi2)):
        return None, math.inf
    return p, chi2


def _fit_v(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> ModelFit | None:
    """Two weighted lines, falling then rising, meeting at the minimum.

    Every split of the sorted points into a left and a right group (two points or more each) is
    tried; the lines' intersection must fall between the groups. The split with the lowest χ² wins.
    """
    u, centre, scale = _normalise(x)
    w = 1.0 / sigma**2
    best = None
    for k in range(2, len(u) - 1):
        (al, bl), cov_l = _wls(np.column_stack([np.ones(k), u[:k]]), y[:k], w[:k])
        (ar, br), cov_r = _wls(np.column_stack([np.ones(len(u) - k), u[k:]]), y[k:], w[k:])
        if bl >= 0 or br <= 0:
            continue
        d = br - bl
        c = (al - ar) / d
        if not u[k - 1] <= c <= u[k]:
            continue
        h0 = al + bl * c
        chi2 = float(np.sum(w * (y - (h0 - bl * np.maximum(c - u, 0) + br * np.maximum(u - c, 0))) ** 2))
        # δ-method variance of the intersection from the two independent line fits
        var_c = float(np.array([1 / d, c / d]) @ cov_l @ np.array([1 / d, c / d])
                      + np.array([-1 / d, -c / d]) @ cov_r @ np.array([-1 / d, -c / d]))
        if best is None or chi2 < best[0]:
            best = (chi2, c, h0, -bl, br, var_c)
    if best is None:
        return None
    _, c, h0, left, right, var_c = best
    params = (centre + c * scale, h0, left / scale, right / scale)
    return _finish("v", params, x, y, sigma, params[0], h0, var_c * scale * scale, 4)


_FITTERS = {"parabola": _fit_parabola, "hyperbola": _fit_hyperbola, "v": _fit_v}
