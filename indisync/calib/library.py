"""A node's calibration library: ``{storage.directory}/calib/library.db`` (SQLite, stdlib ``sqlite3``).

What sets this node took (flats and darks/bias, with their temperature, count, folder and time) and
the light panel's trained brightness per filter and binning. The frames themselves are files
(calib.naming); the library says which exist and how old they are, so a dark set younger than
``darks.max_age_days`` is not taken again and a panel is trained once.

Like the season store (indisync.season.store), smaller, on the same indisync.sqlite_versioned: WAL
journal, ``synchronous=FULL``, a ``schema_version`` table (app ``indisync-calib``; migrations appended,
never edited), one connection behind a lock (thread-safe), a file that is not ours or is newer refused
with a CalibError naming the file and the fix, before anything is written to it.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import CalibError
from ..sqlite_versioned import VersionedSchema, current_version, immediate, journal_mode
from .model import DarkSet, FlatSet
from .panel import PanelTraining

DB_NAME = "library.db"
APP = "indisync-calib"

MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: flat sets, dark sets, panel trainings
        """CREATE TABLE flat_sets (
            id INTEGER PRIMARY KEY,
            node TEXT NOT NULL,
            filter TEXT,
            binning INTEGER NOT NULL,
            rotator_angle REAL,
            gain REAL,
            offset REAL,
            mode TEXT NOT NULL,
            direction TEXT,
            kept INTEGER NOT NULL,
            exposure_min REAL,
            exposure_max REAL,
            adu_min REAL,
            adu_max REAL,
            folder TEXT NOT NULL,
            taken_at REAL NOT NULL
        )""",
        "CREATE INDEX flat_sets_node ON flat_sets(node, filter, binning)",
        """CREATE TABLE dark_sets (
            id INTEGER PRIMARY KEY,
            node TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('dark', 'bias')),
            exposure REAL NOT NULL,
            binning INTEGER NOT NULL,
            gain REAL,
            offset REAL,
            setpoint REAL,
            temperature REAL,
            count INTEGER NOT NULL,
            folder TEXT NOT NULL,
            taken_at REAL NOT NULL
        )""",
        "CREATE INDEX dark_sets_node ON dark_sets(node, kind, exposure, binning)",
        """CREATE TABLE panel_training (
            node TEXT NOT NULL,
            filter TEXT NOT NULL,
            binning INTEGER NOT NULL,
            brightness REAL NOT NULL,
            exposure REAL NOT NULL,
            adu REAL NOT NULL,
            steps INTEGER NOT NULL,
            trained_at REAL NOT NULL,
            PRIMARY KEY (node, filter, binning)
        )""",
    ),
]

_SCHEMA = VersionedSchema(
    app=APP, noun="calibration library", kind="calibration", error=CalibError,
    foreign_fix="move it aside or point storage.directory elsewhere", newer_fix="move the file aside",
    damaged_fix="Move it aside (a new one is started; the frames on disk are untouched, but sets are taken again)")


@dataclass(frozen=True)
class FlatRecord:
    node: str
    set: FlatSet
    mode: str  # sky | panel
    direction: str | None  # dusk | dawn (sky)
    kept: int
    exposure_min: float | None
    exposure_max: float | None
    adu_min: float | None
    adu_max: float | None
    folder: str
    taken_at: float  # epoch s
    id: int | None = None


@dataclass(frozen=True)
class DarkRecord:
    node: str
    set: DarkSet
    setpoint: float | None  # the cooler's setpoint; None: no cooler (ambient)
    temperature: float | None  # the mean CCD-TEMP of the frames
    count: int
    folder: str
    taken_at: float  # epoch s
    id: int | None = None

    def age_days(self, now: float) -> float:
        return max(0.0, (now - self.taken_at) / 86400.0)


def _opt(value) -> float | None:
    return None if value is None else float(value)


class CalibLibrary:
    """A node's calibration library (created when missing)."""

    def __init__(self, path, timeout: float = 10.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CalibError(f"cannot create the directory of the calibration library {self.path}: {exc.strerror}; "
                             "check storage.directory") from None
        self._conn = _SCHEMA.connect(self.path, timeout)
        _SCHEMA.prepare(self._conn, self.path, MIGRATIONS, self._transaction)

    @classmethod
    def for_storage(cls, storage_dir) -> "CalibLibrary":
        """The library of a node's storage: ``{storage_dir}/calib/library.db``."""
        return cls(Path(storage_dir) / "calib" / DB_NAME)

    # -- plumbing (opening: indisync.sqlite_versioned) ---------------------------------------------

    def schema_version(self) -> int:
        with self._lock:
            return current_version(self._conn)

    def journal_mode(self) -> str:
        with self._lock:
            return journal_mode(self._conn)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE .. COMMIT under the lock; sqlite3 errors go on as they are."""
        with self._lock:
            if self._conn is None:
                raise CalibError(f"the calibration library {self.path} is closed")
            with immediate(self._conn):
                yield

    def _write(self, sql: str, params: tuple) -> None:
        try:
            with self._transaction():
                self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise CalibError(f"cannot write to the calibration library {self.path}: {exc}; check the disk "
                             "(space, permissions)") from None

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise CalibError(f"the calibration library {self.path} is closed")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise CalibError(f"cannot read the calibration library {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "CalibLibrary":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- flats --------------------------------------------------------------------------------------

    def add_flat_set(self, node: str, fset: FlatSet, mode: str, kept: int, exposure_min, exposure_max, adu_min,
                     adu_max, folder: str, taken_at: float, direction: str | None = None) -> None:
        self._write(
            "INSERT INTO flat_sets (node, filter, binning, rotator_angle, gain, offset, mode, direction, kept, "
            "exposure_min, exposure_max, adu_min, adu_max, folder, taken_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (node, fset.filter, fset.binning, fset.rotator_angle, fset.gain, fset.offset, mode, direction, int(kept),
             _opt(exposure_min), _opt(exposure_max), _opt(adu_min), _opt(adu_max), str(folder), float(taken_at)))

    def flat_sets(self, node=None) -> list[FlatRecord]:
        """Every flat set recorded (of ``node``), oldest first."""
        sql = ("SELECT node, filter, binning, rotator_angle, gain, offset, mode, direction, kept, exposure_min, "
               "exposure_max, adu_min, adu_max, folder, taken_at, id FROM flat_sets")
        rows = self._read(sql + (" WHERE node = ?" if node is not None else "") + " ORDER BY taken_at, id",
                          (node,) if node is not None else ())
        return [FlatRecord(r[0], FlatSet.make(r[1], r[2], r[3], r[4], r[5]), *r[6:]) for r in rows]

    # -- darks --------------------------------------------------------------------------------------

    def add_dark_set(self, node: str, dset: DarkSet, setpoint: float | None, temperature: float | None, count: int,
                     folder: str, taken_at: float) -> None:
        self._write(
            "INSERT INTO dark_sets (node, kind, exposure, binning, gain, offset, setpoint, temperature, count, "
            "folder, taken_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (node, dset.kind, dset.exposure, dset.binning, dset.gain, dset.offset, _opt(setpoint),
             _opt(temperature), int(count), str(folder), float(taken_at)))

    def dark_sets(self, node=None) -> list[DarkRecord]:
        """Every dark/bias set recorded (of ``node``), oldest first."""
        sql = ("SELECT node, kind, exposure, binning, gain, offset, setpoint, temperature, count, folder, taken_at, "
               "id FROM dark_sets")
        rows = self._read(sql + (" WHERE node = ?" if node is not None else "") + " ORDER BY taken_at, id",
                          (node,) if node is not None else ())
        return [DarkRecord(r[0], DarkSet.make(r[1], r[2], r[3], r[4], r[5]), *r[6:]) for r in rows]

    def find_dark_set(self, node, dset: DarkSet, setpoint: float | None, tolerance: float, max_age_days: float,
                      now: float) -> DarkRecord | None:
        """The youngest set of ``node`` matching ``dset`` (kind, exposure, binning, gain, offset), no
        older than ``max_age_days`` (and not from the future), taken at ``setpoint`` within
        ``tolerance`` °C (its mean temperature when recorded, else its setpoint). ``setpoint`` None (no
        cooler): a set taken without a setpoint, whatever its temperature."""
        for record in reversed(self.dark_sets(node)):
            if record.set != dset:
                continue
            if not 0.0 <= now - record.taken_at <= max_age_days * 86400.0:
                continue
            if setpoint is None:
                if record.setpoint is not None:
                    continue
            else:
                measured = record.temperature if record.temperature is not None else record.setpoint
                if measured is None or abs(measured - setpoint) > tolerance:
                    continue
            return record
        return None

    # -- the panel ----------------------------------------------------------------------------------

    def panel_training(self, node: str, filter: str | None, binning: int) -> PanelTraining | None:
        rows = self._read("SELECT brightness, exposure, adu FROM panel_training WHERE node = ? AND filter = ? AND "
                          "binning = ?", (node, filter or "", int(binning or 1)))
        if not rows:
            return None
        brightness, exposure, adu = rows[0]
        return PanelTraining(brightness, exposure, adu, 0)

    def save_panel_training(self, node, filter, binning, training: PanelTraining, trained_at: float) -> None:
        self._write(
            "INSERT OR REPLACE INTO panel_training (node, filter, binning, brightness, exposure, adu, steps, "
            "trained_at) VALUES (?,?,?,?,?,?,?,?)",
            (node, filter or "", int(binning or 1), float(training.brightness), float(training.exposure),
             float(training.adu), int(training.steps), float(trained_at)))
