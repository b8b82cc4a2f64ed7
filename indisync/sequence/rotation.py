"""A slave's filter rotation: the checked filters in order, looping, with the position kept on disk.

The position survives refocus runs and restarts: a slave that dies and comes back continues with
the filter after the last one it took. Use ``peek()`` for the filter of the coming exposure and
``advance()`` once that frame is written, so a frame lost to a crash is taken again through the
same filter; ``next()`` does both at once.

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
