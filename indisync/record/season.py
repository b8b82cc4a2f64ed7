"""The night report's "Season" section: every season target imaged tonight, per OTA and filter —
frames taken tonight, and accepted / rejected so far against the plan's desired count — read from
the master's season database (``{storage.directory}/indisync.db``, indisync.season.store).

Tonight's frames are the database's rows whose ``taken_at`` falls inside the night (its date at
``record.night_starts_hour`` on the site's clock to the next day's): the database knows each frame's
target, the night log does not. A database that cannot be read is one line in the report, never a
lost report; no database (or no ``scheduler:`` section) and the section is absent.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path

from ..dashboard.seasonview import count_row, node_groups
from ..season.model import ACCEPTED, REJECTED

log = logging.getLogger(__name__)


def season_db(cfg) -> Path | None:
    """The master's season database when the config has a scheduler: section; None: no season."""
    if getattr(cfg, "scheduler", None) is None:
        return None
    from ..season.store import db_path

    return db_path(cfg)


def night_bounds(night: str, zone: tzinfo, starts_hour: int = 12) -> tuple[datetime, datetime] | None:
    """The night named by its date (YYYY-MM-DD): from ``starts_hour`` that day to ``starts_hour`` the
    next day on the site's clock, as UTC; None when ``night`` is not a date."""
    try:
        day = date.fromisoformat(night)
    except (TypeError, ValueError):
        return None
    start = datetime.combine(day, time(starts_hour), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(starts_hour), tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def season_section(db: str | Path | None, start: datetime, end: datetime) -> dict | None:
    """The section's data; None when there is no database (``db`` None: no scheduler:, or no file).
    Never raises: a database that cannot be read gives {"db", "error"}."""
    if db is None:
        return None
    path = Path(db)
    if not path.exists():
        return None
    try:
        return _read(path, start, end)
    except Exception as exc:  # noqa: BLE001 - the report is written without it, and says why
        log.warning("night report: the season database %s could not be read: %s", path, exc)
        return {"db": str(path), "error": f"{type(exc).__name__}: {exc}"[:500], "targets": []}


def _read(path: Path, start: datetime, end: datetime) -> dict:
    from ..season.store import SeasonStore  # sqlite3 only; loaded when a report needs it

    t0, t1 = start.timestamp(), end.timestamp()
    with SeasonStore(path, create=False) as store:
        tonight = [f for f in store.frames() if t0 <= f.taken_at < t1]
        names = sorted({f.target for f in tonight})
        targets = []
        for name in names:
            mine = [f for f in tonight if f.target == name]
            target = store.target(name)
            progress = store.progress(target).to_dict() if target is not None else {}
            targets.append(_target_entry(name, target, progress, mine))
        known = len(store.targets())
    return {"db": str(path), "error": None, "night_start": _iso(start), "night_end": _iso(end),
            "targets_in_db": known, "targets": targets}


def _target_entry(name: str, target, progress: dict, frames: list) -> dict:
    taken: dict[tuple[str, str], dict[str, int]] = {}
    for f in frames:
        key = (f.node, f.filter or "none")
        n = taken.setdefault(key, {"tonight": 0, "tonight_accepted": 0, "tonight_rejected": 0})
        n["tonight"] += 1
        n["tonight_accepted"] += f.grade == ACCEPTED and not f.surplus
        n["tonight_rejected"] += f.grade == REJECTED
    rows = []
    seen = set()
    for node, by_filter in sorted(progress.items()):
        for filter_name, counts in by_filter.items():
            seen.add((node, filter_name))
            rows.append({**count_row(node, filter_name, counts), **_tonight(taken, node, filter_name)})
    for node, filter_name in sorted(set(taken) - seen):  # a removed target, or a frame the progress did not list
        rows.append({**count_row(node, filter_name, {}), **_tonight(taken, node, filter_name)})
    groups = node_groups(rows)
    return {"name": name, "project": getattr(target, "project", None), "in_db": target is not None,
            "complete": bool(rows) and all(g["complete"] for g in groups if g["desired"]) and target is not None,
            "frames_tonight": len(frames), "rows": rows}


def _tonight(taken: dict, node: str, filter_name: str) -> dict:
    return taken.get((node, filter_name), {"tonight": 0, "tonight_accepted": 0, "tonight_rejected": 0})
