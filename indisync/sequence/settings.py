"""The ``master:`` and ``slave:`` config sections: the imaging sequence, refocus triggers, filter rotation.

Built with ``indisync.configtypes.build`` (unknown keys and wrong types are errors); ``validate()``
checks values and raises ConfigValueError naming the key and what is allowed. Example::

    master:
      target: M42
      sync: strict            # strict | loose
      batches: null           # null = until stopped
      sequence:
        delay_first: 0
        delay_between: 0
        slots: [{type: light, filter: Luminance, suffix: null, exposure: 600, binning: 1, repeat: 5}]
      refocus: {after_batch: true, every_frames: null, hfr_rise_pct: null, temperature_delta: null}
    slave:
      filters: [Red, Green, Blue]   # checked subset, validated against the wheel's names at start
      exposure: 600                 # or {Red: 300, Green: 300, Blue: 400}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..configtypes import ConfigValueError
from ..guiding.settings import DitherSettings
from ..night.settings import TargetSettings
from .naming import unsafe_name_reason

FRAME_TYPES = ("light", "dark", "flat", "bias")
MAX_BINNING = 16


def _check_name(key: str, value: str | None, *, allow_none: bool = True) -> None:
    if value is None:
        if allow_none:
            return
        raise ConfigValueError(key, "must be set")
    reason = unsafe_name_reason(value)
    if reason:
        raise ConfigValueError(key, f"got {value!r}; {reason}")


@dataclass
class Slot:
    """One line of a MaxIm-style sequence: ``repeat`` frames of one kind."""

    type: Literal["light", "dark", "flat", "bias"] = "light"
    filter: str | None = None  # wheel filter name; null: leave the wheel where it is (darks, bias, no wheel)
    suffix: str | None = None  # appended to the frame's file name via the {suffix} field
    exposure: float = 60.0  # seconds; > 0 (a bias may be 0: the camera's shortest exposure)
    binning: int = 1  # 1..16, same in X and Y
    repeat: int = 1  # frames of this slot per batch, >= 1

    def validate(self) -> None:
        if self.type not in FRAME_TYPES:
            raise ConfigValueError("type", f"got {self.type!r}; allowed: {', '.join(FRAME_TYPES)}")
        if self.exposure < 0 or (self.exposure == 0 and self.type != "bias"):
            raise ConfigValueError(
                "exposure", f"got {self.exposure}; allowed: seconds > 0 (0 only for a bias frame)"
            )
        if not 1 <= self.binning <= MAX_BINNING:
            raise ConfigValueError("binning", f"got {self.binning}; allowed: 1..{MAX_BINNING}")
        if self.repeat < 1:
            raise ConfigValueError("repeat", f"got {self.repeat}; allowed: an integer >= 1")
        _check_name("filter", self.filter)
        _check_name("suffix", self.suffix)


def _default_slots() -> list[Slot]:
    return [Slot(type="light", filter="Luminance", exposure=600.0, repeat=5)]


@dataclass
class SequenceSettings:
    """One batch: the slots in order, with MaxIm's delays (seconds)."""

    delay_first: float = 0.0  # seconds to wait before the first frame of a batch
    delay_between: float = 0.0  # seconds to wait between frames
    slots: list[Slot] = field(default_factory=_default_slots)

    def validate(self) -> None:
        for key in ("delay_first", "delay_between"):
            if getattr(self, key) < 0:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: seconds >= 0")
        if not self.slots:
            raise ConfigValueError("slots", "must list at least one slot")
        for i, slot in enumerate(self.slots):
            try:
                slot.validate()
            except ConfigValueError as exc:
                raise ConfigValueError(f"slots[{i}].{exc.path}", exc.message) from None


@dataclass
class RefocusSettings:
    """When every node refocuses together. Each trigger is optional (null or false disables it).

    HFR rise: the baseline is the median HFR of the first ``hfr_baseline_frames`` measured frames
    after a focus run (per filter, since filters focus differently); the current value is the median
    of the last ``hfr_recent_frames`` measured frames; a rise of ``hfr_rise_pct`` % triggers.
    Medians keep one frame spoiled by a passing cloud or a satellite from triggering a refocus.
    """

    after_batch: bool = True  # refocus at the end of every batch
    every_frames: int | None = None  # refocus after this many master frames since the last focus
    hfr_rise_pct: float | None = None  # refocus when HFR has risen this many % over the baseline
    temperature_delta: float | None = None  # refocus when the temperature moved this many degC since focus
    hfr_baseline_frames: int = 3  # measured frames after focus whose median is the HFR baseline
    hfr_recent_frames: int = 3  # latest measured frames whose median is compared with the baseline

    def validate(self) -> None:
        if self.every_frames is not None and self.every_frames < 1:
            raise ConfigValueError("every_frames", f"got {self.every_frames}; allowed: null or an integer >= 1")
        if self.hfr_rise_pct is not None and self.hfr_rise_pct <= 0:
            raise ConfigValueError("hfr_rise_pct", f"got {self.hfr_rise_pct}; allowed: null or a percentage > 0")
        if self.temperature_delta is not None and self.temperature_delta <= 0:
            raise ConfigValueError(
                "temperature_delta", f"got {self.temperature_delta}; allowed: null or degrees C > 0"
            )
        for key in ("hfr_baseline_frames", "hfr_recent_frames"):
            if getattr(self, key) < 1:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: an integer >= 1")


@dataclass
class MasterSettings:
    """The ``master:`` section."""

    # OBJECT header and the {target} file name field; or {name, ra, dec} (J2000 degrees) to slew there.
    # After loading, ``target`` is always the name and ``target_coords`` holds the coordinates (or None).
    target: str | TargetSettings = "untitled"
    sync: Literal["strict", "loose"] = "strict"  # strict: one slave frame per master frame; loose: as many as fit
    batches: int | None = None  # number of batches; null = until stopped
    sequence: SequenceSettings = field(default_factory=SequenceSettings)
    refocus: RefocusSettings = field(default_factory=RefocusSettings)
    dither: DitherSettings = field(default_factory=DitherSettings)  # used only with a guider: section
    # A lost guide star: "pause" holds the next exposure until guiding is back; "continue" shoots unguided.
    on_star_lost: Literal["pause", "continue"] = "pause"
    # Seconds between commanding the slaves and every shutter opening (a scheduled start, issue 13):
    # 0 opens the master's at once and each slave's when the command arrives (loopback, wired LAN);
    # over Wi-Fi set it above the worst one-way delay (0.3 s covers 20 ms latency with 200 ms stalls).
    start_lead: float = 0.0

    target_coords: TargetSettings | None = field(default=None, init=False)

    def validate(self) -> None:
        if isinstance(self.target, TargetSettings):  # a bare string stays a name only (no slew)
            self.target_coords = self.target if self.target.has_coordinates else None
            self.target = self.target.name
        _check_name("target", self.target, allow_none=False)
        if self.sync not in ("strict", "loose"):
            raise ConfigValueError("sync", f"got {self.sync!r}; allowed: strict, loose")
        if not 0 <= self.start_lead <= 5:
            raise ConfigValueError("start_lead", f"got {self.start_lead}; allowed: 0..5 seconds")
        if self.batches is not None and self.batches < 1:
            raise ConfigValueError("batches", f"got {self.batches}; allowed: null (until stopped) or an integer >= 1")
        for key in ("sequence", "refocus", "dither"):
            try:
                getattr(self, key).validate()
            except ConfigValueError as exc:
                raise ConfigValueError(f"{key}.{exc.path}" if exc.path else key, exc.message) from None


@dataclass
class SlaveSettings:
    """The ``slave:`` section: which filters to rotate through and for how long."""

    filters: list[str] = field(default_factory=lambda: ["Red", "Green", "Blue"])  # checked subset, in order
    exposure: float | dict[str, float] = 600.0  # seconds: one value, or a mapping filter -> seconds
    # Loose sync: estimated seconds per slave frame beyond the exposure (download/readout + wheel
    # move). A frame starts only if exposure + overhead still fits in the master's exposure.
    frame_overhead: float = 5.0
    # HFR is measured after the reply by a worker process (indisync.node.hfr_worker) this much nicer
    # than the node (0..19): when the next expose command arrives, the command path gets the CPU.
    measure_nice: int = 10
    # Seconds one frame's measurement may take in that worker (a niced worker on a busy machine is
    # slow, a hung one never answers): past it the worker is killed and started again, and the
    # frame is reported as not measured.
    measure_timeout: float = 300.0
    # When that worker measures: not in the first measure_after_reply seconds after a frame's reply
    # (the master's next command is then on its way), unless the next exposure starts sooner: then
    # from measure_after_start seconds after its shutter opens, while it exposes. 0 and 0: at once.
    measure_after_reply: float = 3.0
    measure_after_start: float = 0.5

    def validate(self) -> None:
        if not self.filters:
            raise ConfigValueError("filters", "must list at least one filter name")
        for i, name in enumerate(self.filters):
            _check_name(f"filters[{i}]", name, allow_none=False)
        seen: set[str] = set()
        for name in self.filters:
            if name in seen:
                raise ConfigValueError("filters", f"{name!r} is listed twice; list each checked filter once")
            seen.add(name)
        if isinstance(self.exposure, dict):
            missing = [name for name in self.filters if name not in self.exposure]
            if missing:
                raise ConfigValueError(
                    "exposure", f"no exposure for {', '.join(missing)}; give one for every filter in slave.filters"
                )
            for name, seconds in self.exposure.items():
                if seconds <= 0:
                    raise ConfigValueError(f"exposure.{name}", f"got {seconds}; allowed: seconds > 0")
        elif self.exposure <= 0:
            raise ConfigValueError("exposure", f"got {self.exposure}; allowed: seconds > 0")
        if self.frame_overhead < 0:
            raise ConfigValueError("frame_overhead", f"got {self.frame_overhead}; allowed: seconds >= 0")
        if not 0 <= self.measure_nice <= 19:
            raise ConfigValueError("measure_nice", f"got {self.measure_nice!r}; allowed: an integer 0..19 (10: default)")
        if not 1 <= self.measure_timeout <= 3600:
            raise ConfigValueError("measure_timeout", f"got {self.measure_timeout}; allowed: 1..3600 seconds")
        for key in ("measure_after_reply", "measure_after_start"):
            if not 0 <= getattr(self, key) <= 60:
                raise ConfigValueError(key, f"got {getattr(self, key)}; allowed: 0..60 seconds")

    def exposure_for(self, filter_name: str) -> float:
        """Seconds to expose through ``filter_name``."""
        if isinstance(self.exposure, dict):
            try:
                return float(self.exposure[filter_name])
            except KeyError:
                raise ConfigValueError(
                    "slave.exposure", f"no exposure for {filter_name!r}; give one for every filter in slave.filters"
                ) from None
        return float(self.exposure)
