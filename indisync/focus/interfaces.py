"""What the autofocus routine needs from the outside world, and nothing more.

The INDI ``Camera`` and ``Focuser`` of indisync.devices satisfy these by duck typing; unit tests pass
small fakes over an optical model. Nothing here imports PyIndi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable


@runtime_checkable
class FocusCamera(Protocol):
    def expose(self, seconds: float, binning: int = 1) -> Any:
        """Take one light frame and return it (an array or an HDU: whatever ``measure`` accepts)."""


@runtime_checkable
class FocusFocuser(Protocol):
    @property
    def position(self) -> int: ...

    @property
    def min_position(self) -> int: ...

    @property
    def max_position(self) -> int: ...

    def move_to(self, position: int) -> int:
        """Move, block until the move is done, return the position reached."""


class StarMeasurement(Protocol):
    """What ``measure`` returns (indisync.analysis's FrameMeasurement has these and more)."""

    star_count: int
    median_hfr: float  # pixels; NaN or 0 when there are no stars
    hfr_spread: float  # scatter of the stars' HFR, pixels


Measure = Callable[[Any], StarMeasurement]


@dataclass(frozen=True)
class FocusProgress:
    """One event of a run, handed to the progress callback (and relayed over MQTT by nodes).

    ``phase``: "sweep" | "extend" | "search" | "check" for a measured frame, "done" | "failed" at
    the end. Frames are reported once measured, in the order taken (the next one may already be
    exposing).
    """

    phase: str
    frame: int  # this frame's number in the run (1-based); at "done"/"failed": frames taken in all
    position: int
    hfr: float | None = None
    stars: int = 0
    message: str | None = None


Progress = Callable[[FocusProgress], None]
