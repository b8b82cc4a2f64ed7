"""The season in the night: which target the master images now, which plan lines each OTA shoots,
and every frame recorded in the store (``SeasonRuntime``, owned by a master with a scheduler:
section).

- ``choose(now, reason)``: the scheduler's pick over every enabled target (at the start of the night,
  after an unsafe pause, after a restart, when the night has no target); ``after_frame(now)``
  re-picks only when the current target completed, left its constraints, or ``replan_min`` passed,
  and the night switches only on ``Decision.switch`` (a switch to no target is a gap, not a slew);
- the current target and since when are kept in the store's state (``runtime``), so a restarted
  master resumes the same target (the scheduler keeps it for ``min_minutes``);
- ``node_lines(node, now)``: that node's plan lines that still need frames and whose filter kind is
  allowed now (scheduler.allowed_filters); none left: every allowed line as surplus
  (``scheduler.when_ota_done: surplus``) or nothing (``idle``);
- ``record(row)`` / ``grade(...)``: frames into the store (a slave's grade may come before its reply
  is recorded: kept until then), ``state()``: the ``season`` state field;
- ``window(now)``: the night's start is the first time some target is eligible (the end stays the
  dark window's: a night with nothing left to image finishes, see ``finished``).

The scheduler and the sky are given (``scheduler``, ``sky``) so unit tests run on stand-ins; the
clock is only ever the ``now`` argument (and ``clock`` for the store's frame times).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable

from ..night.rig import Aim
from .model import ACCEPTED, PENDING, PlanLine, Progress, Target

log = logging.getLogger(__name__)

STATE_KEY = "runtime"  # the store's state: {target, since, reason, picked_at}
SKY_STEP_S = 60.0  # the sky's grid tonight: windows to the minute (a night is ~700 samples)
FINISHED_CACHE_S = 30.0  # "anything left tonight?" is asked with every frame: answered at most this often
EARLY_GRADES_KEPT = 500  # grades that came before their frame's reply (normally none or one)


@dataclass(frozen=True)
class NodePlan:
    """One node's lines for the next frame: plan order; ``surplus``: its goals are met, these frames
    count apart; no lines: nothing to take (idle)."""

    lines: tuple[PlanLine, ...]
    surplus: bool = False

    def wire(self) -> list[list]:
        """ExposeArgs.plan: [[filter, exposure, binning], ...]."""
        return [[line.filter, float(line.exposure), int(line.binning)] for line in self.lines]


def _default_sky(site, when: float):
    from .ephem import sky_for_night

    return sky_for_night(site, when, SKY_STEP_S)


def _default_scheduler():
    from . import scheduler

    return scheduler


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SeasonRuntime:
    def __init__(self, store, settings, site, clock: Callable[[], float] = time.time, scheduler: Any = None,
                 sky: Callable[[Any, float], Any] | None = None, master: str = "master",
                 grading: bool = True, on_change: Callable[[dict], None] | None = None,
                 live: Callable[[], set[str]] | None = None):
        self.store, self.settings, self.site, self.clock = store, settings, site, clock
        # the nodes that can take frames now (the master and its live slaves); None: every node.
        # Plan lines of a node that is not live are left out of every decision: a target whose only
        # needs are on an OTA that is down is not chosen (nor kept) for them.
        self.live = live
        self.scheduler = scheduler if scheduler is not None else _default_scheduler()
        self._sky_for = sky or _default_sky
        self.master = master
        self.grading = grading  # a slave's frame is pending until its grade comes (else accepted at once)
        self.on_change = on_change
        self._lock = threading.RLock()
        self._sky = None
        self._finished: tuple[float, bool] | None = None  # (asked at, answer)
        self._early: dict[tuple[str, str], tuple[str, str | None]] = {}  # (node, file) -> (grade, reason)
        self.last_decision = None
        saved = store.get_state(STATE_KEY) or {}
        self._current: str | None = saved.get("target") if isinstance(saved.get("target"), str) else None
        self._since: float | None = _number(saved.get("since"))
        self._picked_at: float | None = _number(saved.get("picked_at"))
        self._reason: str | None = saved.get("reason") if isinstance(saved.get("reason"), str) else None
        if self._current is not None:
            log.info("season: the last target was %s (since %s)", self._current, iso(self._since))

    # ---- what is imaged ------------------------------------------------------------------------
    def current(self) -> Target | None:
        with self._lock:
            name = self._current
        return None if name is None else self.store.target(name)

    def aim(self) -> Aim | None:
        target = self.current()
        return None if target is None else Aim(target.name, target.ra, target.dec, target.pa)

    def sky(self, now: float):
        """Tonight's sky (the night that contains ``now``, or the next one), computed once a night."""
        with self._lock:
            stale = self._sky is None or now > self._sky.end or now < self._sky.start - 86400.0  # over, or a clock jump
            if stale:
                self._sky = self._sky_for(self.site, now)
            return self._sky

    def _live_nodes(self) -> set[str] | None:
        if self.live is None:
            return None
        try:
            return set(self.live()) | {self.master}
        except Exception as exc:  # noqa: BLE001 - every node then, as without the registry
            log.warning("season: could not tell which nodes are live (%s): planning for every node", exc)
            return None

    def for_rig(self, target: Target | None) -> Target | None:
        """``target`` with only the plan lines of live nodes (None: none of its nodes is live)."""
        live = self._live_nodes()
        if target is None or live is None:
            return target
        lines = tuple(line for line in target.plan if line.node in live)
        return replace(target, plan=lines) if lines else None

    def _inputs(self) -> tuple[list[Target], dict[str, Progress], dict[str, int]]:
        projects = {p.name: p for p in self.store.projects()}
        targets = [t for t in (self.for_rig(t) for t in self.store.targets(enabled_only=True)) if t is not None
                   and (projects.get(t.project) is None or projects[t.project].enabled)]
        progress = self.store.progress_all()
        return targets, progress, {name: p.priority for name, p in projects.items()}

    def choose(self, now: float, reason: str):
        """The scheduler's pick now (kept: the current target within min_minutes); remembered."""
        with self._lock:
            targets, progress, priorities = self._inputs()
            decision = self.scheduler.pick(now, targets, progress, self.sky(now), self.settings,
                                           current=self._current, current_since=self._since, reason=reason,
                                           project_priority=priorities)
            self._apply(decision, now, reason)
            return decision

    def after_frame(self, now: float):
        """After a frame: re-pick when the current target is complete, left its constraints or
        replan_min has passed; otherwise the current target is kept without asking."""
        with self._lock:
            full = self.current()
            if full is None:
                return self.choose(now, "no current target")
            target = self.for_rig(full)
            if target is None:
                return self.choose(now, f"none of {full.name}'s OTAs is online")
            progress = self.store.progress(target)
            why = None
            if progress.complete(target):
                why = f"{target.name} complete" + ("" if len(target.plan) == len(full.plan) else " (on the OTAs online)")
            elif self._picked_at is None or now - self._picked_at >= self.settings.replan_min * 60.0:
                why = f"replan (every {self.settings.replan_min:g} min)"
            else:
                alone = self.scheduler.pick(now, [target], {target.name: progress}, self.sky(now), self.settings,
                                            current=None, current_since=None, reason="still eligible?")
                if alone.target is None:
                    why = f"{target.name} left its constraints"
            if why is None:
                self._notify()  # its counts changed
                return self.scheduler.Decision(now, target.name, f"kept {target.name}", [], False)
            return self.choose(now, why)

    def _apply(self, decision, now: float, asked: str) -> None:
        previous = self._current
        self.last_decision = decision
        self._picked_at = now
        self._reason = decision.reason
        if decision.target != previous:
            self._current = decision.target
            self._since = now if decision.target is not None else None
            self._finished = None
        log.info("season (%s): %s", asked, decision.reason)
        self._save()
        self._notify()

    def _save(self) -> None:
        try:
            self.store.put_state(STATE_KEY, {"target": self._current, "since": self._since,
                                             "picked_at": self._picked_at, "reason": self._reason})
        except Exception as exc:  # noqa: BLE001 - the night goes on; a restart then picks afresh
            log.error("season: could not save the current target: %s", exc)

    def finished(self, now: float) -> bool:
        """Nothing left to image tonight: no target eligible now nor later tonight (every target
        complete, or none observable before dawn). Cached FINISHED_CACHE_S."""
        with self._lock:
            if self._finished is not None and now - self._finished[0] < FINISHED_CACHE_S:
                return self._finished[1]
            if self._current is not None:
                target = self.for_rig(self.current())
                if target is not None and not self.store.progress(target).complete(target):
                    self._finished = (now, False)
                    return False
            targets, progress, _ = self._inputs()
            sky = self.sky(now)
            answer = self.scheduler.next_eligible(now, targets, progress, sky, self.settings) is None
            self._finished = (now, answer)
            return answer

    def window(self, now: float) -> tuple[float, float | None] | None:
        """(start, end) of tonight's imaging as the season sees it: from the first time some target
        is eligible (now, if one is); the end is left to the dark window (None). None: nothing
        eligible tonight."""
        with self._lock:
            targets, progress, _ = self._inputs()
            found = self.scheduler.next_eligible(now, targets, progress, self.sky(now), self.settings)
        if found is None:
            return None
        return max(now, found[1]), None

    def upcoming_aim(self, now: float) -> Aim | None:
        """In a gap (no target eligible now): the target that becomes eligible soonest tonight, to
        point at and wait for (it is chosen when it is eligible); None: nothing left tonight."""
        with self._lock:
            targets, progress, _ = self._inputs()
            found = self.scheduler.next_eligible(now, targets, progress, self.sky(now), self.settings)
        if found is None:
            return None
        target = self.store.target(found[0])
        if target is None:
            return None
        log.info("season: no target observable now; pointing at %s, observable from %s", target.name, iso(found[1]))
        return Aim(target.name, target.ra, target.dec, target.pa)

    def longest_exposure(self) -> float:
        """The longest exposure of any enabled target's plan (the flip's hold bound); 0: none."""
        try:
            return max((line.exposure for t in self.store.targets(enabled_only=True) for line in t.plan), default=0.0)
        except Exception as exc:  # noqa: BLE001 - a bound, not a reason to fail the night's start
            log.error("season: could not read the targets' exposures: %s", exc)
            return 0.0

    # ---- per node -------------------------------------------------------------------------------
    def node_plan(self, node: str, now: float, target: Target | None = None) -> NodePlan:
        """``node``'s lines for a frame from ``now``: the needed and allowed ones; none needed: every
        allowed line as surplus (when_ota_done: surplus) or none (idle)."""
        target = target or self.current()
        if target is None or not target.lines_for(node):
            return NodePlan(())
        progress = self.store.progress(target)
        sky = self.sky(now)
        lines = self.scheduler.allowed_filters(target, node, progress, sky, now, self.settings)
        if lines:
            return NodePlan(tuple(lines))
        if self.settings.when_ota_done == "surplus" and progress.node_complete(target, node):
            lines = self.scheduler.allowed_filters(target, node, progress, sky, now, self.settings, include_met=True)
            return NodePlan(tuple(lines), surplus=True)
        return NodePlan(())

    def master_lines(self, now: float) -> NodePlan:
        return self.node_plan(self.master, now)

    def node_lines(self, node: str, now: float) -> NodePlan:
        return self.node_plan(node, now)

    def needed(self, node: str, filter_name: str | None, target: Target | None = None) -> int:
        target = target or self.current()
        if target is None:
            return 0
        return self.store.progress(target).get(node, filter_name).needed

    # ---- frames ----------------------------------------------------------------------------------
    def record(self, row) -> int | None:
        """A frame into the store (a grade that came first is applied); never raises."""
        try:
            key = (row.node, os.path.basename(row.path))
            with self._lock:
                early = self._early.pop(key, None)
            if early is not None:
                row = replace(row, grade=early[0], reason=early[1])
            row_id = self.store.record_frame(row)
        except Exception as exc:  # noqa: BLE001 - a frame on disk is never lost for a database problem
            log.error("season: could not record %s's frame %s: %s", row.node, row.path, exc)
            return None
        with self._lock:
            self._finished = None
        return row_id

    def slave_grade(self) -> str:
        return PENDING if self.grading else ACCEPTED

    def grade(self, node: str, file: str | None, grade: str | None, reason: str | None = None,
              exposure_id: str | None = None) -> bool:
        """A slave's frame_measured: its grade (None: not graded, which counts as accepted). A frame not
        recorded yet (its reply still on the way) gets it when it is. Never raises."""
        grade = grade if grade in ("accepted", "rejected") else ACCEPTED
        try:
            if file is None and exposure_id is not None:
                file = next((r.path for r in reversed(self.store.frames(node=node))
                             if r.exposure_id == exposure_id), None)
            if file is None:
                log.warning("season: a grade from %s without a file name or a known exposure id", node)
                return False
            done = self.store.set_grade(node, file, grade, reason)
            if not done:
                with self._lock:
                    if len(self._early) >= EARLY_GRADES_KEPT:
                        self._early.pop(next(iter(self._early)))
                    self._early[(node, os.path.basename(file))] = (grade, reason)
            return done
        except Exception as exc:  # noqa: BLE001 - never into the MQTT callback
            log.error("season: could not grade %s's frame %s: %s", node, file, exc)
            return False

    # ---- the state -------------------------------------------------------------------------------
    def state(self) -> dict:
        """The ``season`` state field (protocol.messages.SEASON)."""
        with self._lock:
            name, since, reason, decision = self._current, self._since, self._reason, self.last_decision
        target = self.store.target(name) if name is not None else None
        out = {"target": name if target is not None else None, "project": target.project if target else None,
               "since": iso(since) if target is not None else None, "reason": (reason or "")[:500] or None}
        if target is not None:
            progress = self.store.progress(target)
            out["complete"] = progress.complete(target)
            out["progress"] = {node: dict(list(filters.items())[:64])
                               for node, filters in list(progress.to_dict().items())[:64]}
        if decision is not None and decision.candidates:
            out["candidates"] = [{"target": c.target, "score": None if c.score is None else round(float(c.score), 3),
                                  "excluded_by": None if c.excluded_by is None else c.excluded_by[:500]}
                                 for c in decision.candidates[:50]]
        return out

    def _notify(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.state())
        except Exception:  # noqa: BLE001 - the state is a report
            log.exception("season: could not publish the season state")


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
