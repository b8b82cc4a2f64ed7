"""The one envelope every JSON message travels in, and the schema of each message type.

    {"v": 1, "type": "expose", "id": "9f2c...", "from": "ota1", "ts": "2024-05-01T22:10:03.123Z",
     "payload": {...}}

``make()`` builds and checks an outgoing message (a bad payload from our own code fails loudly);
``decode()`` parses and checks an incoming one. Anything malformed, of an unknown type or version,
with an unknown or badly typed field, or with a value out of range raises ProtocolError naming
the problem; the caller answers with an ``error`` event and executes nothing.

The validators live in schema.py (hand-written, no schema dependency; re-exported here). The
commands' payloads are derived from their args dataclasses in indisync/contracts.py, where each
command's fields, checks and defaults are written once. Anything that could become part of a file
path (filter names, targets, suffixes, file names) must pass ``safe_name``; ``contained_path`` is
the one way to turn wire names into a path, and it cannot leave its root.

Pure: no paho here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import contracts
from ..errors import ProtocolError
from . import topics
from .schema import (CELSIUS, FRAME_TYPES, HFR, IDENT, MAX_EXPOSURE_S, MAX_POSITION, POSITION, REASON,  # noqa: F401 - re-exported
                     Field, Validator, array, boolean, free_object, ident, integer, list_of, mapping, node_name,
                     nullable, number, obj, one_of, opt, req, safe_name, show, text, timestamp)

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # a state or command is < 2 KB; anything this big is hostile or broken

PHASES = ("idle", "exposing", "focusing", "dithering", "guiding", "waiting", "flipping", "error")
ROLES = ("master", "slave")
NIGHT_STATES = ("waiting_dark", "cooling", "slewing", "centering", "starting_guider", "imaging", "dithering",
                "refocusing", "flipping", "securing", "unsafe", "parked", "parking", "warming", "done",
                "dusk_flats", "dawn_flats", "waiting_dawn", "calibrating")  # night.machine.State
REPLY_STATUSES = contracts.REPLY_STATUSES

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

STATE = {
    "role": req(one_of(*ROLES)),
    "phase": req(one_of(*PHASES)),
    "exposure": opt(_EXPOSURE),
    "filter": opt(safe_name),
    "focuser_position": opt(POSITION),
    "hfr": opt(HFR),
    "stars": opt(integer(0, 10**7)),
    "frames": Field(integer(0, 10**9), 0),
    "version": req(text(32)),
    "error": opt(REASON),  # what put the node into phase 'error'
    # the master's night (indisync.night): its state, since/until when, and why it is there
    "night": opt(obj({
        "state": req(one_of(*NIGHT_STATES)),
        "since": opt(timestamp),
        "until": opt(timestamp),
        "reason": opt(REASON),
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

# Each command's payload: its args dataclass in indisync.contracts, where each field's check lives.
COMMANDS: dict[str, dict[str, Field]] = {name: args.wire_schema() for name, (args, _) in contracts.CONTRACTS.items()}

# -- cooling: the temperature/cooling state fields ----
STATE.update({
    "temperature": opt(CELSIUS),  # the camera sensor's, deg C; null: no cooler
    "cooling": opt(obj({  # null: no setpoint sent
        "setpoint": req(CELSIUS),
        "temperature": opt(CELSIUS),
        "reached": req(boolean),
        "eta_s": opt(number(0.0, 10 * 86_400.0)),  # seconds to the setpoint at the recent rate; null: unknown
    })),
})

# Plate-solved centring and the OTAs' co-alignment (indisync.acquire; the master after each slew).
_ARCSEC = number(-1e7, 1e7)
_COALIGN = {
    "status": req(one_of("ok", "failed")),  # failed: the OTA's solve failed or never answered (reason)
    "offset_arcmin": opt(number(0, 1e6)),  # the OTA's field centre from the master's
    "offset_east_arcmin": opt(_ARCSEC),
    "offset_north_arcmin": opt(_ARCSEC),
    "rotation_diff_deg": opt(number(-180, 180)),  # the OTA's rotation minus the master's
    "overlap_pct": opt(number(0, 100)),  # of the smaller field
    "parity_matches": opt(boolean),
    "low_overlap": opt(boolean),  # below acquire.min_overlap_pct
    "reason": opt(REASON),
}
STATE.update({
    # the master's last centring: {ok, error_arcsec, attempts, at, reason}
    "centering": opt(obj({"ok": req(boolean), "error_arcsec": opt(number(0, 1e7)),
                          "attempts": req(integer(0, 100)), "at": opt(timestamp), "reason": opt(REASON)})),
    # each slave OTA against the master's field, after the master centred (node name -> record)
    "coalign": opt(mapping(node_name, obj(_COALIGN), 64)),
})
# Each OTA's rotator turned to the aim's position angle after the master centred (node name -> record;
# indisync.night.actions.center.rotate_rig): also one ``rotation`` event per OTA.
_ROTATION = {
    "status": req(one_of("ok", "failed", "no_rotator")),
    "target_pa": opt(number(0, 360)),  # degrees E of N
    "pa": opt(number(-360, 360)),  # the last solved
    "error_deg": opt(number(-180, 180)),  # target minus solved
    "moves": opt(integer(0, 100)),
    "sign": opt(integer(-1, 1)),  # +1: the field's PA grows with the rotator's angle
    "angle": opt(number(-360, 720)),  # the rotator's, at the end
    "seconds": opt(number(0, 86_400)),
    "reason": opt(REASON),
}
STATE["rotation"] = opt(mapping(node_name, obj(_ROTATION), 64))
# Free space of storage.directory in GB (indisync.node checks it before each exposure); null: unknown.
STATE["disk_free_gb"] = opt(number(0, 1e9))

# The master's rig as it last read it (indisync.node.master_rig_state: cached INDI values, never a
# wait): what the dashboard's rig panel shows. RA/Dec JNow; times ISO-8601 UTC; site_tz an IANA name.
RIG_WEATHER = {"safe": opt(boolean), "since": opt(timestamp), "detail": opt(REASON)}
RIG_MOUNT = {"parked": opt(boolean), "tracking": opt(boolean), "slewing": opt(boolean),
             "pier_side": opt(one_of("east", "west")), "ra_deg": opt(number(0, 360)), "dec_deg": opt(number(-90, 90)),
             "alt_deg": opt(number(-90, 90)), "az_deg": opt(number(0, 360))}
RIG_DOME = {"shutter": req(one_of("open", "closed", "moving", "unknown")), "parked": opt(boolean)}
RIG = {"weather": opt(obj(RIG_WEATHER)), "mount": opt(obj(RIG_MOUNT)), "dome": opt(obj(RIG_DOME)),
       "site_tz": opt(text(64))}
STATE["rig"] = opt(obj(RIG))

# The season (indisync.season, the master with a scheduler: section): the target being imaged, why,
# and its counts per OTA and filter ({node: {filter or "none": {desired, accepted, rejected, pending,
# surplus}}}); ``next`` is the scheduler's last decision, ``candidates`` its scores.
_COUNT = integer(0, 10**7)
SEASON_COUNT = {"desired": req(_COUNT), "accepted": req(_COUNT), "rejected": req(_COUNT), "pending": req(_COUNT),
                "surplus": req(_COUNT)}
SEASON = {
    "target": opt(safe_name),  # null: no target now (a gap, or the season is complete)
    "project": opt(text(128)),
    "since": opt(timestamp),
    "reason": opt(REASON),  # why this target (the scheduler's words)
    "complete": opt(boolean),  # every OTA's plan of this target is met
    "progress": opt(mapping(node_name, mapping(text(64), obj(SEASON_COUNT), 64), 64)),
    "candidates": opt(list_of(obj({"target": req(safe_name), "score": opt(number(-1e9, 1e9)),
                                   "excluded_by": opt(REASON)}), 50)),
}
STATE["wheel"] = opt(list_of(text(64), 64))  # this node's filter wheel's FILTER_NAME names, in slot order
STATE["season"] = opt(obj(SEASON))

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
        "reason": opt(REASON),
        # what the night log and report need of the frame (indisync.record); all optional
        "start": opt(timestamp),
        "duration": opt(number(0, MAX_EXPOSURE_S)),  # EXPTIME: nominal
        # the real shutter interval on the node's clock: exposure started, image arrived
        "shutter_opened": opt(timestamp),
        "image_arrived": opt(timestamp),
        "hfr": opt(HFR),
        "stars": opt(integer(0, 10**7)),
        "fwhm": opt(number(0, 1000)),
        "focuser_position": opt(POSITION),
        "focuser_temperature": opt(number(-100, 100)),
        "ccd_temperature": opt(number(-100, 100)),
        "guide_rms_arcsec": opt(number(0, 100_000)),
        "grade": opt(one_of("accepted", "rejected")),
        "grade_reason": opt(REASON),
    },
    "filter_changed": {"filter": req(safe_name), "previous": opt(safe_name)},
    # a slave's frame measured after its expose reply (issue 13): HFR/NSTARS are not in its FITS header
    "frame_measured": {
        "exposure_id": req(ident),
        "filter": opt(safe_name),
        "file": opt(safe_name),
        "hfr": opt(HFR),
        "stars": opt(integer(0, 10**7)),
        "seconds": opt(number(0, 86_400)),
        # before_reply: the queue was full and the slave measured it inline (its reply waited)
        "when": Field(one_of("after_reply", "before_reply"), "after_reply"),
        "grade": opt(one_of("accepted", "rejected")),  # the frame against its node's recent ones (indisync.record)
        "grade_reason": opt(REASON),
        "error": opt(REASON),  # not measured: the HFR worker died or hung on it, or the node stopped first
    },
    "autofocus_started": {
        "run_id": req(ident),
        "filter": opt(safe_name),
        "position": opt(POSITION),
        "reason": opt(REASON),
    },
    "autofocus_point": {
        "run_id": req(ident),
        "position": req(POSITION),
        "hfr": opt(HFR),
        "stars": Field(integer(0, 10**7), 0),
    },
    "autofocus_done": {
        "run_id": req(ident),
        "status": req(one_of("ok", "failed")),
        "position": opt(POSITION),
        "hfr": opt(HFR),
        "reason": opt(REASON),
        "temperature": opt(number(-100, 100)),  # the focuser's, for the report's learned temperature slope
    },
    "dither_started": {"pixels": req(number(0, 1000))},
    "dither_settled": {
        "status": req(one_of("ok", "failed")),
        "seconds": opt(number(0, 86_400)),
        "reason": opt(REASON),
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
        "reason": opt(REASON),
    },
    "night_state": {"from": opt(one_of(*NIGHT_STATES)), "to": req(one_of(*NIGHT_STATES)), "reason": opt(REASON)},
    # one slew-solve-correct round of the master's centring (indisync.acquire.centering)
    "center_attempt": {
        "attempt": req(integer(1, 100)),
        "offset_arcsec": opt(number(0, 1e7)),  # solved centre to target; null: not solved (error)
        "offset_east_arcsec": opt(_ARCSEC),
        "offset_north_arcsec": opt(_ARCSEC),
        "rotation_deg": opt(number(-360, 360)),
        "solve_s": opt(number(0, 86_400)),
        "error": opt(REASON),
    },
    "center_done": {"ok": req(boolean), "attempts": req(integer(0, 100)), "error_arcsec": opt(number(0, 1e7)),
                    "seconds": opt(number(0, 86_400)), "reason": opt(REASON)},
    "coalignment": {"ota": req(node_name), **_COALIGN},
    # an alarm (indisync.alerts.Alarm), published by whoever raised it; cause is its dedupe key
    "alarm": {
        "cause": req(text(128)),  # "park_failed", "node_offline:ota2", "disk_low:ota2", ...
        "level": req(one_of("info", "warning", "critical")),
        "title": req(text(200)),
        "body": req(text(4000)),
    },
}
EVENTS["rotation"] = {"ota": req(node_name), **_ROTATION}

# What a light frame used, for the calibration it needs (indisync.calib.needs reads these from the
# night log): binning, the rotator's own angle, gain/offset where the camera has them, the setpoint.
EVENTS["exposure_done"].update({
    "frame_type": opt(one_of(*FRAME_TYPES)),
    "binning": opt(integer(1, 8)),
    "rotator_angle": opt(number(-360, 720)),
    "gain": opt(number(-1e6, 1e6)),
    "offset": opt(number(-1e6, 1e6)),
    "set_temperature": opt(number(-100, 100)),
})

# Calibration (indisync.calib, indisync.node.calibrating): each node says what it does as it goes.
_CALIB_SET = {
    "kind": req(one_of("flat", "dark", "bias")),
    "mode": opt(one_of("sky", "panel")),  # flats only
    "direction": opt(one_of("dusk", "dawn")),  # sky flats only
    "filter": opt(safe_name),
    "binning": opt(integer(1, 8)),
    "rotator_angle": opt(number(-360, 720)),
    "gain": opt(number(-1e6, 1e6)),
    "offset": opt(number(-1e6, 1e6)),
    "exposure": opt(number(0, MAX_EXPOSURE_S)),
    "setpoint": opt(number(-100, 100)),
    "temperature": opt(number(-100, 100)),
}
EVENTS["calib_progress"] = {  # every frame of a calibration set (a test frame too)
    **_CALIB_SET,
    "adu": opt(number(-1e9, 1e9)),  # this frame's mean ADU
    "target_adu": opt(number(0, 1e9)),  # the band's centre, in ADU
    "band": opt(array(number(-1e9, 1e9), number(-1e9, 1e9))),  # [low, high] ADU
    "frame": req(one_of("test", "kept", "discarded")),
    "kept": req(integer(0, 10**6)),
    "count": req(integer(0, 10**6)),  # the frames wanted
    "file": opt(text(255)),
    "reason": opt(REASON),  # discarded: why
}
EVENTS["calib_set_done"] = {  # a set finished, whatever the outcome (the night record: the last flats)
    **_CALIB_SET,
    "status": req(one_of("ok", "partial", "failed", "stopped", "taken", "skipped", "waiting")),
    "reason": opt(REASON),
    "kept": opt(integer(0, 10**6)),
    "taken": opt(integer(0, 10**6)),
    "count": opt(integer(0, 10**6)),
    "adu_min": opt(number(-1e9, 1e9)),
    "adu_max": opt(number(-1e9, 1e9)),
    "exposure_min": opt(number(0, MAX_EXPOSURE_S)),
    "exposure_max": opt(number(0, MAX_EXPOSURE_S)),
    "folder": opt(text(255)),
    "seconds": opt(number(0, 86_400 * 2)),
}
# A node's calibration under way (null: none): status and the dashboard show it.
STATE["calib"] = opt(obj({
    "kind": req(one_of("flat", "dark", "bias")),
    "mode": opt(one_of("sky", "panel")),
    "filter": opt(safe_name),
    "exposure": opt(number(0, MAX_EXPOSURE_S)),
    "adu": opt(number(-1e9, 1e9)),
    "kept": req(integer(0, 10**6)),
    "count": req(integer(0, 10**6)),
    "set": opt(integer(0, 1000)),  # this set's number (1-based)...
    "sets": opt(integer(0, 1000)),  # ...of this many
}))

REPLY = {
    "command_id": req(ident),
    "command": req(one_of(*COMMANDS)),
    "status": req(one_of(*REPLY_STATUSES)),
    "progress": opt(number(0, 1)),
    "result": opt(free_object(64)),
    "reason": opt(REASON),
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

# The independent guard's state (indisync.guard), retained on {prefix}/guard/{name}/state.
GUARD_STATES = ("armed", "acting", "acted", "blind")  # blind: it cannot read the devices it needs
GUARD_STATE = {
    "state": req(one_of(*GUARD_STATES)),
    "since": req(timestamp),  # when ``state`` last changed
    "reason": opt(REASON),  # why acting / acted / blind
    "rig_safe": opt(boolean),  # mount parked (or none) and dome closed (or none); null: unknown
    "unsafe": req(boolean),  # the conditions (weather, stale, sun, master gone) call for a closed rig now
    "weather": opt(obj({"safe": opt(boolean), "age_s": opt(number(0, 1e9))})),  # null: no weather device
    "mount": opt(obj({"parked": opt(boolean)})),  # null: no mount
    "dome": opt(obj({"closed": opt(boolean)})),  # null: no dome
    "sun_alt_deg": opt(number(-90, 90)),
    "master_online": opt(boolean),  # null: not known (yet)
    "last_action": opt(obj({"at": req(timestamp), "why": req(REASON), "parked": opt(boolean),
                            "closed": opt(boolean)})),
}
SCHEMAS["guard_state"] = (topics.STATE, obj(GUARD_STATE))


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
            raise ProtocolError(f"duplicate key {show(key)}")
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
        raise ProtocolError(f"unknown envelope field {show(unknown[0])}; allowed: {', '.join(_ENVELOPE_KEYS)}")
    missing = [key for key in _ENVELOPE_KEYS if key not in data]
    if missing:
        raise ProtocolError(f"envelope lacks {', '.join(missing)}")
    version = data["v"]
    if isinstance(version, bool) or version != VERSION:
        raise ProtocolError(f"unsupported protocol version {show(version)}; this node speaks v{VERSION}")
    mtype = data["type"]
    if not isinstance(mtype, str) or mtype not in SCHEMAS:
        raise ProtocolError(f"unknown message type {show(mtype)}")
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
    ok_id = msg_id if isinstance(msg_id, str) and IDENT.match(msg_id) else None
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
        raise ProtocolError(f"{show('/'.join(names))} leaves the directory {base}")
    return resolved
