"""A small JSON state file per node: the master's progress and the slave's filter rotation.

Written atomically (temp file in the same directory, fsync, ``os.replace``, fsync of the directory)
so a power cut leaves either the old or the new state, never half of one. Before each write the
current file is hard-linked to ``<name>.bak``. Reading a corrupt file (edited by hand, a failing SD
card) falls back to the backup with a warning and keeps the corrupt file as ``<name>.corrupt``
for inspection; with no usable backup it raises StateError naming the file and the fix. It never
silently starts over: a missing file is logged as a fresh start.

Layout: ``{"version": 1, "sections": {"master": {...}, "rotation": {...}}}``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import StateError
from .naming import fsync_dir as _fsync_dir
from .plan import MasterProgress

log = logging.getLogger(__name__)

STATE_VERSION = 1
MASTER_SECTION = "master"
ROTATION_SECTION = "rotation"


class _Unreadable(Exception):
    pass


def _read(path: Path) -> dict[str, dict]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise _Unreadable(f"cannot read it: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unreadable(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("sections"), dict):
        raise _Unreadable("not an indisync state file (no 'sections' mapping)")
    if data.get("version") != STATE_VERSION:
        raise _Unreadable(f"state version {data.get('version')!r}, this indisync reads version {STATE_VERSION}")
    sections = data["sections"]
    if not all(isinstance(v, dict) for v in sections.values()):
        raise _Unreadable("a section is not a mapping")
    return sections


class StateStore:
    """Sections of node state (plain JSON mappings) kept in one file; ``put`` writes it at once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".bak")
        self.corrupt_path = self.path.with_name(self.path.name + ".corrupt")
        self._sections = self._load()

    def _load(self) -> dict[str, dict]:
        if not self.path.exists():
            log.info("no state file at %s: starting from the beginning", self.path)
            return {}
        try:
            return _read(self.path)
        except _Unreadable as main_problem:
            problem = f"state file {self.path} is corrupt: {main_problem}"
        try:
            sections = _read(self.backup_path)
        except _Unreadable as backup_problem:
            backup = f"its backup {self.backup_path} is unusable too ({backup_problem})" if self.backup_path.exists() \
                else f"there is no backup {self.backup_path}"
            raise StateError(
                f"{problem}; {backup}. Repair the file, or move it aside to start the sequence and the "
                "filter rotation from the beginning."
            ) from None
        os.replace(self.path, self.corrupt_path)
        log.warning("%s; using the backup %s (the corrupt file is kept as %s)", problem, self.backup_path, self.corrupt_path)
        return sections

    def get(self, section: str) -> dict | None:
        value = self._sections.get(section)
        return dict(value) if value is not None else None

    def put(self, section: str, value: dict[str, Any]) -> None:
        """Set one section and write the whole file atomically (the previous file becomes .bak)."""
        sections = dict(self._sections)
        sections[section] = dict(value)
        self._write(sections)
        self._sections = sections

    def _write(self, sections: dict[str, dict]) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": STATE_VERSION, "sections": sections}, indent=1, sort_keys=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            if self.path.exists():
                self._keep_backup()
            os.replace(tmp_name, self.path)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(directory)

    def _keep_backup(self) -> None:
        link_tmp = self.backup_path.with_name(self.backup_path.name + ".tmp")
        try:
            if os.path.lexists(link_tmp):
                os.unlink(link_tmp)
            os.link(self.path, link_tmp)
            os.replace(link_tmp, self.backup_path)
        except OSError as exc:  # no hard links (FAT): the atomic replace still protects the state
            log.debug("no backup of %s: %s", self.path, exc)


def load_master_progress(store: StateStore) -> MasterProgress:
    """The saved master progress, or a fresh one (batch 1, frame 0) if none is saved."""
    data = store.get(MASTER_SECTION)
    if data is None:
        return MasterProgress()
    try:
        return MasterProgress.from_dict(data)
    except ValueError as exc:
        raise StateError(f"{store.path}: {exc}. Repair the file or move it aside to start from batch 1.") from None


def save_master_progress(store: StateStore, progress: MasterProgress) -> None:
    store.put(MASTER_SECTION, progress.to_dict())
