"""A node's calibration library: ``{storage.directory}/calib/library.db`` (SQLite, stdlib ``sqlite3``).

What sets this node took (flats and darks/bias, with their temperature, count, folder and time) and
the light panel's trained brightness per filter and binning. The frames themselves are files
(calib.naming); the library says which exist and how old they are, so a dark set younger than
``darks.max_age_days`` is not taken again and a panel is trained once.

Like the season store (indisync.season.store), smaller: WAL journal, ``synchronous=FULL``, a
``schema_version`` table (app ``indisync-calib``; migrations appended, never edited), one connection
behind a lock (thread-safe), a file that is not ours or is newer refused with a CalibError naming the
file and the fix, before anything is written to it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import CalibError
from .model import DarkSet, FlatSet
from .panel import PanelTraining

log = logging.getLogger(__name__)

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

_SCHEMA_TABLE = "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, app TEXT NOT NULL, applied_at REAL NOT NULL)"


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
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False,
                                         isolation_level=None)
        except sqlite3.Error as exc:
            raise CalibError(f"cannot open the calibration library {self.path}: {exc}; check the path and its "
                             "permissions") from None
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def for_storage(cls, storage_dir) -> "CalibLibrary":
        """The library of a node's storage: ``{storage_dir}/calib/library.db``."""
        return cls(Path(storage_dir) / "calib" / DB_NAME)

    # -- opening ------------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            version = self._checked_version()
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: journal mode is %s, not WAL (the file system may not support it)", self.path, mode)
            self._conn.execute("PRAGMA synchronous = FULL")
            if version < len(MIGRATIONS):
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise CalibError(f"the calibration library {self.path} cannot be read ({exc}): it is damaged or not a "
                             "SQLite file. Move it aside (a new one is started; the frames on disk are untouched, "
                             "but sets are taken again)") from None

    def _checked_version(self) -> int:
        tables = {row[0] for row in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if "schema_version" not in tables:
            if tables:
                raise CalibError(f"{self.path} is not an indisync calibration library (it holds tables "
                                 f"{', '.join(sorted(tables))}); move it aside or point storage.directory elsewhere")
            return 0
        apps = {row[0] for row in self._conn.execute("SELECT DISTINCT app FROM schema_version")}
        if apps and apps != {APP}:
            raise CalibError(f"{self.path} is not an indisync calibration library (schema of "
                             f"{', '.join(sorted(map(str, apps)))}); move it aside or point storage.directory "
                             "elsewhere")
        version = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise CalibError(f"{self.path} has calibration schema version {version}, newer than this indisync "
                             f"understands (up to {len(MIGRATIONS)}): it was written by a later indisync. Upgrade "
                             "indisync on this machine (pip install -U indisync), or move the file aside")
        return version

    def _migrate(self) -> None:
        import time

        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if "schema_version" not in tables:
                    self._conn.execute(_SCHEMA_TABLE)
                version = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
                for number in range(version + 1, len(MIGRATIONS) + 1):
                    for statement in MIGRATIONS[number - 1]:
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version, app, applied_at) VALUES (?, ?, ?)",
                                       (number, APP, time.time()))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock:
            if self._conn is None:
                raise CalibError(f"the calibration library {self.path} is closed")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
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
