"""The season as YAML: projects, their targets and each target's exposure plan per node, for
``indisync targets import|export``. Export then import gives the same targets.

    projects:
      - name: spring-galaxies
        priority: 5
        targets:
          - name: M51
            ra: 202.4696          # J2000 degrees, or hours "13:29:52.7"
            dec: 47.1952          # degrees, or "+47:11:43"
            pa: 0                 # optional: position angle east of north (rotators)
            priority: 6           # optional, 1..10
            dates: {start: 2027-03-01, end: 2027-05-31}   # optional
            constraints: {min_altitude: 35, horizon: [[0, 20], [180, 25]], moon_separation: 90, moon_width: 10,
                          before_flip: true}              # optional, each defaults to the scheduler: section
            enabled: true         # optional
            plan:
              ota1: [{filter: Luminance, exposure: 300, count: 60}]
              ota2: [{filter: Red, exposure: 300, count: 20, binning: 1}, {filter: Green, exposure: 300, count: 20}]

Every bad value is a SeasonError naming the file, the path (``projects[0].targets[2].plan.ota2[1].count``)
and what is allowed; every problem of a file is reported at once. ``check_against_rig`` checks plan
nodes and filters against the wheels the nodes reported (``SeasonStore.nodes()``).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from ..acquire.geometry import parse_dec, parse_ra
from ..configtypes import ConfigValueError
from ..errors import SeasonError
from .checks import project_problems, target_problems
from .model import Constraints, PlanLine, Project, Target
from .settings import check_horizon

if TYPE_CHECKING:
    from .store import NodeInfo

PROJECT_KEYS = ("name", "priority", "description", "enabled", "targets")
TARGET_KEYS = ("name", "ra", "dec", "pa", "priority", "dates", "constraints", "enabled", "plan")
DATE_KEYS = ("start", "end")
CONSTRAINT_KEYS = ("min_altitude", "horizon", "moon_separation", "moon_width", "before_flip")
LINE_KEYS = ("filter", "exposure", "count", "binning")
MAX_LISTED = 20  # problems listed in one error (the rest are counted)


class _Bad(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


# -- loading ------------------------------------------------------------------------------------


def load_season(text: str, source: str) -> tuple[list[Project], list[Target]]:
    """Projects and targets of a season YAML text; ``source`` names it in errors (a file name)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeasonError(f"{source}: not valid YAML: {exc}") from None
    try:
        top = _mapping(data, "", ("projects",), required=("projects",),
                       what="a mapping with the key projects (a list of projects, each with its targets)")
        items = _list(top["projects"], "projects", "a list of projects")
        projects, targets, problems = [], [], []
        project_names: dict[str, str] = {}
        target_names: dict[str, str] = {}
        for i, item in enumerate(items):
            path = f"projects[{i}]"
            project, its_targets = _project(item, path)
            if project.name in project_names:
                raise _Bad(f"{path}.name", f"project {project.name!r} appears twice (also {project_names[project.name]}); "
                                           "allowed: each project once, with all its targets")
            project_names[project.name] = path
            problems += [(f"{path}.{p}", m) for p, m in project_problems(project)]
            projects.append(project)
            for j, target in its_targets:
                tpath = f"{path}.targets[{j}]"
                if target.name in target_names:
                    problems.append((f"{tpath}.name", f"target {target.name!r} appears twice (also "
                                                      f"{target_names[target.name]}); allowed: unique target names"))
                target_names.setdefault(target.name, tpath)
                problems += [(f"{tpath}.{p}", m) for p, m in target_problems(target)]
                targets.append(target)
    except _Bad as bad:
        raise SeasonError(f"{source}: {bad.path or 'top level'}: {bad.message}") from None
    if problems:
        raise SeasonError(_listing(source, problems))
    return projects, targets


def parse_target(data: Any, path: str, project: str) -> Target:
    """One target mapping (as in the file) -> Target; SeasonError naming ``path``. Used by
    ``indisync targets add`` too (then ``path`` names the command)."""
    try:
        target = _target(data, path, project)
    except _Bad as bad:
        raise SeasonError(f"{bad.path}: {bad.message}") from None
    problems = target_problems(target)
    if problems:
        raise SeasonError("; ".join(f"{_join(path, p)}: {m}" for p, m in problems))
    return target


def _project(data: Any, path: str) -> tuple[Project, list[tuple[int, Target]]]:
    m = _mapping(data, path, PROJECT_KEYS, required=("name",), what="a project mapping")
    name = _string(m["name"], f"{path}.name", "the project's name")
    project = Project(
        name=name,
        priority=_integer(m.get("priority", 5), f"{path}.priority", "an integer 0..10"),
        description=_string(m.get("description", ""), f"{path}.description", "text", empty=True),
        enabled=_boolean(m.get("enabled", True), f"{path}.enabled"),
    )
    items = _list(m.get("targets") or [], f"{path}.targets", "a list of targets")
    return project, [(j, _target(item, f"{path}.targets[{j}]", name)) for j, item in enumerate(items)]


def _target(data: Any, path: str, project: str) -> Target:
    m = _mapping(data, path, TARGET_KEYS, required=("name", "ra", "dec"), what="a target mapping")
    name = _string(m["name"], _join(path, "name"), "the target's name")
    dates = _mapping(m.get("dates") or {}, _join(path, "dates"), DATE_KEYS, required=(),
                     what="a mapping {start: YYYY-MM-DD, end: YYYY-MM-DD}")
    return Target(
        project=project,
        name=name,
        ra=_angle(m["ra"], _join(path, "ra"), parse_ra, 'degrees 0..360 or hours "13:29:52.7"'),
        dec=_angle(m["dec"], _join(path, "dec"), parse_dec, 'degrees -90..90 or "+47:11:43"'),
        plan=_plan(m.get("plan") or {}, _join(path, "plan")),
        pa=None if m.get("pa") is None else _number(m["pa"], _join(path, "pa"), "degrees 0..360 east of north, or null"),
        priority=_integer(m.get("priority", 5), _join(path, "priority"), "an integer 1..10"),
        start_date=_date(dates.get("start"), _join(path, "dates.start")),
        end_date=_date(dates.get("end"), _join(path, "dates.end")),
        constraints=_constraints(m.get("constraints") or {}, _join(path, "constraints")),
        enabled=_boolean(m.get("enabled", True), _join(path, "enabled")),
    )


def _plan(data: Any, path: str) -> tuple[PlanLine, ...]:
    if not isinstance(data, dict):
        raise _Bad(path, f"got {_show(data)}; allowed: a mapping of node name to a list of lines "
                         "[{filter: NAME, exposure: SECONDS, count: N, binning: 1}]")
    lines = []
    for node, items in data.items():
        npath = f"{path}.{node}"
        if not isinstance(node, str):
            raise _Bad(npath, f"node {node!r} is not a node name; allowed: the node's node.name ([a-z0-9-])")
        for k, item in enumerate(_list(items, npath, "a list of lines [{filter: NAME, exposure: SECONDS, count: N}]")):
            lpath = f"{npath}[{k}]"
            line = _mapping(item, lpath, LINE_KEYS, required=("exposure", "count"),
                            what="a line {filter: NAME, exposure: SECONDS, count: N, binning: 1}")
            filter_name = line.get("filter")
            if filter_name is not None:
                filter_name = _string(filter_name, f"{lpath}.filter", "a filter name from the node's wheel, or null")
            lines.append(PlanLine(
                node=node, filter=filter_name,
                exposure=_number(line["exposure"], f"{lpath}.exposure", "seconds > 0"),
                count=_integer(line["count"], f"{lpath}.count", "an integer >= 0 (desired accepted frames)"),
                binning=_integer(line.get("binning", 1), f"{lpath}.binning", "an integer 1..16"),
            ))
    return tuple(lines)


def _constraints(data: Any, path: str) -> Constraints:
    m = _mapping(data, path, CONSTRAINT_KEYS, required=(), what="a constraints mapping")
    horizon = m.get("horizon")
    if horizon is not None:
        try:
            horizon = tuple(check_horizon(horizon, f"{path}.horizon"))
        except ConfigValueError as exc:
            raise _Bad(exc.path, exc.message) from None
    before_flip = m.get("before_flip")
    return Constraints(
        min_altitude=_optional_number(m.get("min_altitude"), f"{path}.min_altitude", "degrees 0..90, or null"),
        horizon=horizon,
        moon_separation=_optional_number(m.get("moon_separation"), f"{path}.moon_separation", "degrees 0..180, or null"),
        moon_width=_optional_number(m.get("moon_width"), f"{path}.moon_width", "days > 0, or null"),
        before_flip=None if before_flip is None else _boolean(before_flip, f"{path}.before_flip"),
    )


# -- small typed readers ------------------------------------------------------------------------


def _mapping(value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...], what: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(path, f"got {_show(value)}; allowed: {what}")
    for key in value:
        if key not in allowed:
            raise _Bad(_join(path, str(key)), f"unknown key {key!r}; allowed keys: {', '.join(allowed)}")
    for key in required:
        if key not in value or value[key] is None:
            raise _Bad(_join(path, key), f"missing; {what} needs {', '.join(required)}")
    return value


def _list(value: Any, path: str, what: str) -> list:
    if not isinstance(value, list):
        raise _Bad(path, f"got {_show(value)}; allowed: {what}")
    return value


def _string(value: Any, path: str, what: str, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _Bad(path, f"got {_show(value)}; allowed: {what} (a non-empty string)" if not empty
                   else f"got {_show(value)}; allowed: {what}")
    return value


def _number(value: Any, path: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(path, f"got {_show(value)}; allowed: {what}")
    return float(value)


def _optional_number(value: Any, path: str, what: str) -> float | None:
    return None if value is None else _number(value, path, what)


def _integer(value: Any, path: str, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(path, f"got {_show(value)}; allowed: {what}")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(path, f"got {_show(value)}; allowed: true or false")
    return value


def _angle(value: Any, path: str, parse, what: str) -> float:
    if isinstance(value, bool):
        raise _Bad(path, f"got {_show(value)}; allowed: {what}")
    if isinstance(value, (int, float)):
        return float(value)  # the range is checked with the target (checks.target_problems)
    if isinstance(value, str):
        try:
            return parse(value)
        except ValueError as exc:
            raise _Bad(path, f"{exc}; allowed: {what}") from None
    raise _Bad(path, f"got {_show(value)}; allowed: {what}")


def _date(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        raise _Bad(path, f"got {value}; allowed: a date YYYY-MM-DD (no time)")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value  # its format is checked with the target (checks.target_problems)
    raise _Bad(path, f"got {_show(value)}; allowed: a date YYYY-MM-DD")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listing(source: str, problems: list[tuple[str, str]]) -> str:
    shown = [f"  {source}: {path}: {message}" for path, message in problems[:MAX_LISTED]]
    more = len(problems) - MAX_LISTED
    if more > 0:
        shown.append(f"  ... and {more} more")
    head = f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}; fix and import again:"
    return "\n".join([head] + shown) if len(problems) > 1 else f"{source}: {problems[0][0]}: {problems[0][1]}"


# -- dumping ------------------------------------------------------------------------------------


class _Flow(list):
    """A list YAML writes on one line ([a, b])."""


class _FlowMap(dict):
    """A mapping YAML writes on one line ({a: 1})."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)  # lists indented under their key


_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(),
                                                                   flow_style=True))


def dump_season(projects: Iterable[Project], targets: Iterable[Target]) -> str:
    """The season as YAML (the format above); ``load_season`` of it gives the same projects and targets.
    A target's project missing from ``projects`` is written with the defaults."""
    projects = list(projects)
    targets = list(targets)
    known = {p.name for p in projects}
    for t in targets:
        if t.project not in known:
            projects.append(Project(t.project))
            known.add(t.project)
    out = []
    for project in projects:
        entry: dict[str, Any] = {"name": project.name, "priority": project.priority}
        if project.description:
            entry["description"] = project.description
        if not project.enabled:
            entry["enabled"] = False
        entry["targets"] = [_target_data(t) for t in targets if t.project == project.name]
        out.append(entry)
    header = (f"# indisync season: {len(projects)} project{'s' if len(projects) != 1 else ''}, {len(targets)} "
              f"target{'s' if len(targets) != 1 else ''} (indisync targets import FILE)\n")
    return header + yaml.dump({"projects": out}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def target_data(target: Target) -> dict:
    """A target as plain data in the file's shape (for JSON too)."""
    return _plain(_target_data(target))


def _target_data(t: Target) -> dict:
    entry: dict[str, Any] = {"name": t.name, "ra": t.ra, "dec": t.dec}
    if t.pa is not None:
        entry["pa"] = _compact(t.pa)
    entry["priority"] = t.priority
    if t.start_date or t.end_date:
        entry["dates"] = _FlowMap({k: _as_date(v) for k, v in (("start", t.start_date), ("end", t.end_date)) if v})
    c = t.constraints
    horizon = _Flow(_Flow(_compact(v) for v in p) for p in c.horizon) if c.horizon is not None else None
    constraints = {k: _compact(v) if isinstance(v, float) else v
                   for k, v in (("min_altitude", c.min_altitude), ("horizon", horizon),
                                ("moon_separation", c.moon_separation), ("moon_width", c.moon_width),
                                ("before_flip", c.before_flip)) if v is not None}
    if constraints:
        entry["constraints"] = _FlowMap(constraints)
    if not t.enabled:
        entry["enabled"] = False
    plan: dict[str, list] = {}
    for line in t.plan:
        item = _FlowMap({"filter": line.filter, "exposure": _compact(line.exposure), "count": line.count})
        if line.binning != 1:
            item["binning"] = line.binning
        plan.setdefault(line.node, []).append(item)
    entry["plan"] = plan
    return entry


def _compact(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _as_date(text: str):
    try:
        return date.fromisoformat(text)  # written as a YAML date (unquoted)
    except ValueError:
        return text


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


# -- against the rig ----------------------------------------------------------------------------


def check_against_rig(targets: Iterable[Target], nodes: dict[str, "NodeInfo"]) -> None:
    """Every plan line's node must be one the rig reported, and its filter on that node's wheel.
    SeasonError listing every problem (target, node, filter, what the wheel has) and the fix."""
    targets = list(targets)
    if not nodes:
        if not any(t.plan for t in targets):
            return
        raise SeasonError(
            "no node has reported its filter wheel yet, so plan nodes and filters cannot be checked (the master "
            "notes each node's wheel when it sees its state). Start the rig once so every node reports its wheel, "
            "or pass --no-check to skip the check")
    known = ", ".join(sorted(nodes))
    problems = []
    for t in targets:
        index: dict[str, int] = {}
        for line in t.plan:
            k = index.get(line.node, 0)
            index[line.node] = k + 1
            where = f"target {t.name}: plan.{line.node}[{k}]"
            info = nodes.get(line.node)
            if info is None:
                problems.append(f"{where}: node {line.node!r} is not a node of the rig (known: {known}); use one of "
                                "those names (its node.name), or start that node once so it reports its wheel")
            elif line.filter is not None and not info.filters:
                problems.append(f"{where}: {line.node} reported no filter wheel, but the plan names filter "
                                f"{line.filter!r}; use filter: null for {line.node}")
            elif line.filter is not None and line.filter not in info.filters:
                problems.append(f"{where}: filter {line.filter!r} is not in {line.node}'s wheel (it has: "
                                f"{', '.join(info.filters)}); use one of those names")
    if problems:
        shown = problems[:MAX_LISTED] + ([f"... and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED
                                         else [])
        raise SeasonError("\n  ".join([f"{len(problems)} plan line{'s' if len(problems) != 1 else ''} do not match "
                                       "the rig:"] + shown) if len(problems) > 1 else problems[0])
