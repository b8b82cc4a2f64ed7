"""One SQLite file of ours, versioned (stdlib ``sqlite3`` only): what the season database
(indisync.season.store) and a node's calibration library (indisync.calib.library) share.

- **Opened with a clear error**: a path that cannot be opened, a damaged file, a file that is not ours
  (tables but no ``schema_version``, or another app's rows in it) or a newer one (written by a later
  indisync) is refused with the store's exception naming the file and the fix. The version is checked
  *before* anything is written: a refused file is left as it was.
- **Durable**: WAL journal (a warning where the file system cannot), ``synchronous=FULL``.
- **Versioned**: ``schema_version`` holds one row per applied migration, keyed by ``app`` (which tells
  our files from each other's and from any other SQLite file). ``migrations`` is a list of SQL steps,
  appended to, never edited (files in the field have applied them); the missing ones are applied
  together in the store's own write transaction, so a failed step leaves the file at its old version.

A ``VersionedSchema`` holds the words and the fixes of one kind of file; the store keeps its connection,
its lock and its transactions, and passes its ``MIGRATIONS`` when it opens (read then: a test may add a
step).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

log = logging.getLogger(__name__)

SCHEMA_TABLE = """CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    app TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""

Migrations = Sequence[Sequence[str]]


def current_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied (0: none)."""
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE .. COMMIT on a connection in autocommit mode (``isolation_level=None``); ROLLBACK
    on any error, which goes on as it was raised (sqlite3.Error included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise


@dataclass(frozen=True)
class VersionedSchema:
    """The words of one kind of file: ``app`` its schema_version key; ``noun`` ("season database")
    names it ("the season database X", "X is not an indisync season database"); ``kind`` its schema
    ("X has season schema version N"); ``error`` the store's exception; the fixes end the refusals:
    ``foreign_fix`` a file not ours, ``newer_fix`` after "Upgrade indisync ..., or", ``damaged_fix``
    after "it is damaged or not a SQLite file."."""

    app: str
    noun: str
    kind: str
    error: type[Exception]
    foreign_fix: str
    newer_fix: str
    damaged_fix: str

    def connect(self, path: Path, timeout: float) -> sqlite3.Connection:
        """A connection for any thread (the store locks), in autocommit mode (the store begins its own
        transactions); ``timeout``: seconds to wait for another process's lock."""
        try:
            return sqlite3.connect(str(path), timeout=timeout, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise self.error(f"cannot open the {self.noun} {path}: {exc}; check the path and its "
                             "permissions") from None

    def prepare(self, conn: sqlite3.Connection, path: Path, migrations: Migrations,
                transaction: Callable[[], AbstractContextManager], clock: Callable[[], float] = time.time,
                setup: Sequence[str] = ()) -> None:
        """Make a fresh connection ready: ``setup`` (e.g. PRAGMA foreign_keys), the version checked,
        WAL and synchronous FULL, the missing migrations applied inside ``transaction()`` (the store's
        write transaction), each stamped with ``clock()``. On any failure the connection is closed;
        a file sqlite cannot read is refused as damaged."""
        try:
            try:
                for statement in setup:
                    conn.execute(statement)
                version = self.checked_version(conn, path, migrations)  # before anything is written
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("%s: journal mode is %s, not WAL (the file system may not support it)", path, mode)
                conn.execute("PRAGMA synchronous = FULL")
                if version < len(migrations):
                    with transaction():  # BEGIN IMMEDIATE: another process migrating waits, then sees it done
                        self._migrate(conn, path, migrations, clock)
            except sqlite3.DatabaseError as exc:
                raise self.error(self.damaged(path, exc)) from None
        except BaseException:
            conn.close()
            raise

    def checked_version(self, conn: sqlite3.Connection, path: Path, migrations: Migrations) -> int:
        """The file's schema version (0: a new, empty file); the store's error when it is not ours or
        too new."""
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if "schema_version" not in tables:
            if tables:
                raise self.error(f"{path} is not an indisync {self.noun} (it holds tables "
                                 f"{', '.join(sorted(tables))}); {self.foreign_fix}")
            return 0
        apps = {row[0] for row in conn.execute("SELECT DISTINCT app FROM schema_version")}
        if apps and apps != {self.app}:
            raise self.error(f"{path} is not an indisync {self.noun} (schema of "
                             f"{', '.join(sorted(map(str, apps)))}); {self.foreign_fix}")
        version = current_version(conn)
        if version > len(migrations):
            raise self.error(f"{path} has {self.kind} schema version {version}, newer than this indisync "
                             f"understands (up to {len(migrations)}): it was written by a later indisync. Upgrade "
                             f"indisync on this machine (pip install -U indisync), or {self.newer_fix}")
        return version

    def damaged(self, path: Path, exc: Exception) -> str:
        return (f"the {self.noun} {path} cannot be read ({exc}): it is damaged or not a SQLite file. "
                f"{self.damaged_fix}")

    def _migrate(self, conn: sqlite3.Connection, path: Path, migrations: Migrations,
                 clock: Callable[[], float]) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            conn.execute(SCHEMA_TABLE)
        version = current_version(conn)  # again, inside the transaction: another process may have migrated
        for number in range(version + 1, len(migrations) + 1):
            for statement in migrations[number - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, app, applied_at) VALUES (?, ?, ?)",
                         (number, self.app, clock()))
        if version:
            log.info("%s: %s schema migrated from version %d to %d", path, self.kind, version, len(migrations))
        else:
            log.debug("%s: new %s, schema version %d", path, self.noun, len(migrations))
