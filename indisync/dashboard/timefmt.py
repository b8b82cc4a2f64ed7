"""Times as a person at the rig reads them: the site's local clock ("21:04", "Sat 05 Dec 05:25")
with how far away it is ("in 12 min", "3 min ago").

The zone is the site's (``site.timezone``, an IANA name the master publishes in its rig state, or
the dashboard's own config), else this computer's. Pure: a time, ``now`` and a zone in, text out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone, tzinfo

log = logging.getLogger(__name__)

_bad_zones: set[str] = set()  # logged once each


def zone(name: str | None) -> tuple[tzinfo, str]:
    """(the zone, its label) for an IANA name; this computer's zone when ``name`` is None or unknown
    (an unknown name is logged once)."""
    if name:
        from ..timezones import zone_named

        try:
            return zone_named(name), name
        except ValueError:
            if name not in _bad_zones:
                _bad_zones.add(name)
                log.warning("unknown time zone %r (site.timezone): showing this computer's local time; "
                            "use an IANA name such as Europe/Berlin", name)
    from ..timezones import local_zone, zone_name

    local = local_zone()
    return local, f"{zone_name(local)} (this computer's zone)"


def parse(value) -> datetime | None:
    """An ISO-8601 text (naive: UTC) or POSIX seconds -> an aware datetime; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def relative(seconds: float) -> str:
    """+720 -> "in 12 min", -180 -> "3 min ago", under 45 s either way -> "now"."""
    ahead = seconds >= 0
    s = abs(seconds)
    if s < 45:
        return "now"
    if s < 90 * 60:
        span = f"{max(1, round(s / 60))} min"
    elif s < 36 * 3600:
        hours, minutes = divmod(round(s / 60), 60)
        span = f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    else:
        span = f"{round(s / 86400)} d"
    return f"in {span}" if ahead else f"{span} ago"


def clock(when: datetime, now: datetime, tz: tzinfo) -> str:
    """The local clock time; with the weekday and date when it is not today (local)."""
    local, today = when.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if abs(local - today) < timedelta(days=6):
        return local.strftime("%a %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def moment(value, now: datetime, tz: tzinfo) -> dict | None:
    """{"iso", "local", "rel", "text"} of a time (ISO text or POSIX seconds); None when it is not one."""
    when = parse(value)
    if when is None:
        return None
    local, rel = clock(when, now, tz), relative((when - now).total_seconds())
    return {"iso": when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "local": local, "rel": rel, "text": f"{local} ({rel})"}
