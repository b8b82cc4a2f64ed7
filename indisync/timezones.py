"""The site's time zone: an IANA name read with ``zoneinfo``, or this computer's zone.

``astimezone()`` without an argument gives one fixed UTC offset (the one in force at that moment),
so "05:30 tomorrow" computed from this evening's offset is an hour off when the clocks change
overnight. A ``ZoneInfo`` knows every transition: the wall-clock time is turned into UTC with the
offset of that very moment.

The computer's zone, found without the C library (whose answer is only a fixed offset): ``TZ`` if it
names an IANA zone (``Europe/Berlin``, ``:Europe/Berlin`` or a path into a zoneinfo folder), else the
zone ``/etc/localtime`` links to, else ``/etc/timezone`` (Debian), else the contents of
``/etc/localtime`` itself, else UTC with a logged note. Pure: stdlib only, no other indisync import
(the guard and the record package use it without pulling in the night).

Zone data: the system's ``/usr/share/zoneinfo`` (Debian's ``tzdata``), else the ``tzdata`` Python
package, which is a dependency for the systems that lack the first.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

EXAMPLE = '"Europe/Berlin" (the names: `timedatectl list-timezones`)'
LOCALTIME = "/etc/localtime"
TIMEZONE_FILE = "/etc/timezone"


def zone_named(name: str) -> ZoneInfo:
    """``ZoneInfo(name)``; ValueError with a sentence saying what is allowed when it is unknown."""
    text = name.strip() if isinstance(name, str) else name
    if not isinstance(text, str) or not text:
        raise ValueError(f"got {name!r}; allowed: an IANA time zone name such as {EXAMPLE}, or null for "
                         "this computer's zone")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}; allowed: an IANA name such as {EXAMPLE}, or null for "
                         "this computer's zone (is the tzdata package installed?)") from None


def _key_from_path(path: str) -> str | None:
    """'/usr/share/zoneinfo/Europe/Berlin' -> 'Europe/Berlin' (also posix/ and right/ trees)."""
    marker = "zoneinfo/"
    at = path.rfind(marker)
    if at < 0:
        return None
    key = path[at + len(marker):]
    for prefix in ("posix/", "right/"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key or None


def _try_key(key: str | None) -> ZoneInfo | None:
    if not key:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def computer_zone(environ: Mapping[str, str] | None = None, localtime: str = LOCALTIME,
                  timezone_file: str = TIMEZONE_FILE) -> tuple[tzinfo, str | None]:
    """(this computer's zone, a note when it had to guess). Arguments for tests; defaults: the machine."""
    environ = os.environ if environ is None else environ
    notes = []
    tz = environ.get("TZ")
    if tz is not None:
        name = tz[1:] if tz.startswith(":") else tz
        if name in ("", "UTC", "UTC0", "Etc/UTC"):
            return _try_key("Etc/UTC") or timezone.utc, None
        found = _try_key(_key_from_path(name) if name.startswith("/") else name)
        if found is None and name.startswith("/"):
            try:
                with open(name, "rb") as handle:
                    found = ZoneInfo.from_file(handle, key=name)
            except (OSError, ValueError):
                found = None
        if found is not None:
            return found, None
        notes.append(f"TZ={tz!r} is not an IANA zone name (ignored)")
    found = None
    try:
        found = _try_key(_key_from_path(os.readlink(localtime)))
    except OSError:
        pass
    if found is None:
        try:
            found = _try_key(Path(timezone_file).read_text().strip())
        except OSError:
            pass
    if found is None:
        try:
            with open(localtime, "rb") as handle:
                found = ZoneInfo.from_file(handle, key="localtime")
        except (OSError, ValueError):
            pass
    if found is not None:
        note = None if not notes else f"{notes[0]}: this computer's zone is taken as {zone_name(found)}; " \
                                      f"set site.timezone, e.g. {EXAMPLE}"
        return found, note
    notes.append(f"no zone in {localtime} or {timezone_file}")
    return timezone.utc, (f"this computer's time zone is unknown ({'; '.join(notes)}): UTC is used for "
                          f"night.end_at \"HH:MM\" and the night log's date; set site.timezone, e.g. {EXAMPLE}")


@lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """This computer's zone (looked up once; the note, if any, logged once)."""
    zone, note = computer_zone()
    if note:
        log.warning("%s", note)
    return zone


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def site_zone(cfg) -> tzinfo:
    """The zone of a config's site: ``site.timezone``, else (no site: either) the computer's."""
    site = getattr(cfg, "site", None)
    name = getattr(site, "timezone", None) if site is not None else None
    return zone_named(name) if name else local_zone()


def local_clock_time(zone: tzinfo, hour: int, minute: int, after: datetime) -> datetime:
    """The first moment after ``after`` (aware) at which the clock in ``zone`` reads ``hour:minute``,
    as an aware UTC datetime.

    Wall-clock arithmetic with the offset of that moment, so a night that spans a change of the
    clocks ends at the right hour. A time the clocks skip (02:30 when 02:00 jumps to 03:00) is
    the moment of the jump; a time they show twice (autumn) is its first occurrence.
    """
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    day = after.astimezone(zone).date()
    for offset_days in (0, 1, 2):
        candidate = _wall_to_utc(zone, day + timedelta(days=offset_days), time(hour, minute))
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a wall-clock time recurs within two days")


def _wall_to_utc(zone: tzinfo, day: date, wall: time) -> datetime:
    first = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the first occurrence when shown twice
    utc = first.astimezone(timezone.utc)
    if utc.astimezone(zone).replace(tzinfo=None) == first.replace(tzinfo=None):
        return utc
    # Skipped by the clocks: the first instant at which the clock reads ``wall`` or later, i.e. the
    # jump. ``zoneinfo`` does not expose its transitions: bisect, in whole seconds (as transitions
    # are), between the two readings of the gap.
    target = first.replace(tzinfo=None)
    low, high = sorted((int(first.replace(fold=1).astimezone(timezone.utc).timestamp()), int(utc.timestamp())))
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= target:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, timezone.utc)
