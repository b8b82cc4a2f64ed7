"""`indisync report`: the night report (HTML page, JSON, PNG figures) of a night log."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import IndisyncError

HELP = "write the night report (index.html, report.json, PNGs) of a night log (default: the latest night)"


def add_arguments(parser) -> None:
    parser.add_argument("night", nargs="?", metavar="NIGHT.jsonl",
                        help="a night log (default: the newest in record.directory / {storage.directory}/nights)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: report-<night> beside the log)")
    parser.add_argument("--json", action="store_true", help="print the report's JSON summary of nodes")


def run(args, cfg: Config) -> int:
    import json

    from ..record.nightlog import latest_night
    from ..record.report import write_report
    from ..record.season import season_db
    from ..record.service import nights_directory
    from ..timezones import site_zone

    if args.night:
        path = Path(args.night)
        if not path.is_file():
            raise IndisyncError(f"{path}: no such night log; give a YYYY-MM-DD.jsonl file written by the master "
                                "or `indisync record`")
    else:
        directory = nights_directory(cfg)
        path = latest_night(directory)
        if path is None:
            raise IndisyncError(f"no night log in {directory}; give one as NIGHT.jsonl or set --config")
    index = write_report(path, args.out, zone=site_zone(cfg), starts_hour=cfg.record.night_starts_hour,
                         season_db=season_db(cfg))
    if args.json:
        print(json.dumps(json.loads((index.parent / "report.json").read_text())["nodes"], indent=1))
    print(f"night report: {index}")
    return 0
