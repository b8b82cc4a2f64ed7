"""The season's database: projects, targets with their per-node exposure plans, every frame any node
wrote (graded), the filter wheels the nodes reported, and the runtime's small state. SQLite through
the stdlib ``sqlite3`` only, at ``{storage.directory}/indisync.db`` on the master.

- **Durable**: WAL journal with ``synchronous=FULL`` (a committed frame survives a power cut), foreign
  keys on, every write one transaction. A restart, a crash or a rainy week loses nothing.
- **Versioned** (indisync.sqlite_versioned, shared with the calibration library): ``schema_version``
  holds one row per applied migration (``MIGRATIONS``, a list of SQL steps; the missing ones are applied
  together in one transaction, so a failed step leaves the file at its old version). Opening a database
  of an older version migrates it; a newer one (written by a later indisync), one that is not ours, or a
  damaged file is refused with a SeasonError naming the file and the fix. Nothing is written to a
  database that is refused.
- **Thread-safe**: one connection (``check_same_thread=False``) behind a lock; the night's threads
  (frames recorded, grades arriving, state published) share one store. Other processes
  (``indisync targets`` while the master runs) wait at most ``timeout`` seconds for a lock.

Frames are kept by their target's *name*: removing a target keeps its frame rows (files are never
touched) but no longer lists them; a target added again under the same name picks them up again, and
replacing a target (``upsert_target``, ``indisync targets import --replace``) keeps its counts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, Iterator

from ..errors import SeasonError
from ..sqlite_versioned import SCHEMA_TABLE as _SCHEMA_TABLE  # noqa: F401 - kept: tests build a version-1 file with it
from ..sqlite_versioned import VersionedSchema, current_version, journal_mode
from .checks import project_problems, target_problems
from .model import ACCEPTED, GRADES, PENDING, REJECTED, Constraints, Count, PlanLine, Progress, Project, Target

DB_NAME = "indisync.db"
APP = "indisync-season"  # schema_version.app: tells our database from any other SQLite file
DEFAULT_PROJECT = "default"

# One entry per schema version: the SQL statements that take the schema from version i to i + 1.
# Append only: a released step is never edited (databases in the field have applied it).
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: projects, targets, per-node plan lines, frames, node wheels, runtime state
        """CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            priority INTEGER NOT NULL DEFAULT 5,
            description TEXT NOT NULL DEFAULT '',
            enabled INTEGER NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE targets (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE RESTRICT,
            name TEXT NOT NULL UNIQUE,
            ra REAL NOT NULL,
            dec REAL NOT NULL,
            pa REAL,
            priority INTEGER NOT NULL DEFAULT 5,
            start_date TEXT,
            end_date TEXT,
            constraints TEXT NOT NULL DEFAULT '{}',
            enabled INTEGER NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE plan_lines (
            id INTEGER PRIMARY KEY,
            target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            node TEXT NOT NULL,
            filter TEXT,
            exposure REAL NOT NULL,
            count INTEGER NOT NULL,
            binning INTEGER NOT NULL DEFAULT 1
        )""",
        "CREATE INDEX plan_lines_target ON plan_lines(target_id, position)",
        """CREATE TABLE frames (
            id INTEGER PRIMARY KEY,
            node TEXT NOT NULL,
            target TEXT NOT NULL,
            filter TEXT,
            exposure REAL NOT NULL,
            path TEXT NOT NULL,
            file TEXT NOT NULL,
            grade TEXT NOT NULL CHECK (grade IN ('accepted', 'rejected', 'pending')),
            taken_at REAL NOT NULL,
            exposure_id TEXT,
            surplus INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            UNIQUE (node, path)
        )""",
        "CREATE INDEX frames_target ON frames(target, node, filter)",
        "CREATE INDEX frames_file ON frames(node, file)",
        """CREATE TABLE nodes (
            name TEXT PRIMARY KEY,
            role TEXT,
            filters TEXT NOT NULL DEFAULT '[]',
            seen_at REAL NOT NULL
        )""",
        """CREATE TABLE state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ),
]

_SCHEMA = VersionedSchema(
    app=APP, noun="season database", kind="season", error=SeasonError,
    foreign_fix="point --db or storage.directory at another file, or move this one aside",
    newer_fix="point --db / storage.directory at another file",
    damaged_fix="Move it aside (indisync starts a new one; the frames on disk are untouched) and import your "
                "targets again from an export (`indisync targets import FILE`)")


def db_path(cfg) -> Path:
    """The season database of a config: ``{storage.directory}/indisync.db``."""
    return Path(cfg.storage.directory) / DB_NAME


@dataclass(frozen=True)
class FrameRow:
    node: str
    target: str
    filter: str | None
    exposure: float
    path: str
    grade: str  # ACCEPTED | REJECTED | PENDING
    taken_at: float  # epoch seconds
    exposure_id: str | None = None
    surplus: bool = False  # taken after this node's plan was complete: counted apart
    reason: str | None = None  # why rejected (the grading's words)
    id: int | None = None


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str | None
    filters: tuple[str, ...]  # the wheel's FILTER_NAME names in slot order; () no wheel
    seen_at: float


class SeasonStore:
    """The season database. ``create=False``: the file must exist (SeasonError otherwise)."""

    def __init__(self, path: str | Path, create: bool = True, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time, node_refresh_s: float = 300.0):
        """``timeout``: seconds to wait for another process's lock; ``node_refresh_s``: ``note_node`` with
        an unchanged wheel rewrites its ``seen_at`` at most this often (nodes publish state every few seconds;
        an SD card need not sync each one)."""
        self.path = Path(path)
        self._clock = clock
        self._node_refresh_s = node_refresh_s
        self._noted: dict[str, tuple[str | None, tuple[str, ...], float]] = {}  # name -> (role, filters, written at)
        self._lock = threading.RLock()
        self._depth = 0  # nested transaction() depth (the lock is re-entrant)
        if not self.path.exists():
            if not create:
                raise SeasonError(f"no season database at {self.path}; add targets with `indisync targets add` or "
                                  "`indisync targets import FILE` (or give the right --db / storage.directory)")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SeasonError(f"cannot create the directory of {self.path}: {exc.strerror}; check "
                                  "storage.directory or --db") from None
        self._conn = _SCHEMA.connect(self.path, timeout)
        _SCHEMA.prepare(self._conn, self.path, MIGRATIONS, self.transaction, self._clock,
                        setup=("PRAGMA foreign_keys = ON",))

    # -- opening and migrations (indisync.sqlite_versioned) ---------------------------------------

    def _damaged(self, exc: Exception) -> str:
        return _SCHEMA.damaged(self.path, exc)

    def schema_version(self) -> int:
        with self._reading():
            return current_version(self._conn)

    def journal_mode(self) -> str:
        with self._reading():
            return journal_mode(self._conn)

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "SeasonStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE .. COMMIT, ROLLBACK on any error); nests: only the
        outermost commits. Holds the store's lock throughout, so no other thread interleaves."""
        with self._lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            self._depth = 1
            try:
                yield
            except BaseException as exc:
                self._depth = 0
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise
            else:
                self._depth = 0
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as err:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise self._error(err) from None

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            try:
                yield
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _check_open(self) -> None:
        if self._conn is None:
            raise SeasonError(f"the season database {self.path} is closed; open a new SeasonStore")

    def _error(self, exc: sqlite3.Error) -> SeasonError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return SeasonError(f"the season database {self.path} stayed locked by another process (the master, or "
                               f"another `indisync targets`): {text}; try again in a moment")
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
            return SeasonError(self._damaged(exc))
        return SeasonError(f"the season database {self.path}: {text}")

    # -- projects ---------------------------------------------------------------------------------

    def add_project(self, project: Project) -> Project:
        _check(project_problems(project), f"project {project.name!r}")
        with self.transaction():
            if self._project_id(project.name) is not None:
                raise SeasonError(f"project {project.name!r} exists already in {self.path}; use upsert (import "
                                  "--replace) to change it")
            self._insert_project(project)
        return project

    def upsert_project(self, project: Project) -> Project:
        _check(project_problems(project), f"project {project.name!r}")
        with self.transaction():
            pid = self._project_id(project.name)
            if pid is None:
                self._insert_project(project)
            else:
                self._conn.execute("UPDATE projects SET priority = ?, description = ?, enabled = ? WHERE id = ?",
                                   (project.priority, project.description, int(project.enabled), pid))
        return project

    def projects(self) -> list[Project]:
        with self._reading():
            rows = self._conn.execute("SELECT name, priority, description, enabled FROM projects ORDER BY name")
            return [Project(name, priority, description, bool(enabled)) for name, priority, description, enabled in rows]

    def project(self, name: str) -> Project | None:
        return next((p for p in self.projects() if p.name == name), None)

    def _project_id(self, name: str) -> int | None:
        row = self._conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _insert_project(self, project: Project) -> int:
        cur = self._conn.execute("INSERT INTO projects (name, priority, description, enabled) VALUES (?, ?, ?, ?)",
                                 (project.name, project.priority, project.description, int(project.enabled)))
        return cur.lastrowid

    def _ensure_project(self, name: str) -> int:
        pid = self._project_id(name)
        return pid if pid is not None else self._insert_project(Project(name))

    # -- targets ----------------------------------------------------------------------------------

    def add_target(self, target: Target) -> Target:
        """Store a new target (its project is created with defaults when missing)."""
        _check(target_problems(target), f"target {target.name!r}")
        with self.transaction():
            if self._target_id(target.name) is not None:
                raise SeasonError(f"target {target.name!r} exists already in {self.path}; use `indisync targets add "
                                  "--replace` or `import --replace` (its frames are kept), or remove it first")
            tid = self._write_target(target, None)
        return self._with_id(target, tid)

    def upsert_target(self, target: Target) -> Target:
        """Store a target, replacing one of the same name (its plan lines and constraints); its frames are kept."""
        _check(target_problems(target), f"target {target.name!r}")
        with self.transaction():
            tid = self._write_target(target, self._target_id(target.name))
        return self._with_id(target, tid)

    def target(self, name: str) -> Target | None:
        with self._reading():
            found = self._load_targets("WHERE t.name = ?", (name,))
        return found[0] if found else None

    def targets(self, enabled_only: bool = False) -> list[Target]:
        """Every target (three queries, whatever their number), by project then name."""
        where = "WHERE t.enabled = 1 AND p.enabled = 1" if enabled_only else ""
        with self._reading():
            return self._load_targets(where, ())

    def remove_target(self, name: str) -> bool:
        """Delete a target and its plan; its frame rows stay (no longer listed). False: no such target."""
        with self.transaction():
            cur = self._conn.execute("DELETE FROM targets WHERE name = ?", (name,))
            return cur.rowcount > 0

    def _target_id(self, name: str) -> int | None:
        row = self._conn.execute("SELECT id FROM targets WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _write_target(self, target: Target, tid: int | None) -> int:
        pid = self._ensure_project(target.project)
        values = (pid, target.name, float(target.ra), float(target.dec),
                  None if target.pa is None else float(target.pa), target.priority, target.start_date,
                  target.end_date, _constraints_json(target.constraints), int(target.enabled))
        if tid is None:
            tid = self._conn.execute(
                "INSERT INTO targets (project_id, name, ra, dec, pa, priority, start_date, end_date, constraints, "
                "enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values).lastrowid
        else:
            self._conn.execute(
                "UPDATE targets SET project_id = ?, name = ?, ra = ?, dec = ?, pa = ?, priority = ?, start_date = ?, "
                "end_date = ?, constraints = ?, enabled = ? WHERE id = ?", values + (tid,))
            self._conn.execute("DELETE FROM plan_lines WHERE target_id = ?", (tid,))
        self._conn.executemany(
            "INSERT INTO plan_lines (target_id, position, node, filter, exposure, count, binning) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(tid, i, line.node, line.filter, float(line.exposure), line.count, line.binning)
             for i, line in enumerate(target.plan)])
        return tid

    def _load_targets(self, where: str, params: tuple) -> list[Target]:
        rows = self._conn.execute(
            "SELECT t.id, p.name, t.name, t.ra, t.dec, t.pa, t.priority, t.start_date, t.end_date, t.constraints, "
            f"t.enabled FROM targets t JOIN projects p ON p.id = t.project_id {where} ORDER BY p.name, t.name",
            params).fetchall()
        if not rows:
            return []
        ids = [row[0] for row in rows]
        plans: dict[int, list[PlanLine]] = {tid: [] for tid in ids}
        if len(ids) == 1:
            lines = self._conn.execute(
                "SELECT target_id, node, filter, exposure, count, binning FROM plan_lines WHERE target_id = ? "
                "ORDER BY target_id, position", (ids[0],))
        else:
            lines = self._conn.execute("SELECT target_id, node, filter, exposure, count, binning FROM plan_lines "
                                       "ORDER BY target_id, position")
        for tid, node, filter_name, exposure, count, binning in lines:
            if tid in plans:
                plans[tid].append(PlanLine(node, filter_name, exposure, count, binning))
        return [Target(project=project, name=name, ra=ra, dec=dec, plan=tuple(plans[tid]), pa=pa, priority=priority,
                       start_date=start, end_date=end, constraints=_constraints_from(constraints, name),
                       enabled=bool(enabled), id=tid)
                for tid, project, name, ra, dec, pa, priority, start, end, constraints, enabled in rows]

    @staticmethod
    def _with_id(target: Target, tid: int) -> Target:
        return replace(target, id=tid)

    # -- frames -----------------------------------------------------------------------------------

    def record_frame(self, row: FrameRow) -> int:
        """Record one frame; a (node, path) already recorded returns its id and changes nothing."""
        if row.grade not in GRADES:
            raise SeasonError(f"frame {row.path}: grade {row.grade!r} is unknown; allowed: {', '.join(GRADES)}")
        with self.transaction():
            self._conn.execute(
                "INSERT INTO frames (node, target, filter, exposure, path, file, grade, taken_at, exposure_id, "
                "surplus, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, path) DO NOTHING",
                (row.node, row.target, row.filter, float(row.exposure), row.path, _basename(row.path), row.grade,
                 float(row.taken_at), row.exposure_id, int(bool(row.surplus)), row.reason))
            return self._conn.execute("SELECT id FROM frames WHERE node = ? AND path = ?",
                                      (row.node, row.path)).fetchone()[0]

    def set_grade(self, node: str, file: str, grade: str, reason: str | None = None) -> bool:
        """Grade a node's frame, found by its path or, failing that, its basename (a slave reports the file
        name; the newest frame of that name wins). False: no such frame."""
        if grade not in GRADES:
            raise SeasonError(f"grade {grade!r} for {node}:{file} is unknown; allowed: {', '.join(GRADES)}")
        with self.transaction():
            row = self._conn.execute("SELECT id FROM frames WHERE node = ? AND path = ?", (node, file)).fetchone()
            if row is None:
                row = self._conn.execute("SELECT id FROM frames WHERE node = ? AND file = ? ORDER BY id DESC LIMIT 1",
                                         (node, _basename(file))).fetchone()
            if row is None:
                return False
            self._conn.execute("UPDATE frames SET grade = ?, reason = ? WHERE id = ?", (grade, reason, row[0]))
            return True

    def frames(self, target: str | None = None, node: str | None = None) -> list[FrameRow]:
        """Frames of the stored targets (a removed target's frames are not listed), oldest first."""
        where, params = ["f.target IN (SELECT name FROM targets)"], []
        if target is not None:
            where.append("f.target = ?")
            params.append(target)
        if node is not None:
            where.append("f.node = ?")
            params.append(node)
        with self._reading():
            rows = self._conn.execute(
                "SELECT f.node, f.target, f.filter, f.exposure, f.path, f.grade, f.taken_at, f.exposure_id, f.surplus, "
                f"f.reason, f.id FROM frames f WHERE {' AND '.join(where)} ORDER BY f.taken_at, f.id", params)
            return [FrameRow(n, t, fl, e, p, g, ta, x, bool(s), r, i) for n, t, fl, e, p, g, ta, x, s, r, i in rows]

    def progress(self, target: Target) -> Progress:
        """Counts of one target: a Count per plan line (desired from the plan) and per any other
        (node, filter) its frames were taken with (desired 0)."""
        with self._reading():
            rows = self._conn.execute(
                "SELECT node, filter, grade, surplus, COUNT(*) FROM frames WHERE target = ? "
                "GROUP BY node, filter, grade, surplus", (target.name,)).fetchall()
        progress = Progress.for_target(target)
        for node, filter_name, grade, surplus, n in rows:
            _add(progress.get(node, filter_name), grade, bool(surplus), n)
        return progress

    def progress_all(self) -> dict[str, Progress]:
        """Target name -> Progress, for every stored target (four queries, whatever their number)."""
        with self._reading():
            targets = self._load_targets("", ())
            rows = self._conn.execute(
                "SELECT target, node, filter, grade, surplus, COUNT(*) FROM frames "
                "GROUP BY target, node, filter, grade, surplus").fetchall()
        out = {t.name: Progress.for_target(t) for t in targets}
        for target, node, filter_name, grade, surplus, n in rows:
            if target in out:
                _add(out[target].get(node, filter_name), grade, bool(surplus), n)
        return out

    # -- nodes and state --------------------------------------------------------------------------

    def note_node(self, name: str, role: str | None, filters: list[str], at: float | None = None) -> None:
        """Remember the filter wheel a node reported (its FILTER_NAME names; [] no wheel). A change is written
        at once; the same wheel again only refreshes ``seen_at`` every ``node_refresh_s``."""
        now = self._clock() if at is None else float(at)
        filters = tuple(filters)
        with self._lock:
            last = self._noted.get(name)
            if last is not None and last[:2] == (role, filters) and 0 <= now - last[2] < self._node_refresh_s:
                return
            with self.transaction():
                self._conn.execute(
                    "INSERT INTO nodes (name, role, filters, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                    "SET role = excluded.role, filters = excluded.filters, seen_at = excluded.seen_at",
                    (name, role, json.dumps(list(filters)), now))
            self._noted[name] = (role, filters, now)

    def nodes(self) -> dict[str, NodeInfo]:
        with self._reading():
            rows = self._conn.execute("SELECT name, role, filters, seen_at FROM nodes ORDER BY name").fetchall()
        return {name: NodeInfo(name, role, tuple(json.loads(filters)), seen_at) for name, role, filters, seen_at in rows}

    def get_state(self, key: str) -> dict | None:
        with self._reading():
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_state(self, key: str, value: dict) -> None:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise SeasonError(f"state {key!r} cannot be stored: {exc}; allowed: JSON values") from None
        with self.transaction():
            self._conn.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value, updated_at = excluded.updated_at", (key, text, self._clock()))


def _add(count: Count, grade: str, surplus: bool, n: int) -> None:
    if surplus:
        count.surplus += n
    elif grade == ACCEPTED:
        count.accepted += n
    elif grade == REJECTED:
        count.rejected += n
    elif grade == PENDING:
        count.pending += n


def _basename(path: str) -> str:
    """The file name of a path written on any node (a slave may report a Windows path)."""
    return PureWindowsPath(PurePosixPath(path).name).name


def _check(problems: list[tuple[str, str]], what: str) -> None:
    if problems:
        raise SeasonError(f"{what}: " + "; ".join(f"{path}: {problem}" for path, problem in problems))


def _constraints_json(c: Constraints) -> str:
    data = {key: value for key, value in (
        ("min_altitude", c.min_altitude), ("horizon", [list(p) for p in c.horizon] if c.horizon is not None else None),
        ("moon_separation", c.moon_separation), ("moon_width", c.moon_width), ("before_flip", c.before_flip),
    ) if value is not None}
    return json.dumps(data, sort_keys=True)


def _constraints_from(text: str, target: str) -> Constraints:
    try:
        data = json.loads(text or "{}")
        horizon = data.get("horizon")
        return Constraints(
            min_altitude=data.get("min_altitude"),
            horizon=tuple((float(az), float(alt)) for az, alt in horizon) if horizon is not None else None,
            moon_separation=data.get("moon_separation"), moon_width=data.get("moon_width"),
            before_flip=data.get("before_flip"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise SeasonError(f"target {target!r}: its stored constraints are unreadable ({exc}); store it again with "
                          "`indisync targets import --replace`") from None
