"""The season's plain data: projects, targets, each target's exposure plan per node, and the counts
of frames taken against it. Pure and stdlib-only: shared by the store (SQLite), the YAML import and
export, the scheduler, the night's runtime and the views.

A target is **complete** when every node's plan is complete; a node's plan is complete when every
line's accepted count (rejected frames never count; a frame still waiting for its grade counts
provisionally as ``pending``) has reached its desired count. Frames a node takes after its own
plan is complete are **surplus**, counted apart (scheduler.when_ota_done: surplus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Frame grades as the store keeps them.
ACCEPTED = "accepted"  # graded and accepted, or not graded at all (grading off / not measurable)
REJECTED = "rejected"
PENDING = "pending"  # written, its grade not known yet (a slave measures after its reply)
GRADES = (ACCEPTED, REJECTED, PENDING)


@dataclass(frozen=True)
class PlanLine:
    """One line of a node's exposure plan for a target: ``count`` frames through ``filter``."""

    node: str  # the node (OTA) name, as in its config's node.name
    filter: str | None  # a name from that node's wheel (FILTER_NAME); None: no wheel
    exposure: float  # seconds, > 0
    count: int  # desired accepted frames, >= 0
    binning: int = 1

    def key(self) -> tuple[str, str | None]:
        return (self.node, self.filter)


@dataclass(frozen=True)
class Constraints:
    """A target's own constraints; None: the scheduler: section's default."""

    min_altitude: float | None = None  # degrees
    horizon: tuple[tuple[float, float], ...] | None = None  # (azimuth, altitude) degrees, interpolated
    moon_separation: float | None = None  # degrees: the Lorentzian's distance at full moon (broadband)
    moon_width: float | None = None  # days: the Lorentzian's width (broadband)
    before_flip: bool | None = None  # finish before the meridian flip: not eligible past the meridian


@dataclass(frozen=True)
class Target:
    project: str
    name: str  # safe for file names (OBJECT, {target}); unique within the database
    ra: float  # J2000 degrees 0..360
    dec: float  # J2000 degrees -90..90
    plan: tuple[PlanLine, ...] = ()
    pa: float | None = None  # position angle of the frame, degrees east of north; None: no rotation
    priority: int = 5  # 1 (low) .. 10 (high); the project's priority is added
    start_date: str | None = None  # ISO date: not before this night (the night's local date at dusk)
    end_date: str | None = None  # ISO date: not after this night
    constraints: Constraints = field(default_factory=Constraints)
    enabled: bool = True
    id: int | None = None  # the store's row id; None until stored

    def lines_for(self, node: str) -> list[PlanLine]:
        return [line for line in self.plan if line.node == node]

    @property
    def nodes(self) -> list[str]:
        return sorted({line.node for line in self.plan})


@dataclass(frozen=True)
class Project:
    name: str
    priority: int = 5  # added to each target's priority
    description: str = ""
    enabled: bool = True


@dataclass
class Count:
    """Frames of one node and filter of one target."""

    desired: int = 0
    accepted: int = 0
    rejected: int = 0
    pending: int = 0
    surplus: int = 0  # taken after this node's plan was complete (not counted toward the goal)

    @property
    def counted(self) -> int:
        """What counts toward the goal while planning: accepted and provisionally pending."""
        return self.accepted + self.pending

    @property
    def needed(self) -> int:
        return max(0, self.desired - self.counted)

    def to_dict(self) -> dict:
        return {"desired": self.desired, "accepted": self.accepted, "rejected": self.rejected,
                "pending": self.pending, "surplus": self.surplus}


@dataclass
class Progress:
    """Counts of one target: (node, filter) -> Count, one entry per plan line (and any frame taken)."""

    counts: dict[tuple[str, str | None], Count] = field(default_factory=dict)

    @classmethod
    def for_target(cls, target: Target) -> "Progress":
        return cls({line.key(): Count(desired=line.count) for line in target.plan})

    def get(self, node: str, filter_name: str | None) -> Count:
        return self.counts.setdefault((node, filter_name), Count())

    def needed_filters(self, target: Target, node: str) -> list[str | None]:
        """The node's plan filters (in plan order) that still need frames."""
        return [line.filter for line in target.lines_for(node) if self.get(node, line.filter).needed > 0]

    def node_complete(self, target: Target, node: str) -> bool:
        return not self.needed_filters(target, node)

    def complete(self, target: Target) -> bool:
        return all(self.node_complete(target, node) for node in target.nodes)

    def fraction_needed(self, target: Target) -> float:
        """0 (complete) .. 1 (nothing taken): the share of desired exposure time still needed."""
        desired = sum(line.count * line.exposure for line in target.plan)
        if desired <= 0:
            return 0.0
        needed = sum(min(line.count, self.get(line.node, line.filter).needed) * line.exposure for line in target.plan)
        return needed / desired

    def to_dict(self) -> dict:
        """{node: {filter or "none": Count.to_dict()}}: the shape the master publishes (state.season)."""
        out: dict[str, dict] = {}
        for (node, filter_name), count in sorted(self.counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            out.setdefault(node, {})[filter_name or "none"] = count.to_dict()
        return out


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
