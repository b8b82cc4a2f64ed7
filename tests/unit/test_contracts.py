"""The typed contracts (indisync.contracts): every command's args and result round-trip, the wire
schemas derived from them accept exactly what the wire accepted before, and a reply whose result
does not fit its type is a failed Reply with the reason, never a crash."""

from __future__ import annotations

import ast
import inspect
import json
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indisync import contracts
from indisync.contracts import (CONTRACTS, AbortArgs, AbortResult, AutofocusArgs, AutofocusResult, CoolArgs,
                                CoolResult, ExposeArgs, ExposeResult, PingArgs, PingResult, RotateArgs, RotateResult,
                                SolveArgs, SolveResult, StopArgs, StopResult, SyncWaitArgs, SyncWaitResult, WarmArgs,
                                WarmResult, parse_reply)
from indisync.errors import ProtocolError
from indisync.protocol import messages
from indisync.protocol.commands import CommandServer, PendingCommand
from indisync.protocol.schema import (FRAME_TYPES, MAX_EXPOSURE_S, Field, array, boolean, ident, integer, list_of,
                                      nullable, number, obj, one_of, opt, req, safe_name, text, timestamp)

TS = "2024-05-01T22:10:03.123Z"

# One full instance of each side of each command (every field away from its default where it has one).
EXAMPLES = {
    "expose": (ExposeArgs(duration=300, frame_type="flat", filter="Ha", binning=2, target="M42", suffix="Ha",
                          batch=3, exposure_id="17", sync="loose", start_at=TS,
                          plan=[["Red", 300, 1], [None, 120.5, 2]]),
               ExposeResult(files=["M42_Ha_001.fits", "M42_OIII_002.fits"], filters=["Ha", None],
                            starts=["2024-05-01T22:10:03.123", None], durations=[120, 60.5])),
    "abort": (AbortArgs(reason="rain"), AbortResult(aborted=True)),
    "autofocus": (AutofocusArgs(filter="L", reason="batch end"),
                  AutofocusResult(status="failed", reason="minimum outside the scanned range", position=41000,
                                  start_position=41000, hfr=None, frames=9, model="hyperbola",
                                  points=[[40000, 3.1, 80], [40500, None, 0]], plot="/data/focus/af.png",
                                  failed=True)),
    "sync_wait": (SyncWaitArgs(barrier="b1", timeout=5), SyncWaitResult(barrier="b1", waited=0.25)),
    "ping": (PingArgs(), PingResult(pong=TS)),
    "solve": (SolveArgs(exposure=4, binning=2, ra=83.8, dec=-5.4),
              SolveResult(ra=83.82, dec=-5.39, rotation_deg=-87.0, scale_arcsec=1.19, parity=1, field_w_arcmin=25.4,
                          field_h_arcmin=20.3, offset_arcsec=60.0, offset_east_arcsec=0.5, offset_north_arcsec=-60.0,
                          offset_from="hint", reference_ra=83.8, reference_dec=-5.4, scale_hint_arcsec=1.2,
                          scale_source="focal length", stars=700, index="index-4107", seconds=1.235)),
    "cool": (CoolArgs(setpoint=-10, tolerance=0.5, timeout=600),
             CoolResult(reached=True, setpoint=-10, temperature=-9.8, skipped=False, reason=None)),
    "warm": (WarmArgs(to=5), WarmResult(setpoint=5, temperature=-9.0, skipped=False)),
    "stop": (StopArgs(abort=True, reason="indisync stop"), StopResult(stopping=True, abort=True)),
    "rotate": (RotateArgs(pa=-30.5, ra=83.8, dec=-5.4),
               RotateResult(status="ok", reason=None, target_pa=329.5, pa=-30.2, error_deg=-0.3, angle=12.5, moves=2,
                            solves=3, sign=-1, seconds=41.2, ra=83.81, dec=-5.39, field_w_arcmin=25.4,
                            field_h_arcmin=20.3, parity=1)),
    "flats": (contracts.FlatsArgs(mode="sky", direction="dusk", sets=[{"filter": "R", "binning": 1, "rotator_angle": 90.0,
                                                                     "gain": 100.0, "offset": None}],
                                  target_adu=0.4, tolerance=0.1, count=20, min_exposure=0.1, max_exposure=30,
                                  sky_halving_s=180, timeout=3600),
              contracts.FlatsResult(status="partial", reason="R: 18 of 20 kept", full_scale=65535, seconds=300.5,
                                    started=TS)),
    "darks": (contracts.DarksArgs(sets=[{"kind": "dark", "exposure": 300.0, "binning": 1, "gain": None, "offset": None}],
                                  setpoint=-10, count=20, max_age_days=30, covered=True, cool_wait_s=600,
                                  timeout=21600),
              contracts.DarksResult(status="ok", reason=None, seconds=6000.0)),
    "calibrate": (contracts.CalibrateArgs(what="darks", covered=True, exposures=[60.0]),
                  contracts.CalibrateResult(status="ok", reason=None, nodes={"ota1": {"status": "ok"}})),
}


def done(command: str, result) -> dict:
    return {"command_id": "c1", "command": command, "status": "done", "result": result}


def through_the_wire(command: str, result) -> dict:
    """A done reply payload as a sender gets it: built, encoded and decoded as an envelope."""
    env = messages.make("reply", "ota2", done(command, result))
    return messages.decode(env.encode(), "reply").payload


# -- round trips ----------------------------------------------------------------------------------
def test_every_command_has_a_contract_and_an_example():
    assert list(CONTRACTS) == list(messages.COMMANDS) == list(EXAMPLES)
    for name, (args_type, result_type) in CONTRACTS.items():
        args, result = EXAMPLES[name]
        assert type(args) is args_type and type(result) is result_type
        assert args_type.command == result_type.command == name


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_command_round_trips_over_the_wire(name):
    args, result = EXAMPLES[name]
    assert type(args).from_wire(args.to_wire()) == args
    env = messages.make(name, "ota1", args.to_wire())  # the derived schema takes what to_wire gives
    assert _json(env.payload) == args.to_wire()  # arrays: tuples once checked, lists on the wire
    assert type(args).from_wire(messages.decode(env.encode(), "cmd").payload) == args

    assert type(result).from_wire(json.loads(json.dumps(result.to_wire()))) == result
    reply = parse_reply(name, through_the_wire(name, result.to_wire()))
    assert reply.ok and reply.final and reply.result == result and reply.reason is None


def test_defaults_and_normalised_values():
    args = ExposeArgs.from_wire({"duration": 300, "filter": "Ha"})
    assert (args.frame_type, args.binning, args.target, args.sync) == ("light", 1, None, "strict")
    assert isinstance(args.duration, float) and args.duration == 300.0
    result = ExposeResult(files=["a.fits"], filters=["Ha"], starts=[None], durations=[60])
    assert result.files == ("a.fits",) and result.durations == (60.0,)  # arrays kept as tuples: frozen all through
    assert result.to_wire() == {"files": ["a.fits"], "filters": ["Ha"], "starts": [None], "durations": [60.0]}
    assert StopArgs().to_wire() == {"abort": False, "reason": None}
    assert ExposeArgs.from_wire(args) is args  # a local caller may hand typed args in a Command


def test_reply_timeouts_come_from_the_args():
    assert ExposeArgs(duration=300).reply_timeout() == 300 + ExposeArgs.MARGIN_S
    assert SyncWaitArgs(barrier="b").reply_timeout() == 60 + SyncWaitArgs.MARGIN_S
    assert CoolArgs(timeout=600).reply_timeout() == 600 + CoolArgs.MARGIN_S
    assert CoolArgs().reply_timeout() == CoolArgs.DEFAULT_TIMEOUT_S + CoolArgs.MARGIN_S
    assert SolveArgs(exposure=10).reply_timeout() > SolveArgs().reply_timeout() > 2 * 5.0
    required = {"expose": {"duration": 1}, "sync_wait": {"barrier": "b"}, "rotate": {"pa": 30}, "flats": {"mode": "sky"},
                "calibrate": {"what": "darks"}}
    for name, (args_type, _) in CONTRACTS.items():
        assert args_type.from_wire(required.get(name, {})).reply_timeout() > 0, name


# -- refusals name the field ----------------------------------------------------------------------
@pytest.mark.parametrize("cls, data, words", [
    (ExposeArgs, {"duration": 1, "shutter": "open"}, "expose: unknown field 'shutter'; allowed: duration, frame_type"),
    (ExposeArgs, {}, "expose: missing field 'duration'"),
    (ExposeArgs, {"duration": -1}, "expose.duration: -1 is out of range"),
    (ExposeArgs, {"duration": 1, "frame_type": None}, "expose.frame_type: None is not allowed; allowed: light"),
    (ExposeArgs, {"duration": 1, "filter": "../x"}, "expose.filter"),
    (CoolArgs, {"to": 5}, "cool: unknown field 'to'"),
    (StopArgs, {"abort": "yes"}, "stop.abort: expected true or false"),
    (SolveArgs, {"dec": 91}, "solve.dec: 91 is out of range"),
    (ExposeResult, {"files": "a.fits"}, "expose result.files: expected an array"),
    (AutofocusResult, {"status": "ok", "position": 1, "start_position": 1, "frames": 1, "points": [[1, 2]]},
     "autofocus result.points[0]: expected an array of 3 values"),
    (CoolResult, {"reached": True, "mood": "cold"}, "cool result: unknown field 'mood'"),
    (PingResult, {}, "ping result: missing field 'pong'"),
    (ExposeArgs, ["duration", 1], "expose: expected an object"),
])
def test_a_bad_wire_object_is_refused_naming_the_field(cls, data, words):
    with pytest.raises(ProtocolError) as info:
        cls.from_wire(data)
    assert words in str(info.value)


def test_our_own_bad_values_fail_when_built():
    with pytest.raises(ProtocolError, match=r"expose.binning: 9 is out of range; allowed 1..8"):
        ExposeArgs(duration=10, binning=9)
    with pytest.raises(ProtocolError, match=r"sync_wait result.barrier"):
        SyncWaitResult(barrier="../b", waited=0)


# -- replies --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command, reply, words", [
    ("expose", done("expose", {"files": "a.fits"}), "does not fit ExposeResult: expose result.files: expected an array"),
    ("expose", done("expose", CoolResult(reached=True).to_wire()), "expose result: unknown field 'reached'"),
    ("sync_wait", done("sync_wait", {"phase": "idle"}), "sync_wait result: unknown field 'phase'"),
    ("sync_wait", done("sync_wait", None), "sync_wait result: missing field 'barrier'"),
    ("autofocus", done("autofocus", {"status": "maybe", "position": 1, "start_position": 1, "frames": 0}),
     "autofocus result.status: 'maybe' is not allowed"),
    ("cool", done("cool", {"reached": "yes"}), "cool result.reached: expected true or false"),
    ("expose", done("autofocus", {}), "a reply to 'autofocus', not to 'expose'"),
    ("expose", None, "no reply"),
    ("expose", "done", "a reply must be an object"),
    ("expose", {"command": "expose", "status": "finished"}, "reply status 'finished'"),
    ("expose", {"command": "expose", "status": "failed", "reason": "busy"}, "busy"),
    ("expose", {"command": "expose", "status": "failed"}, "no reason given"),
    ("launch", done("launch", {}), "'launch' is not a command"),
])
def test_a_reply_that_does_not_fit_is_failed_with_the_reason(command, reply, words):
    parsed = parse_reply(command, reply)
    assert parsed.status == "failed" and not parsed.ok and parsed.final and parsed.result is None
    assert words in parsed.reason, parsed.reason


def test_a_result_of_the_wrong_type_through_a_real_envelope_is_failed():
    reply = parse_reply("expose", through_the_wire("expose", {"files": ["a.fits"], "exposure": 3}))
    assert reply.status == "failed" and "ExposeResult" in reply.reason and "'exposure'" in reply.reason


def test_accepted_and_progress_replies_carry_no_result():
    assert parse_reply("cool", {"command": "cool", "status": "accepted"}).status == "accepted"
    progress = parse_reply("cool", {"command": "cool", "status": "progress", "progress": 0.5,
                                    "result": {"temperature": 3.0}})
    assert progress.status == "progress" and progress.progress == 0.5 and progress.result is None
    assert not progress.ok and not progress.final


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(CONTRACTS)), st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "command": st.sampled_from(list(CONTRACTS)), "status": st.sampled_from(list(contracts.REPLY_STATUSES)),
    "result": json_values, "reason": json_values, "progress": json_values})))
def test_parse_reply_never_raises(command, reply):
    parsed = parse_reply(command, reply)
    assert parsed.status in contracts.REPLY_STATUSES
    assert (parsed.result is not None) == parsed.ok
    assert parsed.ok or parsed.status in ("accepted", "progress") or parsed.reason


# -- the derived wire schema is the one before ----------------------------------------------------
# messages.COMMANDS as it was written by hand before the contracts (commit f66a5a1)
_REASON = text(500)
BEFORE: dict[str, dict[str, Field]] = {
    "expose": {
        "duration": req(number(0, MAX_EXPOSURE_S)),
        "frame_type": Field(one_of(*FRAME_TYPES), "light"),
        "filter": opt(safe_name),
        "binning": Field(integer(1, 8), 1),
        "target": opt(safe_name),
        "suffix": opt(safe_name),
        "batch": opt(integer(0, 10**6)),
        "exposure_id": opt(ident),
        "sync": Field(one_of("strict", "loose"), "strict"),
        "start_at": opt(timestamp),
        # issue 16 (the season): this node's needed plan lines; absent/null: as before
        "plan": opt(list_of(array(nullable(safe_name), number(0, MAX_EXPOSURE_S, lo_open=True), integer(1, 8)), 64)),
    },
    "abort": {"reason": opt(_REASON)},
    "autofocus": {"filter": opt(safe_name), "reason": opt(_REASON)},
    "sync_wait": {"barrier": req(ident), "timeout": Field(number(0, 86_400, lo_open=True), 60.0)},
    "ping": {},
    "solve": {"exposure": opt(number(0, MAX_EXPOSURE_S, lo_open=True)), "binning": opt(integer(1, 8)),
              "ra": opt(number(0, 360)), "dec": opt(number(-90, 90))},
    "cool": {
        "setpoint": opt(number(-100.0, 50.0)),
        "tolerance": opt(number(0.0, 20.0, lo_open=True)),
        "timeout": opt(number(0.0, 86_400.0, lo_open=True)),
    },
    "warm": {"to": opt(number(-100.0, 50.0))},
    "stop": {"abort": Field(boolean, False), "reason": opt(_REASON)},
    "rotate": {"pa": req(number(-360, 360)), "ra": opt(number(0, 360)), "dec": opt(number(-90, 90))},
}
# issue 17's commands (calibration): derived from their dataclasses from the start
CALIB_COMMANDS = ("flats", "darks", "calibrate")


def test_the_derived_schema_has_the_fields_defaults_and_order_of_before():
    assert list(messages.COMMANDS) == list(BEFORE) + list(CALIB_COMMANDS)
    for name, fields in BEFORE.items():
        derived = messages.COMMANDS[name]
        assert list(derived) == list(fields), name
        for key, spec in fields.items():
            assert derived[key].required == spec.required and derived[key].default == spec.default, (name, key)
    for name in BEFORE:  # and a reply may name each of them
        messages.make("reply", "ota2", {"command_id": "x", "command": name, "status": "done"})


# the payloads the existing tests send (test_protocol_messages, test_protocol_commands, test_acquire_solver...)
LITERAL = [
    ("expose", {"duration": 300, "filter": "Ha"}), ("expose", {"duration": 5}), ("expose", {"duration": 0}),
    ("expose", {"duration": -1}), ("expose", {"duration": 1e9}), ("expose", {"duration": "30"}),
    ("expose", {"duration": True}), ("expose", {}), ("expose", {"duration": 1, "shutter": "open"}),
    ("expose", {"duration": 1, "binning": 9}), ("expose", {"duration": 1, "binning": 2.0}),
    ("expose", {"duration": 1, "frame_type": "selfie"}), ("expose", {"duration": 1, "filter": "../../etc/passwd"}),
    ("expose", {"duration": 1, "target": "/abs"}), ("expose", {"duration": 1, "suffix": ".hidden"}),
    ("expose", {"duration": 60, "sync": "loose", "exposure_id": "7", "batch": 1}),
    ("autofocus", {}), ("autofocus", {"reason": "batch end"}), ("abort", {"reason": "x\x1b[2J"}),
    ("sync_wait", {"barrier": "b1"}), ("sync_wait", {"barrier": "b1", "timeout": 0}), ("ping", {}),
    ("solve", {}), ("solve", {"exposure": 0}), ("solve", {"dec": 91}), ("solve", {"binning": 9}),
    ("solve", {"radius": 1}), ("cool", {}), ("cool", {"setpoint": -10, "tolerance": 0.5}), ("warm", {"to": 8}),
    ("stop", {}), ("stop", {"abort": "yes"}), ("stop", {"abort": True, "reason": "indisync stop"}),
]


def outcome(check, payload, where):
    try:
        return "ok", check(payload, where)
    except ProtocolError as exc:
        return "refused", str(exc)


def assert_same_as_before(name, payload):
    before = outcome(obj(BEFORE[name]), payload, name)
    assert outcome(obj(messages.COMMANDS[name]), payload, name) == before
    try:  # and through the dataclass: the same values, the same refusal
        typed = ("ok", CONTRACTS[name][0].from_wire(payload).to_wire())
    except ProtocolError as exc:
        typed = ("refused", str(exc))
    assert typed[0] == before[0], (name, payload, typed, before)
    if before[0] == "ok":
        assert typed[1] == _json(before[1])


def _json(value):
    """A checked payload as the wire carries it (its arrays, tuples once checked, as lists)."""
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("name, payload", LITERAL)
def test_literal_payloads_are_taken_or_refused_as_before(name, payload):
    assert_same_as_before(name, payload)


# per field: values mostly allowed, some just outside, some of the wrong type
CANDIDATES = {
    "duration": [0, 1, 60.0, MAX_EXPOSURE_S, MAX_EXPOSURE_S + 1, -1, "30", True],
    "frame_type": ["light", "dark", "bias", "selfie", None], "sync": ["strict", "loose", "both", None],
    "filter": ["Ha", "OIII 3nm", "../x", None], "target": ["M42", ".h", None], "suffix": ["Ha", "a/b", None],
    "binning": [1, 8, 9, 2.0, None], "batch": [0, 10**6, 10**6 + 1, None],
    "exposure_id": ["7", "b1-3", "../x", None], "barrier": ["b1", "", None], "start_at": [TS, "2024-05-01 22:10", None],
    "reason": ["rain", "x\x1b[2J", "a" * 501, None], "timeout": [0, 0.5, 60, 86_400, 86_401, None],
    "exposure": [0, 0.1, MAX_EXPOSURE_S, None], "ra": [0, 360, 361, None], "dec": [-90, 90.5, None],
    "setpoint": [-100, 50, 51, None], "tolerance": [0, 0.5, 20, None], "to": [-100.0, 50, 50.5, None],
    "abort": [True, False, "yes", None], "extra": [1], "pa": [-360, 0, 359.5, 360.5, "30", None],
    "plan": [[["Red", 300, 1]], [], [[None, 2.5, 2], ["Ha", 600, 1]], [["Red", 0, 1]], [["../x", 1, 1]], None],
}


def _payloads():
    def payload(name):
        keys = list(BEFORE[name])
        value = {key: st.one_of(*[st.sampled_from(CANDIDATES[key])] * 5, json_values) for key in keys}
        unknown = st.one_of(*[st.just({})] * 9, st.just({"extra": 1}))  # now and then a field nobody knows
        return st.tuples(st.just(name), st.builds(lambda known, extra: {**known, **extra},
                                                  st.fixed_dictionaries({}, optional=value), unknown))

    return st.sampled_from(list(BEFORE)).flatmap(payload)


@settings(max_examples=400, deadline=None)
@given(_payloads())
def test_any_payload_is_taken_or_refused_as_before(case):
    assert_same_as_before(*case)


def _allowed(name, key):
    return [v for v in CANDIDATES[key] if outcome(BEFORE[name][key].check, v, key)[0] == "ok"]


def _good_payloads():
    def payload(name):
        fields = BEFORE[name]
        required = {key: st.sampled_from(_allowed(name, key)) for key, spec in fields.items() if spec.required}
        optional = {key: st.sampled_from(_allowed(name, key)) for key, spec in fields.items() if not spec.required}
        return st.tuples(st.just(name), st.fixed_dictionaries(required, optional=optional))

    return st.sampled_from(list(BEFORE)).flatmap(payload)


@settings(max_examples=200, deadline=None)
@given(_good_payloads())
def test_any_good_payload_gives_the_same_values_as_before(case):
    name, payload = case
    assert outcome(obj(BEFORE[name]), payload, name)[0] == "ok"
    assert_same_as_before(name, payload)


# -- the server and the client side ---------------------------------------------------------------
def serve(handlers):
    replies, done_event = [], threading.Event()

    def on_reply(env):
        replies.append(env.payload)
        if env.payload["status"] in ("done", "failed"):
            done_event.set()

    server = CommandServer("ota2", handlers, on_reply, lambda *a: None)
    return server, replies, done_event


def test_the_server_sends_a_typed_result_as_to_wire_and_refuses_another_commands_type():
    server, replies, finished = serve({"cool": lambda c, p: CoolResult(reached=True, setpoint=CoolArgs.from_wire(
        c.args).setpoint), "warm": lambda c, p: CoolResult(reached=True)})
    try:
        server.handle(messages.make("cool", "ota1", CoolArgs(setpoint=-10).to_wire(), id="c1").encode())
        assert finished.wait(5)
        assert replies[-1]["result"] == CoolResult(reached=True, setpoint=-10).to_wire()
        assert parse_reply("cool", replies[-1]).result.setpoint == -10.0
        finished.clear()
        server.handle(messages.make("warm", "ota1", {}, id="c2").encode())
        assert finished.wait(5)
        assert replies[-1]["status"] == "failed" and "a warm answers WarmResult" in replies[-1]["reason"]
        finished.clear()
        server.handle(messages.make("ping", "ota1", {}, id="c3").encode())
        assert finished.wait(5)
        assert parse_reply("ping", replies[-1]).result.pong.endswith("Z")
    finally:
        server.close()


def test_a_pending_command_reads_its_reply_through_the_result_type():
    pending = PendingCommand("ota2", messages.make("sync_wait", "master", {"barrier": "b1"}), 0.0)
    assert pending.reply().reason == "no reply"
    pending.last = done("sync_wait", {"barrier": "b1", "waited": 0.5})
    assert pending.reply().result == SyncWaitResult(barrier="b1", waited=0.5)


def test_contracts_import_nothing_heavy():
    """contracts.py: the standard library, errors and protocol.schema, so anyone may import it."""
    tree = ast.parse(inspect.getsource(contracts))
    imported = {("." * node.level) + (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported <= {"__future__", "dataclasses", "typing", ".errors", ".protocol"}, imported
