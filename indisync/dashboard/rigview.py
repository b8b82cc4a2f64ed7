"""What the page shows of the rig as a whole: the night line, and "is my rig safe right now?"
(weather, mount, dome, the guard) from the master's ``rig`` state and the guard's ``guard_state``;
and each node's calibration (the set under way, its last frame, the sets done).

Pure: cleaned payloads, ``now`` and a zone in, plain dicts of text out (the page only lays them
out, so what a person reads is tested here).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from ..calib.model import DarkSet, FlatSet
from ..record.calibration import adu_range, exposure_range
from .timefmt import moment

NIGHT_LABELS = {
    "waiting_dark": "waiting for dark",
    "cooling": "cooling the cameras",
    "slewing": "slewing to the target",
    "centering": "centring on the target (plate solve)",
    "starting_guider": "starting the guider",
    "imaging": "imaging",
    "dithering": "dithering",
    "refocusing": "refocusing every node",
    "flipping": "meridian flip",
    "securing": "parking and closing before waiting for dark",
    "unsafe": "unsafe: aborting, parking and closing",
    "parked": "parked for the weather",
    "parking": "parking",
    "warming": "warming the cameras",
    "done": "night done",
    "dusk_flats": "sky flats at dusk",
    "dawn_flats": "sky flats at dawn",
    "waiting_dawn": "waiting for dawn flats",
    "calibrating": "calibrating: panel flats and darks, parked and closed",
}
# what the night's "until" means in each state (indisync.night.machine._until)
UNTIL_LABELS = {
    "waiting_dark": "imaging may start",
    "parked": "resumes if it stays safe",
    "dusk_flats": "flats end", "dawn_flats": "flats end",
    "waiting_dawn": "dawn flats may start",
    **{s: "window ends" for s in ("imaging", "dithering", "refocusing", "starting_guider", "centering", "slewing",
                                  "flipping")},
}
GUARD_LABELS = {
    "armed": "armed (watching)",
    "acting": "ACTING: parking and closing",
    "acted": "acted: parked and closed the rig",
    "blind": "BLIND: cannot read its devices",
}


def night_view(night: dict | None, now: datetime, tz: tzinfo) -> dict | None:
    """The night line: state in words, why, since when, and what its next time means."""
    if not night or not night.get("state"):
        return None
    state = night["state"]
    since, until = moment(night.get("since"), now, tz), moment(night.get("until"), now, tz)
    until_label = UNTIL_LABELS.get(state, "deadline")
    parts = [NIGHT_LABELS.get(state, state.replace("_", " "))]
    reason = night.get("reason")
    if reason and reason.strip().lower() not in (state.replace("_", " "), parts[0].lower()):  # no "parked — parked"
        parts[0] += f" — {reason}"
    if since:
        parts.append(f"since {since['text']}")
    if until:
        parts.append(f"{until_label} {until['text']}")
    return {"state": state, "label": NIGHT_LABELS.get(state, state), "reason": night.get("reason"),
            "since": since, "until": until, "until_label": until_label, "line": " · ".join(parts)}


def _deg(value, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f}°"


def weather_view(weather: dict | None, now: datetime, tz: tzinfo) -> dict:
    if weather is None:
        return {"safe": None, "text": "no weather station configured (indi.weather)"}
    safe = weather.get("safe")
    since = moment(weather.get("since"), now, tz)
    word = {True: "safe", False: "UNSAFE", None: "unknown"}[safe]
    detail = f" — {weather['detail']}" if weather.get("detail") else ""
    return {"safe": safe, "since": since, "detail": weather.get("detail"),
            "text": f"{word}{detail}" + (f" · since {since['text']}" if since else "")}


def mount_view(mount: dict | None) -> dict:
    if mount is None:
        return {"parked": None, "text": "no mount"}
    parked, tracking, slewing = mount.get("parked"), mount.get("tracking"), mount.get("slewing")
    if slewing:
        motion = "moving (slewing or parking)"
    elif parked:
        motion = "parked"
    elif tracking:
        motion = "tracking"
    elif parked is False:
        motion = "unparked, not tracking" if tracking is False else "unparked"
    else:
        motion = "state unknown"
    parts = [motion]
    if mount.get("pier_side"):
        parts.append(f"pier side {mount['pier_side']}")
    if mount.get("ra_deg") is not None or mount.get("dec_deg") is not None:
        ra = mount.get("ra_deg")
        hours = "" if ra is None else f" ({_hms(ra / 15.0)})"
        parts.append(f"RA {_deg(ra, 2)}{hours} Dec {_deg(mount.get('dec_deg'), 2)} (JNow)")
    if mount.get("alt_deg") is not None:
        parts.append(f"alt {_deg(mount['alt_deg'])} az {_deg(mount.get('az_deg'))}")
    return {"parked": parked, "tracking": tracking, "slewing": slewing, "pier_side": mount.get("pier_side"),
            "text": " · ".join(parts)}


def _hms(hours: float) -> str:
    total = round(hours * 3600) % 86400
    return f"{total // 3600:02d}h{total // 60 % 60:02d}m{total % 60:02d}s"


def dome_view(dome: dict | None) -> dict:
    if dome is None:
        return {"shutter": None, "text": "no dome"}
    shutter = dome.get("shutter") or "unknown"
    parked = dome.get("parked")
    text = f"shutter {shutter}" + ({True: " · parked", False: " · not parked"}.get(parked, ""))
    return {"shutter": shutter, "parked": parked, "text": text}


GUARD_STALE_S = 20.0  # the guard publishes its state every ~5 s: older than this, it is not speaking


def guard_view(name: str, status: str | None, state: dict, problem: str | None, now: datetime, tz: tzinfo,
               age_s: float | None = None) -> dict:
    g = state or {}
    gstate = g.get("state")
    since = moment(g.get("since"), now, tz)
    online = status != "offline" and status is not None
    if not online:
        text = "OFFLINE: nothing watches the rig independently" if status == "offline" else "no status yet"
    elif gstate is None:
        text = "online, no state yet"
    else:
        text = GUARD_LABELS.get(gstate, gstate) + (f" — {g['reason']}" if g.get("reason") else "")
        if since:
            text += f" · since {since['text']}"
        if age_s is not None and age_s > GUARD_STALE_S:
            text += f" (its last state is {age_s:.0f} s old: hung?)"
    last = g.get("last_action") if isinstance(g.get("last_action"), dict) else None
    last_text = None
    if last:
        at = moment(last.get("at"), now, tz)
        outcome = []
        if last.get("parked") is not None:
            outcome.append("parked" if last["parked"] else "NOT parked")
        if last.get("closed") is not None:
            outcome.append("closed" if last["closed"] else "NOT closed")
        last_text = (f"last acted {at['text'] if at else '?'}: {last.get('why') or 'no reason given'}"
                     + (f" ({', '.join(outcome)})" if outcome else ""))
    return {"name": name, "online": online, "state": gstate if online else "offline", "rig_safe": g.get("rig_safe"),
            "unsafe": g.get("unsafe"), "since": since, "text": text, "last_action": last_text, "problem": problem,
            "stale": bool(online and age_s is not None and age_s > GUARD_STALE_S)}


def verdict(weather: dict, mount: dict, dome: dict, guards: list[dict], have_rig: bool) -> dict:
    """The one line at the top: "ok" (green), "warn" (amber: something unknown or moving),
    "alarm" (red: bad weather with the mount out or the dome open, or a guard acting or blind)."""
    if any(g["state"] in ("acting", "blind") for g in guards):
        g = next(g for g in guards if g["state"] in ("acting", "blind"))
        return {"level": "alarm", "text": f"guard {g['name']}: {g['text']}"}
    if not have_rig:
        if guards and all(g["rig_safe"] is True for g in guards):
            return {"level": "ok", "text": "the guard says the rig is safe (no master state)"}
        return {"level": "warn", "text": "no rig state from the master yet"}
    out = [what for what, bad in (("mount not parked", mount.get("parked") is False),
                                  ("dome open", dome.get("shutter") == "open")) if bad]
    moving = [what for what, bad in (("dome moving", dome.get("shutter") == "moving"),
                                     ("mount moving", bool(mount.get("slewing")))) if bad]
    if weather.get("safe") is False:
        if out:
            return {"level": "alarm", "text": "NOT SAFE: bad weather and " + ", ".join(out + moving)}
        if moving:  # parked and closed, a dome turning to its park (it may close its shutter again): amber
            return {"level": "warn", "text": "bad weather; closing up (" + ", ".join(moving) + ")"}
        if mount.get("parked") is None and mount.get("text") != "no mount":
            return {"level": "warn", "text": "bad weather; the mount's park state is unknown"}
        return {"level": "ok", "text": "closed up for the weather"}
    if weather.get("safe") is None and weather.get("text", "").startswith("no weather station"):
        return {"level": "warn" if out or moving else "ok",
                "text": "no weather station: nothing tells this rig it rains"
                + (f" ({', '.join(out + moving)})" if out or moving else "")}
    if weather.get("safe") is None:
        return {"level": "warn", "text": "weather unknown"}
    offline = [g["name"] for g in guards if not g["online"] or g.get("stale")]
    if offline:
        return {"level": "warn", "text": f"weather safe; guard {', '.join(offline)} offline or silent"}
    return {"level": "ok", "text": "weather safe" + (f" ({', '.join(out + moving)})" if out or moving else "")}


# ---- calibration, per node ---------------------------------------------------------------------
def calib_view(calib: dict | None, text: str | None, last_frame: dict | None) -> dict | None:
    """The set under way: its words (progress.calib_text), kept of count for the bar, the last frame."""
    if not calib or not text:
        return None
    kept, count = calib.get("kept"), calib.get("count")
    fraction = min(1.0, kept / count) if isinstance(kept, int) and isinstance(count, int) and count > 0 else None
    return {"kind": calib.get("kind"), "text": text, "progress": fraction,
            "last_frame": last_frame.get("text") if last_frame else None}


def calib_frame_view(p: dict) -> dict:
    """A calib_progress event (one frame) in words: 'kept 2.10 s 25,400 ADU', 'discarded 0.50 s 40,000 ADU:
    above the band'."""
    parts = [p.get("frame") or "frame"]
    if p.get("exposure") is not None:
        parts.append(exposure_range(p["exposure"], p["exposure"]))
    if p.get("adu") is not None:
        parts.append(adu_range(p["adu"], p["adu"]))
    text = " ".join(parts) + (f": {p['reason']}" if p.get("reason") else "")
    return {"frame": p.get("frame"), "adu": p.get("adu"), "exposure": p.get("exposure"), "text": text}


def calib_set_view(p: dict) -> dict:
    """A calib_set_done event in words: 'flats R bin1 ok: 20/20 kept of 26 taken, 1.20–3.40 s, 24,100–27,800 ADU',
    'dark 300 s bin1 skipped: a matching set 3.2 days old is kept'."""
    kind = p.get("kind")
    binning = p.get("binning") or 1
    if kind == "flat":
        label = "flats " + FlatSet.make(p.get("filter"), binning, p.get("rotator_angle"), p.get("gain"),
                                        p.get("offset")).label()
    elif kind in ("dark", "bias"):
        label = DarkSet.make(kind, p.get("exposure") or 0.0, binning, p.get("gain"), p.get("offset")).label()
    else:
        label = "calibration set"
    status = p.get("status") or "?"
    details = []
    if p.get("kept") is not None:
        details.append(f"{p['kept']}/{p.get('count', '?')} kept" + (f" of {p['taken']} taken"
                                                                    if p.get("taken") is not None else ""))
    if kind == "flat" and (p.get("exposure_min") is not None or p.get("exposure_max") is not None):
        details.append(exposure_range(p.get("exposure_min"), p.get("exposure_max")))
    if kind == "flat" and (p.get("adu_min") is not None or p.get("adu_max") is not None):
        details.append(adu_range(p.get("adu_min"), p.get("adu_max")))
    if kind != "flat" and p.get("temperature") is not None:
        details.append(f"at {p['temperature']:.1f} °C")
    if p.get("reason"):
        details.append(p["reason"])
    text = f"{label} {status}" + (f": {', '.join(details)}" if details else "")
    return {"kind": kind, "status": status, "text": text,
            "level": "ok" if status in ("ok", "taken", "skipped") else "warn" if status in ("partial", "waiting",
                                                                                          "stopped") else "bad"}
