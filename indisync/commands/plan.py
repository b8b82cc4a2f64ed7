"""`indisync plan`: tonight's season plan (or that date's night) from the season database — which
target when, the frames per OTA, and why: each candidate's score or the constraint that excluded it."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

from ..errors import ConfigError

HELP = "tonight's season plan: which target when, the frames per OTA and why (scores, the constraints that exclude)"


def add_arguments(parser) -> None:
    parser.add_argument("--date", metavar="YYYY-MM-DD", help="plan the night starting that evening (default: tonight, "
                                                            "from now when it is under way)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--png", metavar="FILE", help="also draw the timeline (altitudes, blocks, sun, moon) to FILE")
    parser.add_argument("--db", metavar="PATH", help="the season database (default: {storage.directory}/indisync.db)")


def run(args, cfg) -> int:
    from ..astro.site import date_start
    from ..season.ephem import sky_for_night
    from ..season.planview import build_view, draw_timeline, render
    from ..season.scheduler import plan_night
    from ..season.settings import SchedulerSettings
    from ..season.store import SeasonStore, db_path

    site = cfg.site
    if site is None:
        raise ConfigError("indisync plan needs the site: add site: {latitude: .., longitude: .., elevation: .., "
                          "timezone: ..} to the config (the mount's GEOGRAPHIC_COORD is not read for planning)")
    settings = cfg.scheduler or SchedulerSettings()
    now = time.time()
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise ConfigError(f"--date {args.date!r}: expected YYYY-MM-DD, for example 2027-03-01") from None
        when = date_start(site, day).timestamp()
        start = None
    else:
        when = now
        start = now
    path = Path(args.db) if args.db else db_path(cfg)
    with SeasonStore(path, create=False) as store:
        targets = store.targets(enabled_only=True)
        progress = store.progress_all()
        projects = {p.name: p for p in store.projects()}
    targets = [t for t in targets if projects.get(t.project) is None or projects[t.project].enabled]
    sky = sky_for_night(site, when)
    plan = plan_night(targets, progress, sky, settings, start=start,
                      project_priority={name: p.priority for name, p in projects.items()})
    zone = site.zone
    if args.png:
        png = Path(args.png)
        if not png.parent.is_dir():
            raise ConfigError(f"--png {args.png}: the folder {png.parent} does not exist")
        draw_timeline(plan, sky, targets, settings, zone, png)
    if args.json:
        view = build_view(plan, sky, settings, site, zone)
        view["database"] = str(path)
        view["scheduler_section"] = cfg.scheduler is not None
        if args.png:
            view["png"] = str(args.png)
        print(json.dumps(view, indent=2))
        return 0
    if cfg.scheduler is None:
        print("(no scheduler: section in the config: its defaults are used)")
    print(render(plan, sky, settings, site, zone))
    if args.png:
        print(f"timeline: {args.png}")
    return 0
