"""Recording wired for a node or a watcher: the night log's writer and recorder on a transport, and
the report at the end of the night."""

from __future__ import annotations

import logging
from pathlib import Path

from ..timezones import site_zone
from .nightlog import NightLogWriter
from .recorder import NightRecorder

log = logging.getLogger(__name__)


def nights_directory(cfg) -> Path:
    return Path(cfg.record.directory or Path(cfg.storage.directory) / "nights")


class NightRecording:
    def __init__(self, cfg, transport, topic_tree):
        self.cfg = cfg
        # the night's date on the site's clock (site.timezone), not the container's
        self.zone = site_zone(cfg)
        self.writer = NightLogWriter(nights_directory(cfg), cfg.record.night_starts_hour, zone=self.zone)
        self.recorder = NightRecorder(transport, topic_tree, self.writer)
        self.report_path: Path | None = None

    @classmethod
    def for_node(cls, cfg, transport, topic_tree) -> "NightRecording | None":
        return cls(cfg, transport, topic_tree) if cfg.record.enabled else None

    def write_report(self) -> Path | None:
        """The report of the current night log; logged, never raises (the night must end cleanly)."""
        if not self.cfg.record.report:
            return None
        self.recorder.flush()
        if self.writer.path is None:
            return None
        from .report import write_report
        from .season import season_db

        try:
            self.report_path = write_report(self.writer.path, zone=self.zone,
                                            starts_hour=self.cfg.record.night_starts_hour,
                                            season_db=season_db(self.cfg))
        except Exception:  # noqa: BLE001 - a report problem must not break the end of the night
            log.exception("could not write the night report of %s", self.writer.path)
            return None
        log.info("night report: %s", self.report_path)
        self.recorder.note("report_written", path=str(self.report_path))
        return self.report_path

    def close(self) -> None:
        self.recorder.close()
        self.writer.close()
