"""What a node is busy with for a long while, what it waits for, and how long is left — from
whatever state fields it publishes (exposure, phase; cooling, night and calib from newer nodes).

Pure: a state payload and a few numbers in, a dict (or None) out. Shared by the dashboard and
`indisync status`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from . import timefmt

NIGHT_WAITS = {
    "waiting_dark": "waiting for dark",
    "cooling": "cooling the cameras",
    "slewing": "slewing to the target",
    "centering": "centring the target (plate solve)",
    "starting_guider": "starting the guider",
    "refocusing": "refocusing every node",
    "flipping": "meridian flip",
    "unsafe": "waiting for safe weather",
    "parking": "parking",
    "securing": "parking and closing before waiting for dark",
    "warming": "warming the cameras",
    "dusk_flats": "sky flats at dusk",
    "dawn_flats": "sky flats at dawn",
    "waiting_dawn": "waiting for dawn flats",
    "calibrating": "panel flats and darks, parked and closed",
}
CALIB_KINDS = {"flat": "flats", "dark": "darks", "bias": "bias"}


def _seconds(value: float) -> str:
    """2.1 s, 0.25 s, 300 s: as many digits as an exposure needs."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def calib_text(calib: dict | None) -> str | None:
    """A node's ``calib`` state in words: 'flats R 12/20 2.1 s 25,400 ADU (set 2/5)', 'panel flats L 3/20
    ...', 'darks 300 s 4/20', 'bias 7/20'. None when it takes no calibration."""
    if not isinstance(calib, dict) or calib.get("kind") not in CALIB_KINDS:
        return None
    kind = calib["kind"]
    parts = [("panel " if calib.get("mode") == "panel" and kind == "flat" else "") + CALIB_KINDS[kind]]
    if kind == "flat" and calib.get("filter"):
        parts.append(str(calib["filter"]))
    exposure = calib.get("exposure")
    if kind == "dark" and isinstance(exposure, (int, float)):
        parts.append(f"{_seconds(exposure)} s")
    parts.append(f"{calib.get('kept', '?')}/{calib.get('count', '?')}")
    if kind == "flat":
        if isinstance(exposure, (int, float)):
            parts.append(f"{_seconds(exposure)} s")
        if isinstance(calib.get("adu"), (int, float)):
            parts.append(f"{calib['adu']:,.0f} ADU")
    text = " ".join(parts)
    if calib.get("set") and calib.get("sets"):
        text += f" (set {calib['set']}/{calib['sets']})"
    return text


def _seconds_until(text, now: datetime) -> float | None:
    when = timefmt.parse(text) if isinstance(text, str) else None
    return None if when is None else max(0.0, (when - now).total_seconds())


def long_work(state: dict | None, exposure_progress: float | None = None, focus_points: int | None = None,
              now: datetime | None = None) -> dict | None:
    """{"what", "waits_for", "left_s"} of the longest thing the node is doing, or None when idle."""
    if not state:
        return None
    now = now or datetime.now(timezone.utc)
    calib = calib_text(state.get("calib"))
    if calib:  # the frames of a calibration set: the most specific thing a node can be doing
        return {"what": "calibration", "waits_for": calib, "left_s": None}
    cooling = state.get("cooling")
    if isinstance(cooling, dict) and cooling.get("setpoint") is not None and not cooling.get("reached"):
        temp = cooling.get("temperature")
        return {"what": "cooling",
                "waits_for": f"camera {temp if temp is not None else '?'} °C to reach {cooling['setpoint']} °C",
                "left_s": cooling.get("eta_s")}
    night = state.get("night")
    if isinstance(night, dict) and night.get("state") in NIGHT_WAITS:
        return {"what": night["state"], "waits_for": night.get("reason") or NIGHT_WAITS[night["state"]],
                "left_s": _seconds_until(night.get("until"), now)}
    phase = state.get("phase")
    exposure = state.get("exposure")
    if phase == "exposing" and isinstance(exposure, dict) and exposure.get("duration"):
        progress = exposure_progress if exposure_progress is not None else exposure.get("progress") or 0.0
        return {"what": "exposing", "waits_for": f"{exposure.get('filter') or 'frame'} {exposure['duration']:g} s",
                "left_s": round(max(0.0, exposure["duration"] * (1.0 - progress)), 1)}
    if phase == "focusing":
        points = f", {focus_points} point(s) so far" if focus_points else ""
        return {"what": "autofocus", "waits_for": f"V-curve sweep{points}", "left_s": None}
    if phase == "dithering":
        return {"what": "dithering", "waits_for": "the guide star to settle", "left_s": None}
    if phase == "waiting":
        return {"what": "waiting", "waits_for": "the other nodes' exposures, or the guide star", "left_s": None}
    return None


def describe(work: dict | None) -> str:
    if not work:
        return "-"
    left = work.get("left_s")
    tail = f", {left:.0f} s left" if isinstance(left, (int, float)) else ""
    return f"{work['what']}: {work['waits_for']}{tail}"
