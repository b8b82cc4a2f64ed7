"""The night log: one JSON object per line, one file per night (``YYYY-MM-DD.jsonl``, the date at
dusk in the site's time zone, ``site.timezone``), appended as messages arrive.

Each line is written whole; ``append`` flushes and fsyncs every line, ``append_many`` once per
batch (the recorder's writer thread: at most ``BATCH`` lines or what arrived meanwhile). A torn last line (power cut mid-write) is skipped by the reader, and the writer
starts a fresh line after it, so the next entry is never glued to it.

Entry: {"rx": receive time (ISO UTC), "node": sender, "kind": "event"|"state"|"status"|"reply"|"note",
        "type": message type, "ts": sender's time, "payload": {...}}

Pure file handling: no MQTT here.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Iterator

from ..timezones import local_zone

log = logging.getLogger(__name__)


def night_of(when: datetime, starts_hour: int = 12, zone: tzinfo | None = None) -> date:
    """The night a moment belongs to: the date at dusk on the clock of ``zone`` (the site's; None:
    this computer's), from ``starts_hour`` to the next day's. A naive ``when`` is already local."""
    local = when.astimezone(zone if zone is not None else local_zone()) if when.tzinfo is not None else when
    return (local.replace(tzinfo=None) - timedelta(hours=starts_hour)).date()


def night_path(directory: str | Path, night: date) -> Path:
    return Path(directory) / f"{night.isoformat()}.jsonl"


class NightLogWriter:
    """Appends entries to the night's file; a new file when the night changes. Thread-safe."""

    def __init__(self, directory: str | Path, starts_hour: int = 12, fsync: bool = True, zone: tzinfo | None = None):
        self.directory = Path(directory)
        self.starts_hour = starts_hour
        self.zone = zone  # the site's (site.timezone); None: this computer's
        self.fsync = fsync
        self.lines = 0
        self._lock = threading.Lock()
        self._file = None
        self._path: Path | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    def path_for(self, when: datetime) -> Path:
        return night_path(self.directory, night_of(when, self.starts_hour, self.zone))

    def append(self, entry: dict, when: datetime | None = None) -> Path:
        when = when or datetime.now(timezone.utc)
        line = json.dumps(entry, separators=(",", ":"), allow_nan=False, default=str) + "\n"
        with self._lock:
            path = self.path_for(when)
            if path != self._path:
                self._open(path)
            self._file.write(line.encode())
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self.lines += 1
            return path

    def append_many(self, batch: list[tuple[dict, datetime]]) -> None:
        """Several entries, each line written whole, one fsync for the batch (a crash loses at most it)."""
        with self._lock:
            for entry, when in batch:
                line = json.dumps(entry, separators=(",", ":"), allow_nan=False, default=str) + "\n"
                path = self.path_for(when)
                if path != self._path:
                    if self._file is not None and self.fsync:
                        os.fsync(self._file.fileno())
                    self._open(path)
                self._file.write(line.encode())
                self.lines += 1
            if self._file is not None:
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())

    def _open(self, path: Path) -> None:
        self._close()
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "ab")
        if handle.tell() > 0:  # a torn last line from a crash: start a fresh line after it
            with open(path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    handle.write(b"\n")
        self._file = handle
        self._path = path

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.warning("closing night log %s: %s", self._path, exc)
        self._file = None
        self._path = None

    def close(self) -> None:
        with self._lock:
            self._close()


@dataclass
class ReadResult:
    entries: list[dict]
    skipped: int  # lines that were not whole JSON objects (a torn line)


def read_night(path: str | Path) -> ReadResult:
    """Every whole entry of a night log, in file order; torn or foreign lines are counted, not fatal."""
    entries, skipped = [], 0
    for entry in _lines(Path(path)):
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    return ReadResult(entries, skipped)


def _lines(path: Path) -> Iterator[dict | None]:
    with open(path, "rb") as handle:
        for raw in handle:
            raw = raw.strip()
            if not raw:
                continue
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                yield None
                continue
            yield value if isinstance(value, dict) else None


def latest_night(directory: str | Path) -> Path | None:
    logs = sorted(Path(directory).glob("????-??-??.jsonl"))
    return logs[-1] if logs else None
