"""A slave's filter rotation: the checked filters in order, looping, with the position kept on disk.

The position survives refocus runs and restarts: a slave that dies and comes back continues with
the filter after the last one it took. Use ``peek()`` for the filter of the coming exposure and
``advance()`` once that frame is written, so a frame lost to a crash is taken again through the
same filter; ``next()`` does both at once.

The season (ExposeArgs.plan): ``PlanRotation`` rotates through the filters the master says still
need frames for this target, in plan order, continuing after the last filter taken (kept on disk):
a filter whose goal is met drops out, the others keep their turn.

If the checked list changed between runs, the rotation continues after the last filter taken if
it is still checked, otherwise it starts at the first one; either way it logs what it did.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence

from ..errors import UnknownFilter
from .settings import SlaveSettings
from .state_store import ROTATION_SECTION, StateStore

PLAN_ROTATION_SECTION = "plan_rotation"

log = logging.getLogger(__name__)


def validate_checked_filters(checked: Iterable[str], wheel_names: Sequence[str]) -> list[str]:
    """The checked filters in order, each confirmed to be one of the wheel's ``FILTER_NAME`` names.

    Raises UnknownFilter naming the missing filter(s) and listing the wheel's names.
    """
    checked = list(checked)
    wheel = list(wheel_names)
    missing = [name for name in checked if name not in wheel]
    if missing:
        raise UnknownFilter(
            f"slave.filters lists {', '.join(repr(m) for m in missing)}, which the filter wheel does not have; "
            f"the wheel's filters are: {', '.join(repr(w) for w in wheel) or '(none)'}. "
            "Fix slave.filters or the wheel's filter names."
        )
    if not checked:
        raise UnknownFilter(
            f"slave.filters is empty; check at least one of the wheel's filters: {', '.join(repr(w) for w in wheel)}"
        )
    return checked


def exposure_for(slave: SlaveSettings, filter_name: str) -> float:
    """Seconds a slave exposes through ``filter_name`` (one value, or the per-filter mapping)."""
    return slave.exposure_for(filter_name)


class FilterRotation:
    """Round-robin over the checked filters; persisted in ``store`` (section ``key``) if given."""

    def __init__(self, filters: Sequence[str], store: StateStore | None = None, key: str = ROTATION_SECTION):
        if not filters:
            raise ValueError("a filter rotation needs at least one filter")
        self.filters = list(filters)
        self._store = store
        self._key = key
        self._index = 0
        self._last: str | None = None
        self.taken = 0  # frames taken through this rotation, across restarts
        if store is not None:
            self._restore(store.get(key))

    @property
    def position(self) -> int:
        """Index in ``filters`` of the next filter."""
        return self._index

    def peek(self) -> str:
        """The filter of the next exposure, without moving."""
        return self.filters[self._index]

    def upcoming(self) -> Iterator[str]:
        """The filters from the next one on, looping forever (for planning loose mode)."""
        return itertools.islice(itertools.cycle(self.filters), self._index, None)

    def advance(self) -> str:
        """Record that the frame through ``peek()`` is done; move on and persist. Returns that filter."""
        taken = self.filters[self._index]
        self._index = (self._index + 1) % len(self.filters)
        self._last = taken
        self.taken += 1
        self._save()
        return taken

    def next(self) -> str:
        """The filter to use now; the rotation moves on (and is persisted) at once."""
        return self.advance()

    def state(self) -> dict:
        return {"filters": list(self.filters), "index": self._index, "last": self._last, "taken": self.taken}

    def _save(self) -> None:
        if self._store is not None:
            self._store.put(self._key, self.state())

    def _restore(self, saved: dict | None) -> None:
        if saved is None:
            log.info("no saved filter rotation: starting with %s", self.peek())
            return
        saved_filters = saved.get("filters")
        index = saved.get("index")
        last = saved.get("last")
        taken = saved.get("taken", 0)
        self.taken = taken if isinstance(taken, int) and taken >= 0 else 0
        if saved_filters == self.filters and isinstance(index, int) and 0 <= index < len(self.filters):
            self._index = index
            self._last = last if last in self.filters else None
            log.info("filter rotation resumed: next filter %s", self.peek())
        elif last in self.filters:
            self._index = (self.filters.index(last) + 1) % len(self.filters)
            self._last = last
            log.warning(
                "checked filters changed from %s to %s: continuing after the last filter taken (%s) with %s",
                saved_filters, self.filters, last, self.peek(),
            )
        else:
            log.warning(
                "checked filters changed from %s to %s and the last filter taken (%s) is no longer checked: "
                "the rotation starts again at %s",
                saved_filters, self.filters, last, self.peek(),
            )
        self._save()


def merge_order(order: Sequence[str | None], names: Sequence[str | None]) -> list[str | None]:
    """``order`` with the names it lacks from ``names`` inserted where ``names`` puts them (after the
    name before them in ``names``, else first): the rotation order of every filter seen so far."""
    out = list(order)
    for i, name in enumerate(names):
        if name in out:
            continue
        before = [j for j in range(i - 1, -1, -1) if names[j] in out]
        out.insert(out.index(names[before[0]]) + 1 if before else 0, name)
    return out


def next_through(order: Sequence[str | None], last: str | None, allowed: Sequence[str | None]) -> str | None:
    """The first of ``allowed`` after ``last`` in the cyclic ``order`` (``allowed``'s first when
    ``last`` is unknown). ValueError when ``allowed`` is empty."""
    if not allowed:
        raise ValueError("no filter to rotate through")
    order = merge_order(order, allowed)
    if last not in order:
        return allowed[0]
    start = order.index(last) + 1
    for k in range(len(order)):
        name = order[(start + k) % len(order)]
        if name in allowed:
            return name
    return allowed[0]  # unreachable: every allowed name is in order


class PlanRotation:
    """A slave's rotation in the season: through the plan lines the master sends with each exposure
    (``ExposeArgs.plan``), in plan order, after the last filter taken. The order seen and the last
    filter are kept in ``store`` (section ``key``) across frames, targets and restarts."""

    def __init__(self, store: StateStore | None = None, key: str = PLAN_ROTATION_SECTION):
        self._store, self._key = store, key
        saved = (store.get(key) if store is not None else None) or {}
        order = saved.get("order")
        self.order: list[str | None] = list(order) if isinstance(order, list) else []
        self.last: str | None = saved.get("last") if saved.get("last") in self.order else None
        taken = saved.get("taken", 0)
        self.taken = taken if isinstance(taken, int) and taken >= 0 else 0

    def peek(self, allowed: Sequence[str | None]) -> str | None:
        """The filter of the next frame among ``allowed`` (plan order)."""
        return next_through(self.order, self.last, list(allowed))

    def upcoming(self, allowed: Sequence[str | None]) -> Iterator[str | None]:
        """``allowed`` from the next filter on, looping forever (loose sync's planning)."""
        allowed = list(allowed)
        first = self.peek(allowed)
        ordered = [name for name in merge_order(self.order, allowed) if name in allowed]
        i = ordered.index(first)
        return itertools.islice(itertools.cycle(ordered), i, None)

    def after(self, taken: str | None, allowed: Sequence[str | None]) -> str | None:
        """The filter that would follow ``taken`` among ``allowed`` (the wheel's pre-move)."""
        return next_through(merge_order(self.order, allowed), taken, list(allowed))

    def advance(self, taken: str | None, allowed: Sequence[str | None]) -> None:
        """The frame through ``taken`` is on disk: remember it (and the order) on disk."""
        self.order = merge_order(self.order, list(allowed))
        if taken not in self.order:
            self.order.append(taken)
        self.last = taken
        self.taken += 1
        if self._store is not None:
            self._store.put(self._key, {"order": self.order, "last": self.last, "taken": self.taken})
