"""The calibration sets, plain data shared by planning, the wire and the nodes.

A ``FlatSet`` is what a light frame used that its flat must match: the filter, the binning, the
rotator's own angle (the dust turns with the camera, so the mechanical angle, not the sky's PA) and
gain/offset where the camera has them. A ``DarkSet`` is what a dark must match besides the
temperature: the exposure, binning, gain and offset (a bias: kind "bias", exposure 0).
Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANGLE_STEP_DEG = 1.0  # rotator angles are compared rounded to this: a rotator's jitter is one set


def _angle(value: float | None) -> float | None:
    if value is None:
        return None
    return round(round(float(value) % 360.0 / ANGLE_STEP_DEG) * ANGLE_STEP_DEG % 360.0, 3)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class FlatSet:
    filter: str | None = None
    binning: int = 1
    rotator_angle: float | None = None  # rounded by ``make`` (ANGLE_STEP_DEG)
    gain: float | None = None
    offset: float | None = None

    @classmethod
    def make(cls, filter: str | None = None, binning: int | None = 1, rotator_angle: float | None = None,
             gain: float | None = None, offset: float | None = None) -> "FlatSet":
        """The set's key, normalised: binning 1 when not said, the angle rounded, numbers as floats."""
        return cls(filter or None, int(binning or 1), _angle(rotator_angle), _num(gain), _num(offset))

    def to_wire(self) -> dict:
        return {"filter": self.filter, "binning": self.binning, "rotator_angle": self.rotator_angle,
                "gain": self.gain, "offset": self.offset}

    @classmethod
    def from_wire(cls, data: dict) -> "FlatSet":
        return cls.make(data.get("filter"), data.get("binning"), data.get("rotator_angle"), data.get("gain"),
                        data.get("offset"))

    def label(self) -> str:
        """'R bin1', 'Ha bin2 rot 90 gain 100': how logs and views name the set."""
        parts = [self.filter or "(no filter)", f"bin{self.binning}"]
        if self.rotator_angle is not None:
            parts.append(f"rot {_fmt(self.rotator_angle)}")
        if self.gain is not None:
            parts.append(f"gain {_fmt(self.gain)}")
        if self.offset is not None:
            parts.append(f"offset {_fmt(self.offset)}")
        return " ".join(parts)


@dataclass(frozen=True)
class DarkSet:
    kind: str  # "dark" | "bias"
    exposure: float  # s; 0 for a bias (the camera's shortest exposure is used)
    binning: int = 1
    gain: float | None = None
    offset: float | None = None

    @classmethod
    def make(cls, kind: str, exposure: float, binning: int | None = 1, gain: float | None = None,
             offset: float | None = None) -> "DarkSet":
        if kind not in ("dark", "bias"):
            raise ValueError(f"a dark set's kind is dark or bias, not {kind!r}")
        return cls(kind, 0.0 if kind == "bias" else round(float(exposure), 3), int(binning or 1), _num(gain),
                   _num(offset))

    def to_wire(self) -> dict:
        return {"kind": self.kind, "exposure": self.exposure, "binning": self.binning, "gain": self.gain,
                "offset": self.offset}

    @classmethod
    def from_wire(cls, data: dict) -> "DarkSet":
        return cls.make(data["kind"], data.get("exposure", 0.0), data.get("binning"), data.get("gain"),
                        data.get("offset"))

    def label(self) -> str:
        parts = [self.kind if self.kind == "bias" else f"dark {_fmt(self.exposure)} s", f"bin{self.binning}"]
        if self.gain is not None:
            parts.append(f"gain {_fmt(self.gain)}")
        if self.offset is not None:
            parts.append(f"offset {_fmt(self.offset)}")
        return " ".join(parts)
