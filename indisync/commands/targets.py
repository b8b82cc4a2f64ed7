"""`indisync targets`: the season's targets and goals in the master's database
(``{storage.directory}/indisync.db``, or ``--db PATH``).

    indisync targets add M51 --ra 13:29:52.7 --dec 47.1952 --project galaxies --plan ota1:Luminance:300:60 ota2:Red:300:20
    indisync targets list [--json]
    indisync targets show M51 [--json]
    indisync targets remove M51
    indisync targets import season.yaml [--replace]
    indisync targets export [FILE|-]

Plan nodes and filters are checked against the filter wheels the nodes reported to the master (the
store's ``nodes``); ``--no-check`` skips that (a rig not started yet).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import SeasonError

HELP = "the season's targets and goals: add, list, show, remove, import, export (the master's indisync.db)"

PLAN_FORMAT = "NODE:FILTER:EXPOSURE:COUNT[:BIN]"


def add_arguments(parser) -> None:
    # Options every action takes, accepted after the action too (`indisync targets list --config c.yaml`).
    # SUPPRESS: an action's parser sets them only when given, so a value given before the action stays.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", help="the season database (default: {storage.directory}/indisync.db)")
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="YAML config file")
    common.add_argument("--indi", metavar="HOST:PORT", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("add", parents=[common], help="add a target (or replace one with --replace)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--ra", required=True, help="J2000: degrees (202.4696) or hours (13:29:52.7)")
    p.add_argument("--dec", required=True,
                   help="J2000: degrees (47.1952) or d:m:s (+47:11:43; a negative one as --dec=-05:30:00)")
    p.add_argument("--project", default="default", help="its project (created when missing; default: default)")
    p.add_argument("--pa", type=float, help="position angle, degrees east of north (rotators); default: none")
    p.add_argument("--priority", type=int, default=5, help="1 (low) .. 10 (high); default 5")
    p.add_argument("--plan", nargs="+", action="extend", default=[], metavar=PLAN_FORMAT,
                   help="exposure plan lines, e.g. ota1:Luminance:300:60 ota2:Red:300:20:2 "
                        "(FILTER empty for a node without a wheel: ota3::300:20)")
    p.add_argument("--min-altitude", type=float, help="degrees (default: scheduler.min_altitude)")
    p.add_argument("--start-date", metavar="YYYY-MM-DD", help="not before this night")
    p.add_argument("--end-date", metavar="YYYY-MM-DD", help="not after this night")
    p.add_argument("--replace", action="store_true", help="replace a target of that name (its frames are kept)")
    p.add_argument("--no-check", action="store_true", help="do not check nodes and filters against the rig's wheels")

    p = sub.add_parser("list", parents=[common], help="every target: project, priority, RA/Dec, done per node")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("show", parents=[common], help="one target: its plan and counts per node and filter")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("remove", parents=[common], help="remove a target (its frames stay on disk and in the database)")
    p.add_argument("name", metavar="NAME")

    p = sub.add_parser("import", parents=[common], help="add the projects and targets of a YAML file")
    p.add_argument("file", metavar="FILE", help="a season YAML file ('-': standard input)")
    p.add_argument("--replace", action="store_true", help="replace targets and projects that exist (frames are kept)")
    p.add_argument("--no-check", action="store_true", help="do not check nodes and filters against the rig's wheels")

    p = sub.add_parser("export", parents=[common], help="write every project and target as YAML")
    p.add_argument("file", metavar="FILE", nargs="?", default="-", help="output file ('-', the default: standard output)")


def run(args, cfg) -> int:
    from ..season.store import db_path

    path = Path(args.db) if args.db else db_path(cfg)
    return ACTIONS[args.action](args, path)


# -- actions ------------------------------------------------------------------------------------


def _add(args, path: Path) -> int:
    from ..season.store import SeasonStore
    from ..season.yamlio import check_against_rig, parse_target

    data: dict = {"name": args.name, "ra": args.ra, "dec": args.dec, "priority": args.priority,
                  "plan": _plan_from_args(args.plan)}
    if args.pa is not None:
        data["pa"] = args.pa
    if args.start_date or args.end_date:
        data["dates"] = {k: v for k, v in (("start", args.start_date), ("end", args.end_date)) if v}
    if args.min_altitude is not None:
        data["constraints"] = {"min_altitude": args.min_altitude}
    try:
        target = parse_target(data, "", args.project)
    except SeasonError as exc:
        raise SeasonError(f"target {args.name!r}: {exc}") from None
    with SeasonStore(path) as store:
        if not args.no_check:
            check_against_rig([target], store.nodes())
        existed = store.target(target.name) is not None
        if existed and not args.replace:
            raise SeasonError(f"target {target.name!r} exists already in {path}; add --replace to replace it (its "
                              "frames are kept), or `indisync targets remove` it first")
        stored = store.upsert_target(target)
    print(f"{'replaced' if existed else 'added'} {stored.name} (project {stored.project}, {len(stored.plan)} plan "
          f"line{'s' if len(stored.plan) != 1 else ''}) in {path}")
    if not stored.plan:
        print("note: no plan lines, so the scheduler treats it as complete; add them with --plan ... --replace")
    return 0


def _list(args, path: Path) -> int:
    targets, projects, progress = _read(path)
    prio = {p.name: p.priority for p in projects}
    rows = [_summary(t, prio.get(t.project, 0), progress[t.name]) for t in targets]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no targets in {path}; add some with `indisync targets add` or `indisync targets import FILE`")
        return 0
    table = [("TARGET", "PROJECT", "PRIO", "RA", "DEC", "DONE", "PER NODE (accepted+pending/desired)")]
    for r in rows:
        nodes = "  ".join(f"{n} {v['done']}/{v['desired']}" for n, v in r["nodes"].items()) or "(no plan)"
        table.append((r["name"] + ("" if r["enabled"] else " (off)"), r["project"],
                      f"{r['priority']}+{r['project_priority']}", hours(r["ra"]), degrees(r["dec"]),
                      f"{r['done_percent']:.0f}%", nodes))
    print(_columns(table))
    return 0


def _show(args, path: Path) -> int:
    from ..season.yamlio import target_data

    targets, projects, progress = _read(path, name=args.name)
    if not targets:
        raise SeasonError(f"no target {args.name!r} in {path}; `indisync targets list` shows the names")
    target = targets[0]
    project = next((p for p in projects if p.name == target.project), None)
    counts = progress[target.name]
    summary = _summary(target, project.priority if project else 0, counts)
    lines = []
    for line in target.plan:
        c = counts.get(line.node, line.filter)
        lines.append({"node": line.node, "filter": line.filter, "exposure": line.exposure, "binning": line.binning,
                      **c.to_dict()})
    planned = {line.key() for line in target.plan}
    for (node, filter_name), c in sorted(counts.counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if (node, filter_name) not in planned:  # frames taken with a filter the plan does not (or no longer) hold
            lines.append({"node": node, "filter": filter_name, "exposure": None, "binning": None, **c.to_dict()})
    if args.json:
        print(json.dumps({"target": target_data(target), "project": target.project,
                          "project_priority": summary["project_priority"], "done_percent": summary["done_percent"],
                          "complete": summary["complete"], "lines": lines}, indent=1))
        return 0
    c = target.constraints
    print(f"{target.name}  (project {target.project}, priority {target.priority} + {summary['project_priority']}"
          f"{', disabled' if not target.enabled else ''})")
    print(f"RA {hours(target.ra)} ({target.ra:.4f}°)  Dec {degrees(target.dec)} ({target.dec:.4f}°)"
          + (f"  PA {target.pa:g}°" if target.pa is not None else ""))
    if target.start_date or target.end_date:
        print(f"dates {target.start_date or '…'} .. {target.end_date or '…'}")
    own = [f"{k} {json.dumps(v)}" for k, v in target_data(target).get("constraints", {}).items()]
    print("constraints " + (", ".join(own) if own else "(the scheduler: defaults)"))
    print(f"done {summary['done_percent']:.0f}% of the desired exposure time"
          + (" (complete)" if summary["complete"] else ""))
    table = [("NODE", "FILTER", "EXP", "BIN", "DESIRED", "ACCEPTED", "REJECTED", "PENDING", "SURPLUS")]
    for r in lines:
        table.append((r["node"], r["filter"] or "-", f"{r['exposure']:g}s" if r["exposure"] else "-",
                      str(r["binning"] or "-"), str(r["desired"]), str(r["accepted"]), str(r["rejected"]),
                      str(r["pending"]), str(r["surplus"])))
    print(_columns(table))
    return 0


def _remove(args, path: Path) -> int:
    from ..season.store import SeasonStore

    if not path.exists():
        raise SeasonError(f"no target {args.name!r}: there is no season database at {path} yet")
    with SeasonStore(path, create=False) as store:
        frames = len(store.frames(target=args.name))
        if not store.remove_target(args.name):
            raise SeasonError(f"no target {args.name!r} in {path}; `indisync targets list` shows the names")
    print(f"removed {args.name} from {path} ({frames} frame record{'s' if frames != 1 else ''} kept; files are "
          "untouched; adding it again under the same name counts them again)")
    return 0


def _import(args, path: Path) -> int:
    from ..season.store import SeasonStore
    from ..season.yamlio import check_against_rig, load_season

    if args.file == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        try:
            text, source = Path(args.file).read_text(), args.file
        except OSError as exc:
            raise SeasonError(f"cannot read {args.file}: {exc.strerror}; give a season YAML file "
                              "(`indisync targets export` writes one)") from None
    projects, targets = load_season(text, source)
    with SeasonStore(path) as store:
        if not args.no_check:
            check_against_rig(targets, store.nodes())
        with store.transaction():  # all or nothing
            existing = {t.name for t in store.targets()}
            clash = [t.name for t in targets if t.name in existing]
            if clash and not args.replace:
                raise SeasonError(f"{source}: target{'s' if len(clash) > 1 else ''} {', '.join(clash)} exist"
                                  f"{'' if len(clash) > 1 else 's'} already in {path}; add --replace to replace "
                                  "them (their frames are kept), or rename them in the file")
            known = {p.name for p in store.projects()}
            for project in projects:
                if args.replace or project.name not in known:
                    store.upsert_project(project)
            for target in targets:
                store.upsert_target(target)
    replaced = sum(1 for t in targets if t.name in existing)
    print(f"imported {len(targets)} target{'s' if len(targets) != 1 else ''} ({len(targets) - replaced} new, "
          f"{replaced} replaced) in {len(projects)} project{'s' if len(projects) != 1 else ''} into {path}")
    return 0


def _export(args, path: Path) -> int:
    from ..season.yamlio import dump_season

    targets, projects, _ = _read(path, with_progress=False)
    text = dump_season(projects, targets)
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.file)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, out)  # atomic: an interrupted export leaves the old file
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SeasonError(f"cannot write {out}: {exc.strerror}; check the path") from None
    print(f"exported {len(targets)} target{'s' if len(targets) != 1 else ''} in {len(projects)} "
          f"project{'s' if len(projects) != 1 else ''} to {out}", file=sys.stderr)
    return 0


ACTIONS = {"add": _add, "list": _list, "show": _show, "remove": _remove, "import": _import, "export": _export}


# -- helpers ------------------------------------------------------------------------------------


def _read(path: Path, name: str | None = None, with_progress: bool = True):
    """(targets, projects, progress) of the database; a database not created yet reads as empty."""
    from ..season.store import SeasonStore

    if not path.exists():
        return [], [], {}
    with SeasonStore(path, create=False) as store:
        if name is not None:
            target = store.target(name)
            targets = [target] if target else []
            progress = {t.name: store.progress(t) for t in targets}
        else:
            targets = store.targets()
            progress = store.progress_all() if with_progress else {}
        return targets, store.projects(), progress


def _plan_from_args(items: list[str]) -> dict:
    """--plan NODE:FILTER:EXPOSURE:COUNT[:BIN] ... -> the YAML plan mapping (checked by parse_target)."""
    plan: dict[str, list] = {}
    for text in items:
        parts = text.split(":")
        if len(parts) not in (4, 5) or not parts[0]:
            raise SeasonError(f"--plan {text!r}: expected {PLAN_FORMAT}, for example ota2:Red:300:20 or "
                              "ota2:Red:300:20:2 (FILTER empty for a node without a wheel: ota3::300:20)")
        node, filter_name, exposure, count, *binning = parts
        try:
            line = {"filter": filter_name or None, "exposure": float(exposure), "count": int(count)}
            if binning:
                line["binning"] = int(binning[0])
        except ValueError:
            raise SeasonError(f"--plan {text!r}: EXPOSURE must be seconds and COUNT (and BIN) whole numbers, as in "
                              "ota2:Red:300:20:2") from None
        plan.setdefault(node, []).append(line)
    return plan


def _summary(target, project_priority: int, progress) -> dict:
    nodes = {}
    for node in target.nodes:
        lines = target.lines_for(node)
        desired = sum(line.count for line in lines)
        done = sum(min(line.count, progress.get(node, line.filter).counted) for line in lines)
        nodes[node] = {"done": done, "desired": desired}
    return {
        "name": target.name, "project": target.project, "priority": target.priority,
        "project_priority": project_priority, "ra": target.ra, "dec": target.dec, "pa": target.pa,
        "enabled": target.enabled, "start_date": target.start_date, "end_date": target.end_date,
        "done_percent": round(100.0 * (1.0 - progress.fraction_needed(target)), 1) if target.plan else 100.0,
        "complete": progress.complete(target), "nodes": nodes,
    }


def hours(ra_deg: float) -> str:
    """RA degrees -> 'hh:mm:ss.s'."""
    tenths = round(ra_deg / 15.0 * 36000) % (24 * 36000)
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    return f"{h:02d}:{m:02d}:{rest / 10:04.1f}"


def degrees(dec_deg: float) -> str:
    """Dec degrees -> '+dd:mm:ss'."""
    sign = "-" if dec_deg < 0 else "+"
    seconds = round(abs(dec_deg) * 3600)
    d, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{d:02d}:{m:02d}:{s:02d}"


def _columns(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)
