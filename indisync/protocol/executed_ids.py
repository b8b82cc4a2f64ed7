"""The command ids a node has executed, with their latest reply: bounded, and kept on disk (a journal
of one JSON line per change, compacted atomically) so a restarted node never runs an id again.

Split from commands.py, which serves the commands; this only remembers them.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

from ..errors import IndisyncError

log = logging.getLogger(__name__)

REMEMBERED_IDS = 4096  # command ids (with their latest reply) kept for answering redeliveries


class ExecutedIds:
    """The last ``limit`` command ids with their latest reply; with ``path``, kept on disk.

    The file is a journal, one JSON line per record (``{"id": ..., "reply": {...}}``), appended
    with a single write each, so a crash leaves at most a torn last line, which loading skips.
    An ``accepted`` record is written and flushed to the OS *before* its command runs, so it
    survives the process being killed (kill -9, a crash, systemd's restart). It is not fsync'd:
    that costs tens of ms on a Pi's SD card, on the path from the master's command to the shutter,
    and only a power cut could lose it, after which the node is down far longer than
    ``mqtt.command_expiry`` and the age check refuses the old command anyway. When the journal has
    grown to twice ``limit`` lines it is rewritten to a temporary file and renamed over the old
    one (atomic). An id whose last record is ``accepted`` or ``progress`` was running when the node
    stopped: on loading it becomes ``failed`` ("interrupted by a restart"), so a redelivery gets a
    final answer instead of running it a second time.
    """

    def __init__(self, path: str | Path | None = None, limit: int = REMEMBERED_IDS):
        self.path = Path(path) if path is not None else None
        self.limit = limit
        self._replies: OrderedDict[str, dict] = OrderedDict()
        self._file = None
        self._lines = 0
        if self.path is not None:
            self._load()

    def get(self, command_id: str) -> dict | None:
        reply = self._replies.get(command_id)
        if reply is not None:
            self._replies.move_to_end(command_id)
        return reply

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._replies

    def __len__(self) -> int:
        return len(self._replies)

    def put(self, command_id: str, reply: dict) -> None:
        """Remember ``reply`` as ``command_id``'s latest, in the journal (flushed) before this returns."""
        self._replies[command_id] = reply
        self._replies.move_to_end(command_id)
        while len(self._replies) > self.limit:
            self._replies.popitem(last=False)
        if self._file is None or reply.get("status") == "progress":
            return  # progress is not worth a disk write: after a restart it reads as interrupted anyway
        try:
            self._file.write(json.dumps({"id": command_id, "reply": reply}, separators=(",", ":")) + "\n")
            self._file.flush()
            self._lines += 1
            if self._lines > 2 * self.limit:
                self._compact()
        except (OSError, TypeError, ValueError) as exc:
            # Memory still holds it, so this run stays exactly-once; only a restart could repeat it.
            log.error("could not record command %s in %s: %s", command_id, self.path, exc)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _load(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
            except FileNotFoundError:
                lines = []
            self._restore(lines)
        except OSError as exc:
            raise IndisyncError(
                f"cannot keep the ids of commands run in {self.path}: {exc.strerror or exc}; "
                "make storage.directory writable for this node's user"
            ) from None

    def _restore(self, lines: list[str]) -> None:
        bad = 0
        for line in lines:
            try:
                record = json.loads(line)
                command_id, reply = record["id"], record["reply"]
                if not isinstance(command_id, str) or not isinstance(reply, dict) or "status" not in reply:
                    raise ValueError("not a record")
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            self._replies[command_id] = reply
            self._replies.move_to_end(command_id)
        if bad:
            log.warning("%s: skipped %d unreadable line(s) (a write cut short by a crash)", self.path, bad)
        while len(self._replies) > self.limit:
            self._replies.popitem(last=False)
        for command_id, reply in self._replies.items():
            if reply.get("status") in ("accepted", "progress"):
                self._replies[command_id] = {
                    "command_id": command_id, "command": reply.get("command", "ping"), "status": "failed",
                    "reason": "interrupted: the node restarted while running this command; it is not run again",
                }
        self._compact()
        log.info("%s: %d command ids remembered from earlier runs", self.path, len(self._replies))

    def _compact(self) -> None:
        """Rewrite the journal as one line per remembered id, atomically."""
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for command_id, reply in self._replies.items():
                f.write(json.dumps({"id": command_id, "reply": reply}, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
        self._lines = len(self._replies)
        self._file = open(self.path, "a", encoding="utf-8")
