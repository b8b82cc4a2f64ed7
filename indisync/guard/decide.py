"""The guard's one decision, pure: what it saw (a ``Reading``), its ``Limits`` and what it remembers
(a ``Memory``) -> what to do now (a ``Decision``). Time is an argument (``Reading.now``, seconds on a
monotonic clock), never read here; no PyIndi, no paho, no astropy.

The rules (issue 20):

- the conditions call for a closed rig: unsafe weather (WEATHER_STATUS Alert), stale weather data
  (nothing for safety.stale_after s), the weather device gone, or the sun above ``sun_limit_deg``;
  or the master gone (offline, or no heartbeat for mqtt.dead_after) with the night's window over
  (the sun above the night's end altitude, or night.end_at passed);
- and the rig is out: the mount not parked or the dome not closed (unknown counts as out: a rig
  the guard cannot read is not known to be safe);
- both holding for ``grace`` s (the master's own park comes first) -> act: abort the exposures,
  park, close, alarm; then keep acting (retrying) until the rig reads safe, or the conditions clear.

The guard never unparks or opens: a Decision can only ask for the rig to be made safe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo

STATES = ("armed", "acting", "acted", "blind")


@dataclass(frozen=True)
class Limits:
    grace: float  # s that the conditions and an out rig must hold before the guard acts
    stale_after: float  # s without a weather update before the weather counts as unsafe
    sun_limit_deg: float  # the sun above this is unsafe by itself
    window_end_sun_deg: float  # the night's window is over with the sun above this (master-gone rule)


@dataclass(frozen=True)
class WeatherReading:
    status: str | None  # "ok", "busy" (a warning, not unsafe), "alert"; None: no data (the device is gone)
    age_s: float | None  # since the station's last update; None: never heard
    detail: str | None = None  # which lights are in Alert, or why there is no data


@dataclass(frozen=True)
class MountReading:
    parked: bool | None  # True: parked and still; False: out (or its park under way); None: unknown
    parking: bool = False  # a park is under way (TELESCOPE_PARK says PARK, Busy)


@dataclass(frozen=True)
class DomeReading:
    closed: bool | None  # True: shutter closed and still; False: open (or moving); None: unknown
    closing: bool = False  # a close is under way (DOME_SHUTTER says CLOSE, Busy)


@dataclass(frozen=True)
class Reading:
    now: float  # seconds, monotonic
    weather: WeatherReading | None = None  # None: no weather device configured (indi.weather null)
    mount: MountReading | None = None  # None: no mount configured
    dome: DomeReading | None = None  # None: no dome configured
    sun_alt_deg: float | None = None  # None: unknown (no site known)
    master_online: bool | None = None  # None: not known yet (just started)
    master: str | None = None  # the master's name, for the reasons
    end_at_passed: bool = False  # night.end_at is behind us (see ``end_at_passed``)
    blind: str | None = None  # what the guard cannot read (its indiserver gone, a device missing)


@dataclass(frozen=True)
class Memory:
    since: float | None = None  # when "conditions unsafe and rig out" began (Reading.now)
    acting: bool = False  # acting now: retrying until safe
    acted_at: float | None = None  # when the rig read safe after acting (cleared once conditions clear)


@dataclass(frozen=True)
class Decision:
    state: str  # one of STATES
    reason: str | None  # why acting/acted/blind
    unsafe: bool  # the conditions call for a closed rig now
    conditions: tuple[str, ...]  # each unsafe condition, in words
    out: tuple[str, ...]  # what of the rig is out ("the mount unparked", "the dome open")
    rig_safe: bool | None  # mount parked (or none) and dome closed (or none); None: unknown
    act: bool  # make the rig safe now (abort, park, close), retrying
    started: bool  # acting began with this decision: raise the alarm
    memory: Memory


def conditions(r: Reading, limits: Limits) -> list[str]:
    """The unsafe conditions in words; [] when none holds."""
    found = []
    w = r.weather
    if w is not None:
        if w.status is None:
            found.append(f"the weather device is gone ({w.detail})" if w.detail else "the weather device is gone")
        elif w.age_s is None or w.age_s > limits.stale_after:
            age = "ever" if w.age_s is None else f"{w.age_s:.0f} s"
            found.append(f"no weather data for {age} (safety.stale_after {limits.stale_after:g} s)")
        elif w.status == "alert":
            found.append(f"weather unsafe ({w.detail or 'WEATHER_STATUS Alert'})")
    if r.sun_alt_deg is not None and r.sun_alt_deg > limits.sun_limit_deg:
        found.append(f"the sun at {r.sun_alt_deg:+.1f}° (above {limits.sun_limit_deg:g}°)")
    if r.master_online is False:
        over = []
        if r.sun_alt_deg is not None and r.sun_alt_deg > limits.window_end_sun_deg:
            over.append(f"the sun above the night's end altitude {limits.window_end_sun_deg:g}°")
        if r.end_at_passed:
            over.append("night.end_at passed")
        if over:
            who = f"the master {r.master}" if r.master else "the master"
            found.append(f"{who} is gone (no heartbeat) and the night's window is over ({', '.join(over)})")
    return found


def weather_safe(w: WeatherReading, limits: Limits) -> bool | None:
    """The weather alone: True safe, False unsafe (Alert, or stale), None no data (the device gone)."""
    if w.status is None:
        return None
    if w.age_s is None or w.age_s > limits.stale_after:
        return False
    return w.status != "alert"


def rig_out(r: Reading) -> list[str]:
    """What of the rig is not known to be safe, in words."""
    out = []
    if r.mount is not None and r.mount.parked is not True:
        out.append("the mount parking" if r.mount.parking else
                   "the mount unparked" if r.mount.parked is False else "the mount's park unknown")
    if r.dome is not None and r.dome.closed is not True:
        out.append("the dome closing" if r.dome.closing else
                   "the dome open" if r.dome.closed is False else "the dome's shutter unknown")
    return out


def rig_safe(r: Reading) -> bool | None:
    """True: every configured part reads safe; False: one reads out; None: none out but one unknown."""
    parts = []
    if r.mount is not None:
        parts.append(r.mount.parked if not r.mount.parking else False)
    if r.dome is not None:
        parts.append(r.dome.closed if not r.dome.closing else False)
    if any(p is False for p in parts):
        return False
    if any(p is None for p in parts):
        return None
    return True


def decide(r: Reading, limits: Limits, memory: Memory = Memory()) -> Decision:
    found = conditions(r, limits)
    out = rig_out(r)
    safe = rig_safe(r)
    unsafe = bool(found)
    since = (memory.since if memory.since is not None else r.now) if unsafe and out else None
    held = 0.0 if since is None else r.now - since
    acting, acted_at, started = memory.acting, memory.acted_at, False
    if acting:
        if safe is True:
            acting, acted_at = False, r.now  # done: parked and closed, read back
        elif not unsafe:
            acting = False  # the conditions cleared before the rig read safe: nothing calls for it now
    elif unsafe and out and held >= limits.grace:
        acting, started = True, True
    if not unsafe:
        acted_at = None  # the episode is over: armed again (last_action keeps what was done)
    if acting:
        state = "acting"
        reason = f"{'; '.join(found)}; and {' and '.join(out) or 'the rig out'}"
        if since is not None:
            reason += f" for {held:.0f} s"
    elif acted_at is not None:
        state, reason = "acted", f"{'; '.join(found)}: parked and closed by the guard"
    elif r.blind:
        state, reason = "blind", r.blind
    else:
        state, reason = "armed", None
    new_memory = dataclasses.replace(memory, since=since, acting=acting, acted_at=acted_at)
    return Decision(state, reason, unsafe, tuple(found), tuple(out), safe, acting, started, new_memory)


# ---- night.end_at, without the night's package ---------------------------------------------------
def end_at_passed(text: str | None, now: datetime, tz: tzinfo | None = None) -> bool:
    """Whether ``night.end_at`` is behind ``now`` (an aware datetime).

    An ISO-8601 time: ``now`` at or after it. "HH:MM" (local time in ``tz``, this computer's zone
    when None): from HH:MM until the next local noon (the next night's window begins after noon), so
    "05:30" is passed from 05:30 to 12:00 and "23:00" from 23:00 to 12:00 the next day. Malformed
    text (the config has checked it): False.
    """
    if not text:
        return False
    text = text.strip()
    if len(text) <= 5 and ":" in text:
        try:
            hour, minute = (int(part) for part in text.split(":"))
        except ValueError:
            return False
        local = now.astimezone(tz)
        end = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
        if end < noon:  # a morning end: passed between it and noon
            return end <= local < noon
        return local >= end or local < noon  # an evening end: passed from it over midnight until noon
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # naive means UTC, as the night reads it
    return now >= when
