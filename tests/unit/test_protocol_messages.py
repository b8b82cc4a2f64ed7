"""The envelope and per-type schemas: what is accepted, what is refused and how it is named,
and a hypothesis fuzz showing decode() only ever returns a checked Envelope or raises ProtocolError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indisync.errors import ProtocolError
from indisync.protocol import messages
from indisync.protocol.messages import contained_path, decode, make, peek, safe_name
from indisync.protocol.topics import Topics

TS = "2024-05-01T22:10:03.123Z"


def raw(type="expose", payload=None, **envelope):
    data = {"v": 1, "type": type, "id": "c1", "from": "ota1", "ts": TS, "payload": payload if payload is not None else {"duration": 30}}
    data.update(envelope)
    return json.dumps(data).encode()


def problem(data, kind="cmd") -> str:
    with pytest.raises(ProtocolError) as info:
        decode(data, kind)
    return str(info.value)


# -- round trips -----------------------------------------------------------------------------
def test_round_trip_fills_defaults_and_keeps_the_envelope():
    env = make("expose", "ota1", {"duration": 300, "filter": "Ha"}, id="b1-s3")
    back = decode(env.encode(), "cmd")
    assert back == env
    assert back.to_dict()["from"] == "ota1" and back.v == 1
    assert back.payload["frame_type"] == "light" and back.payload["binning"] == 1 and back.payload["target"] is None


def test_every_type_round_trips_with_a_minimal_payload():
    minimal = {
        "state": {"role": "slave", "phase": "idle", "version": "0.1.0"},
        "reply": {"command_id": "x", "command": "ping", "status": "done"},
        "expose": {"duration": 0},
        "sync_wait": {"barrier": "b1"},
        "exposure_started": {"exposure_id": "e", "duration": 1, "start": TS},
        "exposure_done": {"exposure_id": "e", "status": "ok"},
        "filter_changed": {"filter": "L"},
        "frame_measured": {"exposure_id": "e"},
        "autofocus_started": {"run_id": "r"},
        "autofocus_point": {"run_id": "r", "position": 1000},
        "autofocus_done": {"run_id": "r", "status": "failed", "reason": "minimum outside the scanned range"},
        "dither_started": {"pixels": 3},
        "dither_settled": {"status": "ok"},
        "error": {"message": "x"},
        "time_reply": {"request_id": "r1", "to": "ota2", "t1": 1.7e9, "t2": 1.7e9},
        "night_state": {"to": "imaging"},
        "flip_done": {"status": "ok"},
        "center_attempt": {"attempt": 1},
        "center_done": {"ok": False, "attempts": 0},
        "coalignment": {"ota": "slave1", "status": "failed"},
        "rotate": {"pa": 30.0},
        "flats": {"mode": "panel"},
        "calibrate": {"what": "panel"},
        "calib_progress": {"kind": "flat", "frame": "kept", "kept": 1, "count": 20},
        "calib_set_done": {"kind": "dark", "status": "skipped"},
        "rotation": {"ota": "slave1", "status": "no_rotator"},
        "alarm": {"cause": "disk_low:ota2", "level": "critical", "title": "t", "body": "b"},
        "guard_state": {"state": "armed", "since": TS, "unsafe": False},
    }
    for mtype in messages.SCHEMAS:
        env = make(mtype, "ota2", minimal.get(mtype, {}))
        assert decode(env.encode(), env.kind) == env


def test_timestamps_are_utc_iso():
    env = make("ping", "ota1")
    assert env.ts.endswith("Z") and env.time.utcoffset().total_seconds() == 0


# -- refusals name the problem ---------------------------------------------------------------
@pytest.mark.parametrize(
    "data, words",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (raw(v=2), "version 2"),
        (raw(v=True), "version"),
        (raw(type="launch_missiles"), "unknown message type 'launch_missiles'"),
        (raw(type="state", payload={"role": "slave", "phase": "idle", "version": "1"}), "does not belong on a 'cmd' topic"),
        (raw(payload={"duration": -1}), "expose.duration: -1 is out of range"),
        (raw(payload={"duration": 1e9}), "expose.duration"),
        (raw(payload={"duration": "30"}), "expected a number"),
        (raw(payload={"duration": True}), "expected a number"),
        (raw(payload={}), "missing field 'duration'"),
        (raw(payload={"duration": 1, "shutter": "open"}), "unknown field 'shutter'"),
        (raw(payload={"duration": 1, "binning": 9}), "expose.binning: 9 is out of range"),
        (raw(payload={"duration": 1, "binning": 2.0}), "expected an integer"),
        (raw(payload={"duration": 1, "frame_type": "selfie"}), "not allowed; allowed: light"),
        (raw(payload={"duration": 1, "filter": "../../etc/passwd"}), "expose.filter"),
        (raw(payload={"duration": 1, "target": "/abs"}), "expose.target"),
        (raw(payload={"duration": 1, "suffix": ".hidden"}), "expose.suffix"),
        (raw(payload={"duration": 1, "suffix": "a\\b"}), "not a safe name"),
        (raw(id="../x"), "not an id"),
        (raw(id=""), "not an id"),
        (raw(**{"from": "OTA 1"}), "not a node name"),
        (raw(ts="2024-05-01 22:10:03"), "ISO-8601"),
        (raw(ts="2024-05-01T22:10:03+02:00"), "ISO-8601"),
        (raw(ts="2024-13-01T22:10:03Z"), "not a valid date"),
        (raw(extra=1), "unknown envelope field 'extra'"),
        (b'{"v":1,"v":1,"type":"ping","id":"a","from":"a","ts":"' + TS.encode() + b'","payload":{}}', "duplicate key"),
        (raw(payload={"duration": float("nan")}).replace(b"NaN", b"NaN"), "NaN is not a JSON number"),
        (b"[" * 5000 + b"]" * 5000, "nests too deeply"),
        (b" " * (messages.MAX_MESSAGE_BYTES + 1), "allowed at most"),
        (raw(type="abort", payload={"reason": "x\x1b[2J"}), "control characters"),
    ],
)
def test_malformed_messages_are_refused_with_a_named_problem(data, words):
    assert words in problem(data)


def test_a_bad_outgoing_payload_fails_loudly():
    with pytest.raises(ProtocolError, match="autofocus_done.status"):
        make("autofocus_done", "ota1", {"run_id": "r", "status": "maybe"})


def test_peek_reads_only_a_clean_id_and_a_known_command():
    assert peek(raw(payload={"duration": -1})) == ("c1", "expose")
    assert peek(raw(id="../etc")) == (None, "expose")
    assert peek(raw(type="nope")) == ("c1", None)
    assert peek(b"garbage") == (None, None)


# -- names and paths ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["L", "Ha", "OIII 3nm", "H_Alpha", "M31", "NGC-7000", "R+G", "v1.2"])
def test_safe_names(name):
    assert safe_name(name, "x") == name


@pytest.mark.parametrize("name", ["", "..", "a/b", "a\\b", "../a", ".a", "-rf", "a..b", "a ", "x" * 65, "é", "a\x00", 5, None])
def test_unsafe_names(name):
    with pytest.raises(ProtocolError):
        safe_name(name, "x")


def test_contained_path_stays_inside(tmp_path: Path):
    assert contained_path(tmp_path, "M31", "L") == (tmp_path / "M31" / "L").resolve()
    with pytest.raises(ProtocolError):
        contained_path(tmp_path, "..", "etc")
    (tmp_path / "escape").symlink_to("/etc")
    with pytest.raises(ProtocolError, match="leaves the directory"):
        contained_path(tmp_path, "escape", "passwd")


# -- topics -----------------------------------------------------------------------------------
def test_topics_build_and_parse():
    t = Topics("indisync")
    assert t.state("ota1") == "indisync/ota1/state"
    assert t.every("reply") == "indisync/+/reply"
    assert t.parse("indisync/ota2/cmd").node == "ota2"
    assert t.parse("indisync/ota2/cmd/x") is None
    assert t.parse("other/ota2/cmd") is None
    assert t.parse("indisync/OTA/cmd") is None
    assert t.ha_config("sensor", "ota1", "hfr") == "homeassistant/sensor/ota1/hfr/config"
    with pytest.raises(ValueError):
        t.cmd("ota+1")


# -- fuzz -------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def envelope_like():
    """Mostly valid envelopes with fields swapped for hostile values, so the fuzz reaches the payload checks."""
    field_values = {
        "v": st.one_of(st.just(1), json_values),
        "type": st.one_of(st.sampled_from(sorted(messages.SCHEMAS)), json_values),
        "id": st.one_of(st.just("c1"), json_values),
        "from": st.one_of(st.just("ota1"), json_values),
        "ts": st.one_of(st.just(TS), json_values),
        "payload": st.one_of(
            st.fixed_dictionaries({}, optional={
                "duration": json_values, "filter": json_values, "binning": json_values, "barrier": json_values,
                "role": st.sampled_from(["master", "slave"]), "phase": json_values, "version": json_values,
                "command_id": json_values, "status": json_values, "command": json_values,
            }),
            json_values,
        ),
    }
    return st.fixed_dictionaries({}, optional=field_values)


def _decode_or_refuse(data):
    try:
        env = decode(data)
    except ProtocolError as exc:
        assert str(exc)  # a refusal always names its problem
        return None
    # whatever got through is a complete, checked envelope that re-encodes to itself
    assert env.type in messages.SCHEMAS and env.v == 1
    assert decode(env.encode()) == env
    return env


@settings(max_examples=400, deadline=None)
@given(envelope_like())
def test_fuzz_envelopes(data):
    _decode_or_refuse(json.dumps(data).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data):
    _decode_or_refuse(data)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["expose", "autofocus"]),
    st.dictionaries(st.sampled_from(["filter", "target", "suffix"]), st.text(alphabet="aZ09 ._+-/\\~$\x00", max_size=70), min_size=1),
)
def test_fuzz_names_never_escape(command, names):
    """Any filter/target/suffix that passes the schema joins under a root without leaving it."""
    payload = {"duration": 1, **names} if command == "expose" else {"filter": names.get("filter", "L")}
    try:
        env = decode(raw(type=command, payload=payload))
    except ProtocolError:
        return
    root = Path("/tmp/indisync-root")
    for key in ("filter", "target", "suffix"):
        value = env.payload.get(key)
        if value is not None:
            assert contained_path(root, value).is_relative_to(root.resolve())


def test_night_state_and_stop_schemas():
    from indisync.night.machine import State

    assert set(messages.NIGHT_STATES) == {s.value for s in State}
    env = make("night_state", "ota1", {"from": "imaging", "to": "unsafe", "reason": "weather alert"})
    assert decode(env.encode(), env.kind).payload["from"] == "imaging"
    with pytest.raises(ProtocolError):
        make("night_state", "ota1", {"to": "sleeping"})
    assert make("stop", "cli", {}).payload == {"abort": False, "reason": None}
    with pytest.raises(ProtocolError):
        make("stop", "cli", {"abort": "yes"})
    state = make("state", "ota1", {"role": "master", "phase": "idle", "version": "0.1.0",
                                   "night": {"state": "waiting_dark", "since": TS, "until": TS, "reason": "sun up"}})
    assert state.payload["night"]["until"] == TS
