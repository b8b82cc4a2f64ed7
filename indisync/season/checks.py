"""What makes a project or a target valid, in one place: the YAML import names problems by their
path in the file, the store and ``indisync targets add`` by the target's name. Pure, stdlib only.

Each check returns ``[(path, problem)]`` with paths relative to the target (``ra``,
``plan.ota2[1].count``, ``constraints.min_altitude``); the problem says what was given and what is
allowed. An empty list: valid.
"""

from __future__ import annotations

import math
from datetime import date

from ..configtypes import ConfigValueError
from ..protocol.schema import SAFE_NAME
from ..protocol.topics import NODE_NAME
from ..sequence.naming import unsafe_name_reason
from .model import Constraints, PlanLine, Project, Target
from .settings import check_horizon

TARGET_PRIORITY = (1, 10)  # model.Target: 1 (low) .. 10 (high)
PROJECT_PRIORITY = (0, 10)  # added to each of its targets' priority
MAX_BINNING = 16
MAX_PROJECT_NAME = 128  # the season state's ``project`` field (protocol.messages.SEASON)

TARGET_NAME_RULE = ("1-64 of letters, digits, space and ._+- starting with a letter, digit or '_', without '..' "
                    "(it names files and goes on the wire)")


def target_name_problem(name) -> str | None:
    """Why ``name`` cannot name a target (file names, OBJECT, the wire's ``safe_name``), or None."""
    if not isinstance(name, str):
        return f"got {name!r}; allowed: {TARGET_NAME_RULE}"
    reason = unsafe_name_reason(name)
    if reason is not None or not SAFE_NAME.match(name) or ".." in name or name.endswith(" "):
        return f"got {name!r}; allowed: {TARGET_NAME_RULE}"
    return None


def project_problems(project: Project) -> list[tuple[str, str]]:
    out = []
    name = project.name
    reason = unsafe_name_reason(name) if isinstance(name, str) else "must be a string"
    if reason is None and len(name) > MAX_PROJECT_NAME:
        reason = f"must be at most {MAX_PROJECT_NAME} characters"
    if reason is not None:
        out.append(("name", f"got {name!r}; {reason}"))
    if not _int_in(project.priority, *PROJECT_PRIORITY):
        out.append(("priority", f"got {project.priority!r}; allowed: an integer {PROJECT_PRIORITY[0]}..{PROJECT_PRIORITY[1]}"))
    return out


def target_problems(target: Target) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    problem = target_name_problem(target.name)
    if problem:
        out.append(("name", problem))
    if not _number_in(target.ra, 0, 360, upper_open=True):
        out.append(("ra", f"got {target.ra!r}; allowed: degrees 0..360 (or hours as \"13:29:52.7\")"))
    if not _number_in(target.dec, -90, 90):
        out.append(("dec", f"got {target.dec!r}; allowed: degrees -90..90 (or \"+47:11:43\")"))
    if target.pa is not None and not _number_in(target.pa, 0, 360, upper_open=True):
        out.append(("pa", f"got {target.pa!r}; allowed: degrees 0..360 east of north, or null (no rotation)"))
    if not _int_in(target.priority, *TARGET_PRIORITY):
        out.append(("priority", f"got {target.priority!r}; allowed: an integer {TARGET_PRIORITY[0]}..{TARGET_PRIORITY[1]}"))
    out.extend(_date_problems(target))
    out.extend(constraints_problems(target.constraints))
    out.extend(plan_problems(target.plan))
    return out


def plan_problems(plan: tuple[PlanLine, ...] | list[PlanLine]) -> list[tuple[str, str]]:
    out = []
    index: dict[str, int] = {}
    seen: dict[tuple[str, str | None], str] = {}
    for line in plan:
        i = index.get(line.node, 0) if isinstance(line.node, str) else 0
        if isinstance(line.node, str):
            index[line.node] = i + 1
        where = f"plan.{line.node}[{i}]"
        if not isinstance(line.node, str) or not NODE_NAME.match(line.node):
            out.append((f"plan.{line.node}", f"node {line.node!r} is not a node name; allowed: 1-64 of [a-z0-9-] "
                                             "(the node's node.name)"))
        if line.filter is not None:
            reason = unsafe_name_reason(line.filter) if isinstance(line.filter, str) else "must be a string"
            if reason is None and len(line.filter) > 64:
                reason = "must be at most 64 characters"
            if reason is not None:
                out.append((f"{where}.filter", f"got {line.filter!r}; {reason} (a name from the node's wheel, "
                                               "or null: no wheel)"))
        if not _number_in(line.exposure, 0, math.inf) or line.exposure <= 0:
            out.append((f"{where}.exposure", f"got {line.exposure!r}; allowed: seconds > 0"))
        if not _int_in(line.count, 0, 10**6):
            out.append((f"{where}.count", f"got {line.count!r}; allowed: an integer >= 0 (desired accepted frames)"))
        if not _int_in(line.binning, 1, MAX_BINNING):
            out.append((f"{where}.binning", f"got {line.binning!r}; allowed: an integer 1..{MAX_BINNING}"))
        key = (line.node, line.filter)
        if key in seen:
            out.append((f"{where}.filter", f"{line.node} has filter {line.filter!r} twice (also {seen[key]}); "
                                           "allowed: one line per node and filter (counts are kept per filter)"))
        else:
            seen[key] = where
    return out


def constraints_problems(c: Constraints) -> list[tuple[str, str]]:
    out = []
    if c.min_altitude is not None and not _number_in(c.min_altitude, 0, 90, upper_open=True):
        out.append(("constraints.min_altitude", f"got {c.min_altitude!r}; allowed: degrees 0..90, or null (the "
                                                "scheduler: default)"))
    if c.horizon is not None:
        try:
            check_horizon([list(p) if isinstance(p, (list, tuple)) else p for p in c.horizon], "constraints.horizon")
        except ConfigValueError as exc:
            out.append((exc.path, exc.message))
    if c.moon_separation is not None and not _number_in(c.moon_separation, 0, 180):
        out.append(("constraints.moon_separation", f"got {c.moon_separation!r}; allowed: degrees 0..180 (at full "
                                                   "moon), or null"))
    if c.moon_width is not None and (not _number_in(c.moon_width, 0, math.inf) or c.moon_width <= 0):
        out.append(("constraints.moon_width", f"got {c.moon_width!r}; allowed: days > 0, or null"))
    if c.before_flip is not None and not isinstance(c.before_flip, bool):
        out.append(("constraints.before_flip", f"got {c.before_flip!r}; allowed: true, false or null"))
    return out


def _date_problems(target: Target) -> list[tuple[str, str]]:
    out = []
    parsed = {}
    for key, value in (("start", target.start_date), ("end", target.end_date)):
        if value is None:
            continue
        try:
            parsed[key] = date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
        except ValueError:
            parsed[key] = None
        if parsed[key] is None:
            out.append((f"dates.{key}", f"got {value!r}; allowed: a date YYYY-MM-DD (the night's local date at dusk)"))
    if parsed.get("start") and parsed.get("end") and parsed["start"] > parsed["end"]:
        out.append(("dates", f"start {target.start_date} is after end {target.end_date}; allowed: start <= end"))
    return out


def _number_in(value, low: float, high: float, upper_open: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return low <= value < high if upper_open else low <= value <= high


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
