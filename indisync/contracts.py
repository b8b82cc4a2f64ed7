"""Typed contracts between nodes: each command's arguments and its result are one frozen dataclass,
shared by the sender and the handler (as pyobs-core's interfaces are).

The sender builds the arguments and reads the reply through its result type::

    args = ExposeArgs(duration=300.0, exposure_id="17", sync="strict")
    pending = client.send(node, args.command, args.to_wire())
    ...  # wait up to args.reply_timeout() for the final reply
    reply = parse_reply("expose", pending.last)      # Reply[ExposeResult]; never raises
    if reply.ok:
        files = reply.result.files
    else:
        log.warning("no frame: %s", reply.reason)

The handler reads its arguments and answers with the result type (CommandServer sends
``to_wire()``)::

    def cmd_cool(self, command, progress) -> CoolResult:
        args = CoolArgs.from_wire(command.args)
        ...
        return CoolResult(reached=True, setpoint=args.setpoint, temperature=-10.2)

Each field carries its wire check (a validator of indisync.protocol.schema) in its metadata, so a
field's name, check and default are written once: the command schemas of messages.COMMANDS are
derived from the args classes (``wire_schema()``). An instance is checked when it is built, whether
its values came off the wire or from our own code: a value out of range raises ProtocolError
naming the field and what is allowed. Unknown fields are refused, as everywhere on the wire.

Light on purpose: the standard library and indisync.protocol.schema only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Mapping, TypeVar

from .errors import ProtocolError
from .protocol import schema as s

WIRE = "wire"  # a field's metadata key: its schema.Field (check and default)


def required(check: s.Validator) -> Any:
    """A field the wire must carry."""
    return dataclasses.field(metadata={WIRE: s.req(check)})


def optional(check: s.Validator, default: Any = None) -> Any:
    """A field the wire may leave out. Default None: null is allowed too; any other default: the
    value must pass ``check`` when given (as ``schema.opt``)."""
    return dataclasses.field(default=default, metadata={WIRE: s.opt(check, default)})


def _plain(value: Any) -> Any:
    """Tuples (how arrays are kept in a frozen instance) as JSON lists, at any depth."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


class WireData:
    """What args and results have in common: checked at construction, to and from the wire."""

    command: ClassVar[str]  # the command this belongs to

    @classmethod
    def where(cls) -> str:
        """How error messages name this object ('expose', 'expose result')."""
        return cls.command

    @classmethod
    def wire_schema(cls) -> dict[str, s.Field]:
        """Field name -> schema.Field, in field order: the object schema on the wire."""
        return {f.name: f.metadata[WIRE] for f in dataclasses.fields(cls)}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = f.metadata[WIRE].check(value, f"{self.where()}.{f.name}")
            if checked is not value:  # int -> float, list -> tuple
                object.__setattr__(self, f.name, checked)

    def to_wire(self) -> dict:
        """Every field, JSON-ready (arrays as lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_wire(cls, data: Any):
        """An instance from a wire object (missing optional fields take their defaults); an instance
        of ``cls`` is returned as it is. ProtocolError names an unknown, missing or bad field."""
        if isinstance(data, cls):
            return data
        return cls(**s.obj(cls.wire_schema())(data, cls.where()))


class CommandArgs(WireData):
    """A command's arguments. ``reply_timeout()``: how long a sender waits for the final reply."""

    TIMEOUT_S: ClassVar[float] = 10.0

    def reply_timeout(self) -> float:
        return self.TIMEOUT_S


class CommandResult(WireData):
    """What a command's ``done`` reply carries."""

    @classmethod
    def where(cls) -> str:
        return f"{cls.command} result"


# -- expose ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ExposeArgs(CommandArgs):
    """Take a frame (a slave: its next filter) now or at ``start_at``."""

    command = "expose"
    MARGIN_S: ClassVar[float] = 30.0  # beyond the exposure: a slave's download, file write and reply

    duration: float = required(s.number(0, s.MAX_EXPOSURE_S))
    frame_type: str = optional(s.one_of(*s.FRAME_TYPES), "light")
    filter: str | None = optional(s.safe_name)  # None: a slave picks the next filter of its own rotation
    binning: int = optional(s.integer(1, 8), 1)
    target: str | None = optional(s.safe_name)
    suffix: str | None = optional(s.safe_name)
    batch: int | None = optional(s.integer(0, 10**6))
    exposure_id: str | None = optional(s.ident)  # the master's id of the slot, shared by every node's frame
    # strict: one slave frame per master frame; loose: as many as fit in ``duration``
    sync: str = optional(s.one_of("strict", "loose"), "strict")
    start_at: str | None = optional(s.timestamp)  # open the shutter at this UTC time (master.start_lead); None: at once
    # The season (a scheduler: section on the master): this node's plan lines that need frames now,
    # (filter, exposure s, binning) in plan order; the node rotates through these only (its rotation
    # kept on disk). None: no season, the node's own slave.filters rotation; (): nothing to take (idle).
    plan: tuple[tuple[str | None, float, int], ...] | None = optional(
        s.list_of(s.array(s.nullable(s.safe_name), s.number(0, s.MAX_EXPOSURE_S, lo_open=True), s.integer(1, 8)),
                  64))

    def reply_timeout(self) -> float:
        return self.duration + self.MARGIN_S


@dataclass(frozen=True, kw_only=True)
class ExposeResult(CommandResult):
    """The frames a slave saved for one master exposure (one in strict sync, 0..n in loose), in order."""

    command = "expose"

    files: tuple[str, ...] = optional(s.list_of(s.text(255), 1000), ())
    filters: tuple[str | None, ...] = optional(s.list_of(s.nullable(s.safe_name), 1000), ())
    starts: tuple[str | None, ...] = optional(s.list_of(s.nullable(s.text(64)), 1000), ())  # DATE-OBS as written
    durations: tuple[float, ...] = optional(s.list_of(s.number(0, s.MAX_EXPOSURE_S), 1000), ())


# -- abort -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AbortArgs(CommandArgs):
    """Abort the exposure or autofocus run under way."""

    command = "abort"
    TIMEOUT_S = 10.0

    reason: str | None = optional(s.REASON)


@dataclass(frozen=True, kw_only=True)
class AbortResult(CommandResult):
    command = "abort"

    aborted: bool = required(s.boolean)


# -- autofocus -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AutofocusArgs(CommandArgs):
    """Run one autofocus. The node bounds it by its own focus.timeout; a sender that knows the rig's
    focus.timeout waits that plus MARGIN_S, else TIMEOUT_S (the default focus.timeout plus MARGIN_S)."""

    command = "autofocus"
    MARGIN_S: ClassVar[float] = 30.0
    TIMEOUT_S = 900.0 + 30.0

    filter: str | None = optional(s.safe_name)
    reason: str | None = optional(s.REASON)


_HFR_ANY = s.number(0, 1e6)  # an HFR as measured: a far-out-of-focus frame may be huge, never negative


@dataclass(frozen=True, kw_only=True)
class AutofocusResult(CommandResult):
    """A finished run, ok or not: a failed focus is data (the focuser is back at ``start_position``),
    never a failed reply, so it never blocks the night."""

    command = "autofocus"

    status: str = required(s.one_of("ok", "failed"))
    reason: str | None = optional(s.text(4000))  # None when ok
    position: int = required(s.POSITION)  # where the focuser was left
    start_position: int = required(s.POSITION)
    hfr: float | None = optional(_HFR_ANY)  # of the check frame
    frames: int = required(s.integer(0, 10**6))
    model: str | None = optional(s.text(64))
    # (position, HFR or None, stars) of every sweep frame, in the order taken
    points: tuple[tuple[int, float | None, int], ...] = optional(
        s.list_of(s.array(s.POSITION, s.nullable(_HFR_ANY), s.integer(0, 10**7)), 1000), ())
    plot: str | None = optional(s.text(4096))  # the V-curve PNG on the node
    failed: bool = optional(s.boolean, False)  # status == "failed"; kept for masters that read only this

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.failed


# -- sync_wait -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SyncWaitArgs(CommandArgs):
    """Answer once the node is idle (no exposure, wheel move or autofocus), within ``timeout``."""

    command = "sync_wait"
    MARGIN_S: ClassVar[float] = 5.0

    barrier: str = required(s.ident)
    timeout: float = optional(s.number(0, 86_400, lo_open=True), 60.0)

    def reply_timeout(self) -> float:
        return self.timeout + self.MARGIN_S


@dataclass(frozen=True, kw_only=True)
class SyncWaitResult(CommandResult):
    command = "sync_wait"

    barrier: str = required(s.ident)
    waited: float = required(s.number(0, 86_400))  # seconds until the node was idle


# -- ping ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PingArgs(CommandArgs):
    command = "ping"
    TIMEOUT_S = 5.0


@dataclass(frozen=True, kw_only=True)
class PingResult(CommandResult):
    command = "ping"

    pong: str = required(s.timestamp)  # the node's clock


# -- solve -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SolveArgs(CommandArgs):
    """Plate-solve one frame (co-alignment). None: the node's acquire.exposure / binning; ra/dec: a
    J2000 position hint for a node without a mount."""

    command = "solve"
    # the node's defaults: acquire.exposure 5 s and solve_timeout 60 s; then the download and the lock
    DEFAULT_EXPOSURE_S: ClassVar[float] = 5.0
    SOLVE_TIMEOUT_S: ClassVar[float] = 60.0
    MARGIN_S: ClassVar[float] = 60.0

    exposure: float | None = optional(s.number(0, s.MAX_EXPOSURE_S, lo_open=True))
    binning: int | None = optional(s.integer(1, 8))
    ra: float | None = optional(s.number(0, 360))
    dec: float | None = optional(s.number(-90, 90))

    def reply_timeout(self) -> float:
        exposure = self.DEFAULT_EXPOSURE_S if self.exposure is None else self.exposure
        return 2 * exposure + self.SOLVE_TIMEOUT_S + self.MARGIN_S


_ARCMIN = s.number(0, 1e5)
_ARCSEC_SIGNED = s.number(-1e9, 1e9)


@dataclass(frozen=True, kw_only=True)
class SolveResult(CommandResult):
    """A solve's result (acquire.live.SolveReport adds its geometry to it)."""

    command = "solve"

    ra: float = required(s.number(0, 360))  # J2000 degrees, field centre
    dec: float = required(s.number(-90, 90))
    rotation_deg: float = required(s.number(-360, 360))
    scale_arcsec: float = required(s.number(0, 1e5))  # per (binned) pixel
    parity: int = required(s.integer(-1, 1))
    field_w_arcmin: float = required(_ARCMIN)
    field_h_arcmin: float = required(_ARCMIN)
    offset_arcsec: float | None = optional(s.number(0, 1e9))  # solved centre from the reference position
    offset_east_arcsec: float | None = optional(_ARCSEC_SIGNED)
    offset_north_arcsec: float | None = optional(_ARCSEC_SIGNED)
    offset_from: str | None = optional(s.one_of("mount", "hint", "header"))
    reference_ra: float | None = optional(s.number(0, 360))
    reference_dec: float | None = optional(s.number(-90, 90))
    scale_hint_arcsec: float | None = optional(s.number(0, 1e5))
    scale_source: str = required(s.text(64))
    stars: int = required(s.integer(0, 10**7))
    index: str | None = optional(s.text(256))  # the astrometry.net index that solved it
    seconds: float = required(s.number(0, 86_400))


# -- cool / warm -----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CoolArgs(CommandArgs):
    """Cool to the setpoint; done once within tolerance (progress meanwhile), failed on timeout.
    None: from the node's own camera.cooling section."""

    command = "cool"
    DEFAULT_TIMEOUT_S: ClassVar[float] = 900.0  # camera.cooling.timeout's default
    MARGIN_S: ClassVar[float] = 30.0  # for the slowest node's answer

    setpoint: float | None = optional(s.number(-100.0, 50.0))
    tolerance: float | None = optional(s.number(0.0, 20.0, lo_open=True))
    timeout: float | None = optional(s.number(0.0, 86_400.0, lo_open=True))

    def reply_timeout(self) -> float:
        return (self.DEFAULT_TIMEOUT_S if self.timeout is None else self.timeout) + self.MARGIN_S


@dataclass(frozen=True, kw_only=True)
class CoolResult(CommandResult):
    command = "cool"

    reached: bool = required(s.boolean)
    setpoint: float | None = optional(s.CELSIUS)
    temperature: float | None = optional(s.CELSIUS)  # the sensor's at the answer; None: no cooler
    skipped: bool = optional(s.boolean, False)  # no cooler, or no setpoint anywhere (``reason``)
    reason: str | None = optional(s.REASON)


@dataclass(frozen=True, kw_only=True)
class WarmArgs(CommandArgs):
    """Set the setpoint to ``to`` (None: camera.cooling.warm_to) and answer at once."""

    command = "warm"
    TIMEOUT_S = 30.0

    to: float | None = optional(s.number(-100.0, 50.0))


@dataclass(frozen=True, kw_only=True)
class WarmResult(CommandResult):
    command = "warm"

    setpoint: float | None = optional(s.CELSIUS)
    temperature: float | None = optional(s.CELSIUS)
    skipped: bool = optional(s.boolean, False)  # no cooler or no warm_to


# -- stop (the master only) ------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StopArgs(CommandArgs):
    """End the night as at dawn (park, warm); ``abort``: abort the frame under way instead of finishing it."""

    command = "stop"
    TIMEOUT_S = 15.0

    abort: bool = optional(s.boolean, False)
    reason: str | None = optional(s.REASON)


@dataclass(frozen=True, kw_only=True)
class StopResult(CommandResult):
    command = "stop"

    stopping: bool = required(s.boolean)
    abort: bool = required(s.boolean)


# -- the registry and the reply ----------------------------------------------------------------
# command -> (its args, its result); the order is the wire's (messages.COMMANDS)
CONTRACTS: dict[str, tuple[type[CommandArgs], type[CommandResult]]] = {
    args.command: (args, result) for args, result in (
        (ExposeArgs, ExposeResult), (AbortArgs, AbortResult), (AutofocusArgs, AutofocusResult),
        (SyncWaitArgs, SyncWaitResult), (PingArgs, PingResult), (SolveArgs, SolveResult),
        (CoolArgs, CoolResult), (WarmArgs, WarmResult), (StopArgs, StopResult),
    )
}

R = TypeVar("R", bound=CommandResult)
REPLY_STATUSES = ("accepted", "progress", "done", "failed")


@dataclass(frozen=True)
class Reply(Generic[R]):
    """A reply as the sender reads it. ``result``: the typed result of a ``done`` reply, else None;
    ``reason``: why a ``failed`` one failed (the node's words, or why its result did not fit)."""

    command: str
    status: str  # accepted | progress | done | failed
    result: R | None = None
    reason: str | None = None
    progress: float | None = None  # 0..1 of a progress reply, if the node says

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def final(self) -> bool:
        return self.status in ("done", "failed")


def parse_reply(command: str, reply: Mapping | None) -> Reply:
    """Read a reply payload (``PendingCommand.last``, a barrier's answer) for ``command`` through its
    result type. Never raises: no reply, a reply to another command or a ``done`` whose result does
    not fit the result type is a failed Reply whose reason names the problem."""
    if command not in CONTRACTS:
        return Reply(command, "failed", reason=f"{command!r} is not a command; known: {', '.join(CONTRACTS)}")
    if reply is None:
        return Reply(command, "failed", reason="no reply")
    if not isinstance(reply, Mapping):
        return Reply(command, "failed", reason=f"a reply must be an object, got {s.show(reply)}")
    status, answered = reply.get("status"), reply.get("command", command)
    if answered != command:
        return Reply(command, "failed", reason=f"a reply to {s.show(answered)}, not to {command!r}")
    if status not in REPLY_STATUSES:
        return Reply(command, "failed", reason=f"reply status {s.show(status)}; allowed: {', '.join(REPLY_STATUSES)}")
    progress = reply.get("progress")
    progress = progress if isinstance(progress, (int, float)) and not isinstance(progress, bool) else None
    if status == "failed":
        reason = reply.get("reason")
        return Reply(command, "failed", reason=reason if isinstance(reason, str) and reason else "failed, no reason given")
    if status != "done":
        return Reply(command, status, progress=progress)
    result_type = CONTRACTS[command][1]
    try:
        result = result_type.from_wire(reply.get("result") or {})
    except ProtocolError as exc:
        return Reply(command, "failed", reason=f"answered done with a result that does not fit {result_type.__name__}: "
                                               f"{exc}; is the node running another indisync version?")
    return Reply(command, "done", result=result, progress=progress)


# -- rotate (appended: the registry above is extended below) -------------------------------------
def _plus_or_minus_one(value: Any, where: str) -> int:
    """+1 or -1."""
    if isinstance(value, bool) or value not in (1, -1) or not isinstance(value, int):
        raise ProtocolError(f"{where}: {s.show(value)} is not allowed; allowed: 1, -1")
    return value


@dataclass(frozen=True, kw_only=True)
class RotateArgs(CommandArgs):
    """Turn this node's rotator (indi.rotator) until its solved field's position angle is within
    acquire.pa_tolerance_deg of ``pa`` (degrees east of north, astrometry.net's orientation); ra/dec: a
    J2000 position hint for a node without a mount. The node bounds it by its acquire.rotate_attempts,
    indi.move_timeout and solve settings; a sender that knows those waits what
    indisync.night.actions.center.rotate_wait says, else TIMEOUT_S (the defaults' bound)."""

    command = "rotate"
    # the defaults: 3 moves of up to 120 s (indi.move_timeout), 4 solves of a 5 s frame in 60 s, margins
    TIMEOUT_S = 3 * (120.0 + 1.0) + 4 * (2 * 5.0 + 60.0 + 60.0) + 30.0

    pa: float = required(s.number(-360, 360))
    ra: float | None = optional(s.number(0, 360))
    dec: float | None = optional(s.number(-90, 90))


@dataclass(frozen=True, kw_only=True)
class RotateResult(CommandResult):
    """A finished rotation, ok or not: a failure is data (``status`` failed, ``reason``), never a
    failed reply, so it never blocks the night. ``no_rotator``: the node has none (indi.rotator null
    or not found); nothing was done. ra..parity: the last solved field (for the co-alignment)."""

    command = "rotate"

    status: str = required(s.one_of("ok", "failed", "no_rotator"))
    reason: str | None = optional(s.REASON)
    target_pa: float = required(s.number(0, 360))
    pa: float | None = optional(s.number(-360, 360))  # the last solved PA
    error_deg: float | None = optional(s.number(-180, 180))  # target minus solved
    angle: float | None = optional(s.number(-360, 720))  # the rotator's angle at the end
    moves: int = optional(s.integer(0, 100), 0)
    solves: int = optional(s.integer(0, 100), 0)
    sign: int | None = optional(_plus_or_minus_one)  # +1: the field's PA grows with the rotator's angle, -1: against it
    seconds: float = optional(s.number(0, 86_400), 0.0)
    ra: float | None = optional(s.number(0, 360))
    dec: float | None = optional(s.number(-90, 90))
    field_w_arcmin: float | None = optional(_ARCMIN)
    field_h_arcmin: float | None = optional(_ARCMIN)
    parity: int | None = optional(s.integer(-1, 1))

    @property
    def ok(self) -> bool:
        return self.status == "ok"


CONTRACTS[RotateArgs.command] = (RotateArgs, RotateResult)


# -- calibration: flats, darks (every node) and calibrate (the master) ---------------------------
# A flat set: what the lights of one node used (indisync.calib.needs.FlatSet on the wire).
FLAT_SET = s.obj({
    "filter": s.opt(s.safe_name),  # None: no wheel (or leave it)
    "binning": s.opt(s.integer(1, 8), 1),
    "rotator_angle": s.opt(s.number(-360, 720)),  # the rotator's own angle the lights used; None: no rotator
    "gain": s.opt(s.number(-1e6, 1e6)),
    "offset": s.opt(s.number(-1e6, 1e6)),
})
# A dark (or bias) set: exposure 0 for a bias.
DARK_SET = s.obj({
    "kind": s.req(s.one_of("dark", "bias")),
    "exposure": s.req(s.number(0, s.MAX_EXPOSURE_S)),
    "binning": s.opt(s.integer(1, 8), 1),
    "gain": s.opt(s.number(-1e6, 1e6)),
    "offset": s.opt(s.number(-1e6, 1e6)),
})
_SECONDS = s.number(0, 86_400 * 2)
_ADU = s.number(-1e9, 1e9)


@dataclass(frozen=True, kw_only=True)
class FlatsArgs(CommandArgs):
    """Take flats for ``sets`` on this node, each within the ADU band, ``count`` kept per set.

    ``mode`` sky: twilight (``direction`` dusk: the sky darkens; dawn: it brightens), the node ramps
    its own exposures from a test frame toward ``target_adu`` (a fraction of full scale) and orders
    its filters as the sky allows; panel: this node's light panel (indi.light_panel) at the brightness
    trained for each filter and binning (found by a short search the first time, then re-used).
    None: from this node's own flats: section. The node bounds the run by ``timeout`` (None: its
    flats.timeout); an `abort` ends it (frames kept so far stay)."""

    command = "flats"
    MARGIN_S: ClassVar[float] = 60.0
    TIMEOUT_S = 3600.0 + 60.0

    mode: str = required(s.one_of("sky", "panel"))
    direction: str | None = optional(s.one_of("dusk", "dawn"))  # sky flats only
    sets: tuple = optional(s.list_of(FLAT_SET, 64), ())
    target_adu: float | None = optional(s.number(0, 1, lo_open=True))
    tolerance: float | None = optional(s.number(0, 1, lo_open=True))
    count: int | None = optional(s.integer(1, 1000))
    min_exposure: float | None = optional(s.number(0, 3600, lo_open=True))
    max_exposure: float | None = optional(s.number(0, 3600, lo_open=True))
    sky_halving_s: float | None = optional(s.number(0, 86_400, lo_open=True))
    timeout: float | None = optional(s.number(0, 86_400, lo_open=True))

    def reply_timeout(self) -> float:
        return (self.TIMEOUT_S - self.MARGIN_S if self.timeout is None else self.timeout) + self.MARGIN_S


FLAT_SET_RESULT = s.obj({
    "filter": s.opt(s.safe_name),
    "binning": s.opt(s.integer(1, 8), 1),
    "rotator_angle": s.opt(s.number(-360, 720)),
    "gain": s.opt(s.number(-1e6, 1e6)),
    "offset": s.opt(s.number(-1e6, 1e6)),
    "status": s.req(s.one_of("ok", "partial", "failed", "stopped")),  # partial: fewer than count kept
    "reason": s.opt(s.REASON),
    "kept": s.req(s.integer(0, 10**6)),
    "taken": s.req(s.integer(0, 10**6)),  # test frames and discarded ones included
    "discarded": s.opt(s.integer(0, 10**6), 0),
    "exposures": s.opt(s.list_of(s.number(0, 3600), 1000), ()),  # of the kept frames, in order
    "adu": s.opt(s.list_of(_ADU, 1000), ()),  # the mean ADU of each kept frame
    "files": s.opt(s.list_of(s.text(255), 1000), ()),
    "brightness": s.opt(s.number(0, 1e6)),  # panel: the brightness used
    "trained": s.opt(s.one_of("search", "reused")),  # panel: found now, or taken from the library
    "seconds": s.opt(_SECONDS, 0.0),
})


@dataclass(frozen=True, kw_only=True)
class FlatsResult(CommandResult):
    """Per set: what was kept, taken and discarded, and why a set failed; a failed set is data, never
    a failed reply. ``status`` no_panel: a panel run on a node without indi.light_panel (nothing done)."""

    command = "flats"

    status: str = required(s.one_of("ok", "partial", "failed", "stopped", "no_panel", "nothing"))
    reason: str | None = optional(s.REASON)
    sets: tuple = optional(s.list_of(FLAT_SET_RESULT, 64), ())
    full_scale: float | None = optional(s.number(0, 1e9))
    seconds: float = optional(_SECONDS, 0.0)
    started: str | None = optional(s.timestamp)


@dataclass(frozen=True, kw_only=True)
class DarksArgs(CommandArgs):
    """Take darks and bias for ``sets`` at this node's cooling setpoint (``setpoint`` None: its own
    camera.cooling.setpoint), ``count`` each, skipping a set whose match in this node's library is
    younger than ``max_age_days``. ``covered``: the sender saw the OTA covered (the dome closed); the
    node takes darks only when covered, its dust cap closed, or its camera has a shutter."""

    command = "darks"
    MARGIN_S: ClassVar[float] = 60.0
    TIMEOUT_S = 21600.0 + 60.0

    sets: tuple = optional(s.list_of(DARK_SET, 128), ())
    setpoint: float | None = optional(s.number(-100.0, 50.0))
    count: int | None = optional(s.integer(1, 1000))
    max_age_days: float | None = optional(s.number(0, 10_000))
    covered: bool = optional(s.boolean, False)
    cool_wait_s: float | None = optional(s.number(0, 86_400))
    timeout: float | None = optional(s.number(0, 86_400 * 2, lo_open=True))

    def reply_timeout(self) -> float:
        return (self.TIMEOUT_S - self.MARGIN_S if self.timeout is None else self.timeout) + self.MARGIN_S


DARK_SET_RESULT = s.obj({
    "kind": s.req(s.one_of("dark", "bias")),
    "exposure": s.req(s.number(0, s.MAX_EXPOSURE_S)),
    "binning": s.opt(s.integer(1, 8), 1),
    "gain": s.opt(s.number(-1e6, 1e6)),
    "offset": s.opt(s.number(-1e6, 1e6)),
    # taken; skipped (a matching set younger than max_age_days); waiting (the cooler is not within
    # tolerance, or nothing covers the OTA: taken at the next chance); failed; stopped (aborted)
    "status": s.req(s.one_of("taken", "skipped", "waiting", "failed", "stopped")),
    "reason": s.opt(s.REASON),
    "count": s.opt(s.integer(0, 10**6), 0),
    "setpoint": s.opt(s.CELSIUS),
    "temperature": s.opt(s.CELSIUS),  # the sensor's mean over the set
    "age_days": s.opt(s.number(0, 1e6)),  # skipped: the age of the set kept
    "files": s.opt(s.list_of(s.text(255), 1000), ()),
    "seconds": s.opt(_SECONDS, 0.0),
})


@dataclass(frozen=True, kw_only=True)
class DarksResult(CommandResult):
    command = "darks"

    status: str = required(s.one_of("ok", "partial", "waiting", "failed", "stopped", "nothing"))
    reason: str | None = optional(s.REASON)
    sets: tuple = optional(s.list_of(DARK_SET_RESULT, 128), ())
    seconds: float = optional(_SECONDS, 0.0)


@dataclass(frozen=True, kw_only=True)
class CalibrateArgs(CommandArgs):
    """The master only: calibration on every node now (`indisync flats --panel`, `indisync darks`),
    the sets from the night record. Refused while the night has the mount out."""

    command = "calibrate"
    TIMEOUT_S = 21600.0 + 120.0

    what: str = required(s.one_of("panel", "darks"))
    covered: bool = optional(s.boolean, False)  # darks: the user says the OTAs are covered (--covered)
    exposures: tuple = optional(s.list_of(s.number(0, s.MAX_EXPOSURE_S, lo_open=True), 64), ())  # darks: more


@dataclass(frozen=True, kw_only=True)
class CalibrateResult(CommandResult):
    """Per node: its flats or darks result (as the node answered), or why it has none."""

    command = "calibrate"

    status: str = required(s.one_of("ok", "partial", "failed", "nothing"))
    reason: str | None = optional(s.REASON)
    nodes: dict = optional(s.mapping(s.node_name, s.free_object(16), 64), None)


for _args, _result in ((FlatsArgs, FlatsResult), (DarksArgs, DarksResult), (CalibrateArgs, CalibrateResult)):
    CONTRACTS[_args.command] = (_args, _result)
