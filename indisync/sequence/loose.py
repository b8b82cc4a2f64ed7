"""How slave exposures fit inside a master exposure, in the two sync modes.

strict: each slave takes exactly one exposure per master exposure, so no slave exposure may be
longer than the master's (``check_strict`` says which filter and how long at start-up).

loose: a slave with shorter exposures takes as many as fit inside the master's exposure. Each
slave frame is costed as its exposure plus ``overhead`` (download/readout + wheel move, an
estimate from SlaveSettings.frame_overhead); a frame is started only if it ends, overhead
included, before the master's exposure does, so it never runs into the next dither or refocus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from .naming import format_seconds


@dataclass(frozen=True)
class LooseFit:
    filters: list[str]  # the filters to take, in order, during one master exposure
    busy: float  # seconds they take, overheads included (<= the master's exposure)

    @property
    def count(self) -> int:
        return len(self.filters)


def fits(remaining: float, exposure: float, overhead: float) -> bool:
    """Whether a frame of ``exposure`` seconds (+ overhead) can still start with ``remaining`` seconds
    left of the master's exposure. For the live decision, with the time actually left."""
    return exposure + overhead <= remaining + 1e-9


def plan_loose(
    master_exposure: float,
    upcoming: Iterable[str],
    exposure_for: Callable[[str], float],
    overhead: float,
) -> LooseFit:
    """The slave frames that fit one after another inside ``master_exposure`` seconds.

    ``upcoming`` is the rotation from its next filter on (``FilterRotation.upcoming()``); the
    rotation is followed in order, so the plan stops at the first filter that no longer fits
    rather than skipping it for a shorter one (skipping would starve long filters).
    """
    taken: list[str] = []
    busy = 0.0
    for name in upcoming:
        exposure = exposure_for(name)
        cost = exposure + overhead
        if cost <= 0:
            raise ValueError(f"exposure + overhead for {name!r} must be positive, got {cost}")
        if not fits(master_exposure - busy, exposure, overhead):
            break
        taken.append(name)
        busy += cost
    return LooseFit(filters=taken, busy=busy)


def check_strict(slave_exposures: Mapping[str, float], master_exposures: Iterable[float]) -> None:
    """Strict sync: every slave exposure must be no longer than the shortest master exposure.

    Raises ConfigError naming the filter, its length and the master's. ``master_exposures`` are the
    exposures of the master frames the slaves follow (PlannedFrame.exposure of the batch).
    """
    shortest = min(master_exposures, default=None)
    if shortest is None:
        return
    too_long = {name: s for name, s in slave_exposures.items() if s > shortest}
    if too_long:
        listed = ", ".join(f"{name} {format_seconds(s)} s" for name, s in too_long.items())
        raise ConfigError(
            f"sync: strict takes one slave exposure per master exposure, but the slave's {listed} "
            f"{'is' if len(too_long) == 1 else 'are'} longer than the master's shortest exposure "
            f"({format_seconds(shortest)} s). Shorten slave.exposure, or use master.sync: loose."
        )


def check_loose(slave_exposures: Mapping[str, float], master_exposures: Iterable[float], overhead: float) -> None:
    """Loose sync: each slave exposure plus overhead must fit in the shortest master exposure,
    otherwise that filter would never be taken and the rotation would stall on it."""
    shortest = min(master_exposures, default=None)
    if shortest is None:
        return
    for name, seconds in slave_exposures.items():
        if not fits(shortest, seconds, overhead):
            raise ConfigError(
                f"sync: loose: the slave's {name} exposure ({format_seconds(seconds)} s + "
                f"{format_seconds(overhead)} s overhead) does not fit in the master's shortest exposure "
                f"({format_seconds(shortest)} s), so {name} would never be taken. Shorten slave.exposure "
                "or slave.frame_overhead, or lengthen the master's exposures."
            )


def check_sync(
    sync: str, slave_exposures: Mapping[str, float], master_exposures: Iterable[float], overhead: float
) -> None:
    """The start-up check for ``master.sync``."""
    master_exposures = list(master_exposures)
    if sync == "strict":
        check_strict(slave_exposures, master_exposures)
    elif sync == "loose":
        check_loose(slave_exposures, master_exposures, overhead)
    else:
        raise ConfigError(f"master.sync: got {sync!r}; allowed: strict, loose")
