"""What an autofocus run leaves behind: a V-curve PNG a person can judge at a glance, and a JSON
record with every number that went into the decision (points, each model's figures, the verdict)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .fit import FitOutcome, ModelFit
from .settings import FocusSettings


def run_basename(result, prefix: str = "focus") -> str:
    """focus[_<node>][_<filter>]_YYYYmmddTHHMMSSmmm: sortable, unique per run, safe as a file name."""
    try:
        t = datetime.fromisoformat(result.started)
        stamp = t.strftime("%Y%m%dT%H%M%S") + f"{t.microsecond // 1000:03d}"
    except (TypeError, ValueError):
        stamp = "unknown"
    parts = [prefix] + [str(result.metadata[k]) for k in ("node", "filter") if result.metadata.get(k)]
    name = "_".join(parts + [stamp])
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def save_run(result, settings: FocusSettings, directory: str | Path | None = None) -> tuple[str, str]:
    """Write <basename>.png and <basename>.json into ``directory`` (default settings.output_dir)."""
    out = Path(directory or settings.output_dir or ".")
    out.mkdir(parents=True, exist_ok=True)
    base = out / run_basename(result)
    png, js = base.with_suffix(".png"), base.with_suffix(".json")
    plot_vcurve(result, png, settings)
    record = run_record(result, settings)
    record["plot"] = str(png)
    js.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    return str(png), str(js)


def run_record(result, settings: FocusSettings) -> dict[str, Any]:
    """Everything about a run as plain JSON-able data."""
    fit: FitOutcome | None = result.fit
    return {
        **result.summary(),
        "started": result.started,
        "duration": round(result.duration, 3),
        "predicted_hfr": result.predicted_hfr,
        "sigma_position": result.sigma_position,
        "extensions": result.extensions,
        "restored": result.restored,
        "metadata": result.metadata,
        "sweep": [_point(p) for p in result.points],
        "check": _point(result.check) if result.check else None,
        "fit": None if fit is None else {
            "chosen": fit.best.model if fit.best else None,
            "reason": fit.reason,
            "rejected_outlier": _point(fit.rejected) if fit.rejected else None,
            "p_line_vs_constant": fit.p_line_vs_constant,
            "models": [_model(m) for m in fit.fits],
        },
        "settings": dataclasses.asdict(settings),
    }


def _point(p) -> dict[str, Any]:
    return {"position": p.position, "hfr": p.hfr, "spread": p.spread, "stars": p.stars}


def _model(m: ModelFit) -> dict[str, Any]:
    d = dataclasses.asdict(m)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def plot_vcurve(result, path: str | Path, settings: FocusSettings | None = None) -> None:
    """Points with error bars, the chosen fit (others dashed), the chosen and start positions (Pillow)."""
    from .fit import point_errors
    from .plot import draw_vcurve

    fit_settings = (settings or FocusSettings()).fit
    usable = [p for p in result.points if p.usable]
    errors = [float(e) for e in point_errors(usable, fit_settings)] if usable else []
    draw_vcurve(result, path, errors)
