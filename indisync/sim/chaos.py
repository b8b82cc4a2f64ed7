"""Judging a chaos night from what is on disk: duplicates, partial files, rotation errors, lost
frames. Pure functions over FrameInfo lists and file paths, shared by benchmarks/chaos_night.py and
its unit test, so the verdict never comes from what the script meant to do."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path

from .report import FrameInfo

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def duplicates(frames: list[FrameInfo]) -> int:
    """Frames beyond the first for one (node, master exposure id): the same command run twice.
    Loose-sync sub-frames share an id by design, so this is for strict sync."""
    counts = Counter((f.node, f.exposure_id) for f in frames if f.exposure_id is not None)
    return sum(n - 1 for n in counts.values() if n > 1)


def rotation_errors(frames: list[FrameInfo], cycle: list[str]) -> int:
    """A filter skipped or repeated: each frame (by start) must carry the filter after the previous
    frame's in ``cycle``. The first frame may be any filter of the cycle; one outside it is an error."""
    errors = 0
    previous = None
    for frame in sorted(frames, key=lambda f: f.start):
        if frame.filter not in cycle:
            errors += 1
        elif previous is not None and frame.filter != cycle[(cycle.index(previous) + 1) % len(cycle)]:
            errors += 1
        previous = frame.filter if frame.filter in cycle else previous
    return errors


def partial_file(path: Path) -> str | None:
    """Why a FITS file is incomplete (None when whole): unreadable, or shorter than its header says."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
            info = hdul.fileinfo(0)
            expected = info["datLoc"] + info["datSpan"]
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
        return f"unreadable: {type(exc).__name__}: {exc}"
    size = path.stat().st_size
    if size < expected:
        return f"{size} bytes, the header announces {expected}"
    return None


def lost_exposures(master: list[FrameInfo], slave: list[FrameInfo]) -> list[int]:
    """Master exposure ids the slave has no frame for."""
    have = {f.exposure_id for f in slave}
    return sorted(f.exposure_id for f in master if f.exposure_id not in have)


def log_times(text: str, needle: str) -> list[float]:
    """Unix times of the node log lines that contain ``needle``."""
    times = []
    for line in text.splitlines():
        if needle in line:
            match = LOG_TIME.match(line)
            if match:
                times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


def first_after(times: list[float], after: float) -> float | None:
    later = [t for t in times if t >= after]
    return min(later) if later else None


def night_moves(events: list[tuple[float, dict]]) -> list[tuple[float, str, str]]:
    """(time, to, reason) of the master's night_state events, in time order, from recorded
    ``(arrival time, envelope dict)`` pairs (the chaos monitor's)."""
    moves = []
    for t, env in events:
        if env.get("type") == "night_state" and env.get("from") == "master":
            payload = env.get("payload") or {}
            moves.append((t, str(payload.get("to")), str(payload.get("reason") or "")))
    return sorted(moves)


def unsafe_cause(moves: list[tuple[float, str, str]], start: float, end: float) -> str | None:
    """Why the night went unsafe between ``start`` and ``end`` (the reason of its move to
    ``unsafe``), or None when it did not: what aborted an exposure that ran then."""
    for t, to, reason in moves:
        if to == "unsafe" and start <= t <= end:
            return reason
    return None


def abort_kind(cause: str) -> str:
    """A short name for why the night went unsafe: rain (WEATHER_STATUS Alert), the weather device
    gone (its driver or indiserver), or its data stale."""
    if "alert" in cause:
        return "rain"
    if "weather device gone" in cause:
        return "weather device gone"
    if "no weather data" in cause:
        return "weather data stale"
    return "unsafe"
