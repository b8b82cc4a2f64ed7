"""The one envelope every JSON message travels in, and the schema of each message type.

    {"v": 1, "type": "expose", "id": "9f2c...", "from": "ota1", "ts": "2024-05-01T22:10:03.123Z",
     "payload": {...}}

``make()`` builds and checks an outgoing message (a bad payload from our own code fails loudly);
``decode()`` parses and checks an incoming one. Anything malformed, of an unknown type or version,
with an unknown or badly typed field, or with a value out of range raises ProtocolError naming
the problem; the caller answers with an ``error`` event and executes nothing.

Validators are hand-written (no schema dependency): each checks one JSON value and returns it,
with defaults filled in for missing optional fields. Anything that could become part of a file
path (filter names, targets, suffixes, file names) must pass ``safe_name``; ``contained_path``
is the one way to turn wire names into a path, and it cannot leave its root.

Pure: no paho here.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..errors import ProtocolError
from . import topics

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # a state or command is < 2 KB; anything this big is hostile or broken
MAX_EXPOSURE_S = 36_000.0  # 10 h: longer than any night's single frame
MAX_POSITION = 10**9  # focuser steps, either sign

PHASES = ("idle", "exposing", "focusing", "dithering", "guiding", "waiting", "flipping", "error")
ROLES = ("master", "slave")
NIGHT_STATES = ("waiting_dark", "cooling", "slewing", "centering", "starting_guider", "imaging", "dithering",
                "refocusing", "flipping", "unsafe", "parked", "parking", "warming", "done")  # indisync.night.machine.State
FRAME_TYPES = ("light", "dark", "flat", "bias")
REPLY_STATUSES = ("accepted", "progress", "done", "failed")

Validator = Callable[[Any, str], Any]
_MISSING = object()

# Every pattern ends in \Z, not $: '$' also matches before a trailing newline, which let "M42\n" through.
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
# Letters, digits, space, . _ + -; starts with a letter, digit or '_'; never '..', '/', '\\'.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 ._+-]{0,63}\Z")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _show(value: Any) -> str:
    """A short, escaped rendering of a wire value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- value validators --------------------------------------------------------------------
def integer(lo: int, hi: int) -> Validator:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where}: expected an integer, got {_show(value)}")
        if not lo <= value <= hi:
            raise ProtocolError(f"{where}: {value} is out of range; allowed {lo}..{hi}")
        return value

    return check


def number(lo: float, hi: float, lo_open: bool = False) -> Validator:
    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"{where}: expected a number, got {_show(value)}")
        if not (lo < value if lo_open else lo <= value) or not value <= hi:
            low = f"{lo} < x" if lo_open else f"{lo} <= x"
            raise ProtocolError(f"{where}: {value} is out of range; allowed {low} <= {hi}")
        return float(value)

    return check


def text(max_len: int) -> Validator:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise ProtocolError(f"{where}: expected a string, got {_show(value)}")
        if len(value) > max_len:
            raise ProtocolError(f"{where}: string of {len(value)} characters; allowed at most {max_len}")
        if _CONTROL.search(value):
            raise ProtocolError(f"{where}: control characters are not allowed in {_show(value)}")
        return value

    return check


def ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ProtocolError(f"{where}: {_show(value)} is not an id; allowed: 1-64 of [A-Za-z0-9_.:-]")
    return value


def node_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not topics.NODE_NAME.match(value):
        raise ProtocolError(f"{where}: {_show(value)} is not a node name; allowed: [a-z0-9-]")
    return value


def safe_name(value: Any, where: str) -> str:
    """A name that may become (part of) a file name: no separators, no '..', no leading dot or dash."""
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or ".." in value or value.endswith(" "):
        raise ProtocolError(
            f"{where}: {_show(value)} is not a safe name; allowed: 1-64 of letters, digits, space, ._+- "
            "starting with a letter, digit or '_', without '..'"
        )
    return value


def one_of(*allowed: str) -> Validator:
    def check(value: Any, where: str) -> str:
        if value not in allowed or not isinstance(value, str):
            raise ProtocolError(f"{where}: {_show(value)} is not allowed; allowed: {', '.join(allowed)}")
        return value

    return check


def timestamp(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        raise ProtocolError(f"{where}: {_show(value)} is not an ISO-8601 UTC time like 2024-05-01T22:10:03.123Z")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProtocolError(f"{where}: {_show(value)} is not a valid date and time") from None
    return value


def nullable(inner: Validator) -> Validator:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)

    return check


def free_object(max_keys: int) -> Validator:
    """A JSON object of at most ``max_keys`` string keys (free-form results); size is capped by the envelope."""

    def check(value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object, got {_show(value)}")
        if len(value) > max_keys:
            raise ProtocolError(f"{where}: {len(value)} keys; allowed at most {max_keys}")
        return value

    return check


def mapping(key: Validator, value: Validator, max_keys: int) -> Validator:
    """A JSON object whose keys pass ``key`` and values ``value`` (e.g. node name -> its record)."""

    def check(data: Any, where: str) -> dict:
        if not isinstance(data, dict):
            raise ProtocolError(f"{where}: expected an object, got {_show(data)}")
        if len(data) > max_keys:
            raise ProtocolError(f"{where}: {len(data)} keys; allowed at most {max_keys}")
        return {key(k, f"{where} key"): value(v, f"{where}.{k}") for k, v in data.items()}

    return check


@dataclass(frozen=True)
class Field:
    check: Validator
    default: Any = _MISSING  # _MISSING: required

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def req(check: Validator) -> Field:
    return Field(check)


def opt(check: Validator, default: Any = None) -> Field:
    return Field(nullable(check) if default is None else check, default)


def obj(schema: dict[str, Field]) -> Validator:
    """An object with exactly the fields of ``schema``; unknown fields are refused."""

    def check(value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object, got {_show(value)}")
        unknown = sorted(set(value) - set(schema))
        if unknown:
            raise ProtocolError(
                f"{where}: unknown field {_show(unknown[0])}; allowed: {', '.join(schema) or 'none'}"
            )
        out = {}
        for key, spec in schema.items():
            if key in value:
                out[key] = spec.check(value[key], f"{where}.{key}")
            elif spec.required:
                raise ProtocolError(f"{where}: missing field {key!r}")
            else:
                out[key] = spec.default
        return out

    return check


# -- message types -----------------------------------------------------------------------
_EXPOSURE = obj(
    {
        "id": req(ident),
        "filter": opt(safe_name),
        "start": req(timestamp),
        "duration": req(number(0, MAX_EXPOSURE_S)),
        "progress": opt(number(0, 1)),
    }
)
_POSITION = integer(-MAX_POSITION, MAX_POSITION)
_HFR = number(0, 1000)
_REASON = text(500)

STATE = {
    "role": req(one_of(*ROLES)),
    "phase": req(one_of(*PHASES)),
    "exposure": opt(_EXPOSURE),
    "filter": opt(safe_name),
    "focuser_position": opt(_POSITION),
    "hfr": opt(_HFR),
    "stars": opt(integer(0, 10**7)),
    "frames": Field(integer(0, 10**9), 0),
    "version": req(text(32)),
    "error": opt(_REASON),  # what put the node into phase 'error'
    # the master's night (indisync.night): its state, since/until when, and why it is there
    "night": opt(obj({
        "state": req(one_of(*NIGHT_STATES)),
        "since": opt(timestamp),
        "until": opt(timestamp),
        "reason": opt(_REASON),
    })),
    # the master's guider: state and RMS since guiding (re)started
    "guiding": opt(obj({
        "state": req(one_of("idle", "calibrating", "guiding", "settling", "lost", "error")),
        "rms_px": opt(number(0, 10_000)),
        "rms_arcsec": opt(number(0, 100_000)),
    })),
    # this node's clock minus the master's (s), and the round trip it was measured with (protocol/clock.py)
    "clock_offset_s": opt(number(-1e9, 1e9)),
    "clock_rtt_s": opt(number(0, 3600)),
}

COMMANDS: dict[str, dict[str, Field]] = {
    "expose": {
        "duration": req(number(0, MAX_EXPOSURE_S)),
        "frame_type": Field(one_of(*FRAME_TYPES), "light"),
        "filter": opt(safe_name),  # null: a slave picks the next filter of its own rotation
        "binning": Field(integer(1, 8), 1),
        "target": opt(safe_name),
        "suffix": opt(safe_name),
        "batch": opt(integer(0, 10**6)),
        "exposure_id": opt(ident),  # the master's id of the slot, shared by every node's frame
        # strict: one slave frame per master frame; loose: as many as fit in ``duration``
        "sync": Field(one_of("strict", "loose"), "strict"),
        "start_at": opt(timestamp),  # open the shutter at this UTC time (master.start_lead); null: at once
    },
    "abort": {"reason": opt(_REASON)},
    "autofocus": {"filter": opt(safe_name), "reason": opt(_REASON)},
    "sync_wait": {"barrier": req(ident), "timeout": Field(number(0, 86_400, lo_open=True), 60.0)},
    "ping": {},
    # plate-solve one frame (co-alignment); ra/dec: a J2000 position hint for a node without a mount
    "solve": {"exposure": opt(number(0, MAX_EXPOSURE_S, lo_open=True)), "binning": opt(integer(1, 8)),
              "ra": opt(number(0, 360)), "dec": opt(number(-90, 90))},
}

# -- cooling: the cool/warm commands every node serves, and the temperature/cooling state fields ----
_CELSIUS = number(-273.15, 200.0)


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}: expected true or false, got {_show(value)}")
    return value


COMMANDS.update({
    # Cool to the setpoint and answer done once within tolerance (progress meanwhile); failed on timeout.
    # Missing values come from the node's own camera.cooling section.
    "cool": {
        "setpoint": opt(number(-100.0, 50.0)),
        "tolerance": opt(number(0.0, 20.0, lo_open=True)),
        "timeout": opt(number(0.0, 86_400.0, lo_open=True)),
    },
    # Set the setpoint to ``to`` (default camera.cooling.warm_to) and answer at once.
    "warm": {"to": opt(number(-100.0, 50.0))},
})
STATE.update({
    "temperature": opt(_CELSIUS),  # the camera sensor's, deg C; null: no cooler
    "cooling": opt(obj({  # null: no setpoint sent
        "setpoint": req(_CELSIUS),
        "temperature": opt(_CELSIUS),
        "reached": req(_boolean),
        "eta_s": opt(number(0.0, 10 * 86_400.0)),  # seconds to the setpoint at the recent rate; null: unknown
    })),
})

# The night (indisync.night): the master's `stop` ends the night as at dawn (park, warm); abort: abort
# the frame under way instead of finishing it.
COMMANDS["stop"] = {"abort": Field(_boolean, False), "reason": opt(_REASON)}

# Plate-solved centring and the OTAs' co-alignment (indisync.acquire; the master after each slew).
_ARCSEC = number(-1e7, 1e7)
_COALIGN = {
    "status": req(one_of("ok", "failed")),  # failed: the OTA's solve failed or never answered (reason)
    "offset_arcmin": opt(number(0, 1e6)),  # the OTA's field centre from the master's
    "offset_east_arcmin": opt(_ARCSEC),
    "offset_north_arcmin": opt(_ARCSEC),
    "rotation_diff_deg": opt(number(-180, 180)),  # the OTA's rotation minus the master's
    "overlap_pct": opt(number(0, 100)),  # of the smaller field
    "parity_matches": opt(_boolean),
    "low_overlap": opt(_boolean),  # below acquire.min_overlap_pct
    "reason": opt(_REASON),
}
STATE.update({
    # the master's last centring: {ok, error_arcsec, attempts, at, reason}
    "centering": opt(obj({"ok": req(_boolean), "error_arcsec": opt(number(0, 1e7)),
                          "attempts": req(integer(0, 100)), "at": opt(timestamp), "reason": opt(_REASON)})),
    # each slave OTA against the master's field, after the master centred (node name -> record)
    "coalign": opt(mapping(node_name, obj(_COALIGN), 64)),
})

EVENTS: dict[str, dict[str, Field]] = {
    "exposure_started": {
        "exposure_id": req(ident),
        "filter": opt(safe_name),
        "duration": req(number(0, MAX_EXPOSURE_S)),
        "frame_type": Field(one_of(*FRAME_TYPES), "light"),
        "start": req(timestamp),
    },
    "exposure_done": {
        "exposure_id": req(ident),
        "status": req(one_of("ok", "failed", "aborted")),
        "filter": opt(safe_name),
        "file": opt(safe_name),
        "reason": opt(_REASON),
        # what the night log and report need of the frame (indisync.record); all optional
        "start": opt(timestamp),
        "duration": opt(number(0, MAX_EXPOSURE_S)),
        "hfr": opt(_HFR),
        "stars": opt(integer(0, 10**7)),
        "fwhm": opt(number(0, 1000)),
        "focuser_position": opt(_POSITION),
        "focuser_temperature": opt(number(-100, 100)),
        "ccd_temperature": opt(number(-100, 100)),
        "guide_rms_arcsec": opt(number(0, 100_000)),
        "grade": opt(one_of("accepted", "rejected")),
        "grade_reason": opt(_REASON),
    },
    "filter_changed": {"filter": req(safe_name), "previous": opt(safe_name)},
    # a slave's frame measured after its expose reply (issue 13): HFR/NSTARS are not in its FITS header
    "frame_measured": {
        "exposure_id": req(ident),
        "filter": opt(safe_name),
        "file": opt(safe_name),
        "hfr": opt(_HFR),
        "stars": opt(integer(0, 10**7)),
        "seconds": opt(number(0, 86_400)),
        # before_reply: the queue was full and the slave measured it inline (its reply waited)
        "when": Field(one_of("after_reply", "before_reply"), "after_reply"),
        "grade": opt(one_of("accepted", "rejected")),  # the frame against its node's recent ones (indisync.record)
        "grade_reason": opt(_REASON),
    },
    "autofocus_started": {
        "run_id": req(ident),
        "filter": opt(safe_name),
        "position": opt(_POSITION),
        "reason": opt(_REASON),
    },
    "autofocus_point": {
        "run_id": req(ident),
        "position": req(_POSITION),
        "hfr": opt(_HFR),
        "stars": Field(integer(0, 10**7), 0),
    },
    "autofocus_done": {
        "run_id": req(ident),
        "status": req(one_of("ok", "failed")),
        "position": opt(_POSITION),
        "hfr": opt(_HFR),
        "reason": opt(_REASON),
        "temperature": opt(number(-100, 100)),  # the focuser's, for the report's learned temperature slope
    },
    "dither_started": {"pixels": req(number(0, 1000))},
    "dither_settled": {
        "status": req(one_of("ok", "failed")),
        "seconds": opt(number(0, 86_400)),
        "reason": opt(_REASON),
    },
    "error": {"message": req(text(1000)), "topic": opt(text(256)), "about": opt(ident)},
    # the meridian flip (indisync.night.meridian): when it starts, and once imaging resumes after it
    "flip_started": {"pier_side": opt(one_of("east", "west")), "ha_min": opt(number(-720, 720))},
    "flip_done": {
        "status": req(one_of("ok", "failed")),
        "pier_side_before": opt(one_of("east", "west")),
        "pier_side_after": opt(one_of("east", "west")),
        "wait_s": opt(number(0, 86_400)),  # held for the hour angle before the slew
        "slew_s": opt(number(0, 86_400)),
        "total_s": opt(number(0, 86_400)),  # flip_started to the first frame after it (or to the failure)
        "since_last_frame_s": opt(number(0, 86_400)),  # the last frame's end to the first frame after the flip
        "reason": opt(_REASON),
    },
    "night_state": {"from": opt(one_of(*NIGHT_STATES)), "to": req(one_of(*NIGHT_STATES)), "reason": opt(_REASON)},
    # one slew-solve-correct round of the master's centring (indisync.acquire.centering)
    "center_attempt": {
        "attempt": req(integer(1, 100)),
        "offset_arcsec": opt(number(0, 1e7)),  # solved centre to target; null: not solved (error)
        "offset_east_arcsec": opt(_ARCSEC),
        "offset_north_arcsec": opt(_ARCSEC),
        "rotation_deg": opt(number(-360, 360)),
        "solve_s": opt(number(0, 86_400)),
        "error": opt(_REASON),
    },
    "center_done": {"ok": req(_boolean), "attempts": req(integer(0, 100)), "error_arcsec": opt(number(0, 1e7)),
                    "seconds": opt(number(0, 86_400)), "reason": opt(_REASON)},
    "coalignment": {"ota": req(node_name), **_COALIGN},
}

REPLY = {
    "command_id": req(ident),
    "command": req(one_of(*COMMANDS)),
    "status": req(one_of(*REPLY_STATUSES)),
    "progress": opt(number(0, 1)),
    "result": opt(free_object(64)),
    "reason": opt(_REASON),
}

# type -> (topic kind it travels on, payload validator)
SCHEMAS: dict[str, tuple[str, Validator]] = {"state": (topics.STATE, obj(STATE)), "reply": (topics.REPLY, obj(REPLY))}
SCHEMAS.update({name: (topics.CMD, obj(schema)) for name, schema in COMMANDS.items()})
SCHEMAS.update({name: (topics.EVENT, obj(schema)) for name, schema in EVENTS.items()})

# Clock offset round trips (protocol/clock.py), each on its sender's own ``clock`` topic, so the
# broker's ACL needs no node but the master to write another's topic. Times: POSIX s, sender's clock.
_POSIX = number(0, 1e11)
CLOCK_MESSAGES: dict[str, dict[str, Field]] = {
    "time_request": {},
    "time_reply": {"request_id": req(ident), "to": req(node_name), "t1": req(_POSIX), "t2": req(_POSIX)},
}
SCHEMAS.update({name: (topics.CLOCK, obj(schema)) for name, schema in CLOCK_MESSAGES.items()})


# -- the envelope ------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    type: str
    id: str
    sender: str  # "from" on the wire
    ts: str
    payload: dict = field(default_factory=dict)
    v: int = VERSION

    @property
    def kind(self) -> str:
        return SCHEMAS[self.type][0]

    def to_dict(self) -> dict:
        return {"v": self.v, "type": self.type, "id": self.id, "from": self.sender, "ts": self.ts, "payload": self.payload}

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.ts.replace("Z", "+00:00"))


def now_iso(when: datetime | None = None) -> str:
    when = when or datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def make(type: str, sender: str, payload: dict | None = None, id: str | None = None, ts: str | None = None) -> Envelope:
    """Build an outgoing message; raises ProtocolError if our own payload breaks its schema."""
    if type not in SCHEMAS:
        raise ProtocolError(f"unknown message type {type!r}; known: {', '.join(sorted(SCHEMAS))}")
    checked = SCHEMAS[type][1](payload or {}, type)
    return Envelope(type, ident(id or new_id(), "id"), node_name(sender, "from"), timestamp(ts or now_iso(), "ts"), checked)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ProtocolError(f"duplicate key {_show(key)}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ProtocolError(f"{name} is not a JSON number")


def parse_json(raw: bytes | str) -> Any:
    """Strict JSON: UTF-8, size-capped, no NaN/Infinity, no duplicate keys, bounded nesting."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(raw)} bytes; allowed at most {MAX_MESSAGE_BYTES}")
    try:
        string = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        return json.loads(string, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ProtocolError("message is not UTF-8 text") from None
    except RecursionError:
        raise ProtocolError("message nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ProtocolError(f"message is not JSON: {exc}") from None


_ENVELOPE_KEYS = ("v", "type", "id", "from", "ts", "payload")


def decode(raw: bytes | str, kind: str | None = None) -> Envelope:
    """Parse and check an incoming message; ``kind``: the topic kind it arrived on (cmd, event...)."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_ENVELOPE_KEYS))
    if unknown:
        raise ProtocolError(f"unknown envelope field {_show(unknown[0])}; allowed: {', '.join(_ENVELOPE_KEYS)}")
    missing = [key for key in _ENVELOPE_KEYS if key not in data]
    if missing:
        raise ProtocolError(f"envelope lacks {', '.join(missing)}")
    version = data["v"]
    if isinstance(version, bool) or version != VERSION:
        raise ProtocolError(f"unsupported protocol version {_show(version)}; this node speaks v{VERSION}")
    mtype = data["type"]
    if not isinstance(mtype, str) or mtype not in SCHEMAS:
        raise ProtocolError(f"unknown message type {_show(mtype)}")
    expected_kind, check = SCHEMAS[mtype]
    if kind is not None and kind != expected_kind:
        raise ProtocolError(f"a {mtype!r} message does not belong on a {kind!r} topic")
    msg_id = ident(data["id"], "id")
    sender = node_name(data["from"], "from")
    ts = timestamp(data["ts"], "ts")
    payload = check(data["payload"], mtype)
    return Envelope(mtype, msg_id, sender, ts, payload)


def peek(raw: bytes | str) -> tuple[str | None, str | None]:
    """Best-effort (id, type) of a message that failed ``decode``, so a failed reply can name it.

    Only values that pass the id rule and name a known command are returned; never raises.
    """
    try:
        data = parse_json(raw)
    except ProtocolError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    msg_id = data.get("id")
    mtype = data.get("type")
    ok_id = msg_id if isinstance(msg_id, str) and _IDENT.match(msg_id) else None
    ok_type = mtype if isinstance(mtype, str) and mtype in COMMANDS else None
    return ok_id, ok_type


# -- paths ---------------------------------------------------------------------------------
def contained_path(root: str | Path, *names: str) -> Path:
    """``root/names...``, each name checked by ``safe_name``, and the result provably inside ``root``."""
    base = Path(root).resolve()
    path = base
    for i, name in enumerate(names):
        path = path / safe_name(name, f"path part {i}")
    resolved = path.resolve()
    if not resolved.is_relative_to(base):  # a symlink inside root pointing out is refused too
        raise ProtocolError(f"{_show('/'.join(names))} leaves the directory {base}")
    return resolved
