"""Read back what a simulated session wrote: frames (from their FITS headers) and focus records.

Shared by `indisync demo`, the end-to-end tests and benchmarks/sync.py, so they judge a run the
same way: by the files on disk, as a user would.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from astropy.io import fits


@dataclass
class FrameInfo:
    path: Path
    node: str
    filter: str | None
    batch: int | None
    exposure_id: int | None
    start: datetime
    exptime: float
    clock_offset: float | None = None  # CLKOFFS: the node's clock minus the master's, s (None: not measured)


def read_frames(images: Path) -> list[FrameInfo]:
    frames = []
    for path in sorted(Path(images).rglob("*.fits")):
        header = fits.getheader(path)
        start = datetime.fromisoformat(str(header["DATE-OBS"]).replace("Z", ""))
        frames.append(FrameInfo(path, header.get("NODE", path.parent.name), header.get("FILTER"),
                                header.get("BATCH"), header.get("EXPOSID"), start, float(header["EXPTIME"]),
                                header.get("CLKOFFS")))
    frames.sort(key=lambda f: f.start)
    return frames


def by_node(frames: list[FrameInfo]) -> dict[str, list[FrameInfo]]:
    grouped: dict[str, list[FrameInfo]] = defaultdict(list)
    for frame in frames:
        grouped[frame.node].append(frame)
    return dict(grouped)


def rotation_string(frames: list[FrameInfo], focus_after_batches: bool = True) -> str:
    """One node's filters by their first letter, a batch per group: 'RGBRG (focus) BRGBR (focus)'."""
    groups: dict[int | None, list[str]] = defaultdict(list)
    for frame in sorted(frames, key=lambda f: f.start):
        groups[frame.batch].append((frame.filter or "?")[0])
    joiner = " (focus) " if focus_after_batches else " "
    text = joiner.join("".join(letters) for _, letters in sorted(groups.items(), key=lambda kv: kv[0] or 0))
    return text + (" (focus)" if focus_after_batches and text else "")


def filter_counts(frames: list[FrameInfo]) -> dict[str, dict[str, int]]:
    return {node: dict(Counter(f.filter for f in fs)) for node, fs in by_node(frames).items()}


def start_skews(frames: list[FrameInfo], master: str = "master", correct_clocks: bool = True) -> dict[str, list[float]]:
    """Per slave: seconds between its frame's DATE-OBS and the master's for the same exposure id.

    ``correct_clocks``: each DATE-OBS is first put on the master's clock with the frame's CLKOFFS
    (the node's measured clock offset), so a slave whose clock is off does not show as skew; a
    frame without CLKOFFS is taken as is."""
    nodes = by_node(frames)

    def start(f: FrameInfo) -> datetime:
        return f.start - timedelta(seconds=f.clock_offset) if correct_clocks and f.clock_offset else f.start

    master_start = {f.exposure_id: start(f) for f in nodes.get(master, []) if f.exposure_id is not None}
    skews: dict[str, list[float]] = {}
    for node, fs in nodes.items():
        if node == master:
            continue
        seen = set()
        for f in fs:
            if f.exposure_id in master_start and f.exposure_id not in seen:  # loose mode: the first of several
                seen.add(f.exposure_id)
                skews.setdefault(node, []).append((start(f) - master_start[f.exposure_id]).total_seconds())
    return skews


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def skew_summary(skews: dict[str, list[float]]) -> dict:
    every = [abs(s) for values in skews.values() for s in values]
    return {
        "pairs": len(every),
        "p50_ms": None if not every else round(1000 * percentile(every, 0.5), 1),
        "p99_ms": None if not every else round(1000 * percentile(every, 0.99), 1),
        "max_ms": None if not every else round(1000 * max(every), 1),
        "mean_signed_ms": None if not every else round(
            1000 * statistics.fmean(s for v in skews.values() for s in v), 1),
    }


def read_focus_runs(focus_dir: Path) -> dict[str, list[dict]]:
    """node -> its autofocus JSON records, oldest first."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(Path(focus_dir).rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        node = (record.get("metadata") or {}).get("node") or path.parent.name
        record["_path"] = str(path)
        runs[node].append(record)
    for records in runs.values():
        records.sort(key=lambda r: r.get("started") or "")
    return dict(runs)


# ---- shutter-open time: intervals on the wall clock ------------------------------------------------
# A frame's shutter was open over [DATE-OBS, DATE-OBS + EXPTIME x time_factor] in wall time: DATE-OBS
# is the wall clock, EXPTIME the requested (simulated) seconds, and the simulator runs them
# ``time_factor`` times faster.

Interval = tuple[float, float]


def merge_intervals(intervals: list[Interval]) -> list[Interval]:
    """The union of ``intervals`` as sorted, disjoint intervals (empty and reversed ones dropped)."""
    merged: list[list[float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def total_length(intervals: list[Interval]) -> float:
    return sum(e - s for s, e in merge_intervals(intervals))


def overlap_length(a: list[Interval], b: list[Interval]) -> float:
    """Length of (union of a) ∩ (union of b)."""
    a, b = merge_intervals(a), merge_intervals(b)
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def open_interval(frame: FrameInfo, time_factor: float = 1.0) -> Interval:
    """Where ``frame``'s shutter was open, in POSIX seconds (DATE-OBS is UTC, written without a zone)."""
    when = frame.start if frame.start.tzinfo is not None else frame.start.replace(tzinfo=timezone.utc)
    start = when.timestamp()
    return (start, start + frame.exptime * time_factor)


def shutter_overlap(frames: list[FrameInfo], time_factor: float, master: str = "master") -> dict[str, float | None]:
    """Per slave: the fraction of the master's open-shutter wall time during which the slave's shutter
    was open too (any of its frames). A missing slave frame counts as closed."""
    nodes = by_node(frames)
    reference = [open_interval(f, time_factor) for f in nodes.get(master, [])]
    whole = total_length(reference)
    return {node: (overlap_length(reference, [open_interval(f, time_factor) for f in fs]) / whole if whole else None)
            for node, fs in nodes.items() if node != master}


def paired_overlap(frames: list[FrameInfo], master: str = "master",
                   time_factor: float = 1.0) -> dict[str, float | None]:
    """Per slave: like :func:`shutter_overlap`, but each master frame is compared only with the slave's
    frames of the same exposure id. With ``time_factor=1`` this is what the same start skews would
    cost at real exposure lengths (where consecutive frames' intervals would otherwise run together)."""
    nodes = by_node(frames)
    masters = [f for f in nodes.get(master, []) if f.exposure_id is not None]
    whole = sum(f.exptime * time_factor for f in masters)
    result: dict[str, float | None] = {}
    for node, fs in nodes.items():
        if node == master:
            continue
        by_id: dict[int, list[Interval]] = defaultdict(list)
        for f in fs:
            by_id[f.exposure_id].append(open_interval(f, time_factor))
        covered = sum(overlap_length([open_interval(m, time_factor)], by_id.get(m.exposure_id, [])) for m in masters)
        result[node] = covered / whole if whole else None
    return result


def exptime_ratio(frames: list[FrameInfo], master: str = "master") -> dict[str, float | None]:
    """Per slave: its summed EXPTIME over the master's (requested seconds, not measured)."""
    nodes = by_node(frames)
    whole = sum(f.exptime for f in nodes.get(master, []))
    return {node: (sum(f.exptime for f in fs) / whole if whole else None)
            for node, fs in nodes.items() if node != master}


def missing_exposures(frames: list[FrameInfo], slaves: list[str], master: str = "master") -> dict[str, list[int]]:
    """Per slave (all of ``slaves``, even those with no frame at all): the master's exposure ids it has no frame for."""
    nodes = by_node(frames)
    ids = [f.exposure_id for f in nodes.get(master, []) if f.exposure_id is not None]
    return {node: [i for i in ids if i not in {f.exposure_id for f in nodes.get(node, [])}] for node in slaves}


def start_intervals(frames: list[FrameInfo], node: str = "master") -> list[float]:
    """Seconds between consecutive frame starts of ``node`` (the master's frame cycle)."""
    starts = [f.start for f in sorted(by_node(frames).get(node, []), key=lambda f: f.start)]
    return [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
