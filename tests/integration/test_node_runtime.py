"""Issue 4 acceptance on the real node process: `indisync run --role slave` against its own
indiserver (the INDI simulators) and a private mosquitto, driven over MQTT as the master would.

One rig serves the module (starting indiservers and a node costs seconds); the tests run in file
order and the last one kills the node. Each test still sets up what it needs, so any one of them
also runs alone (``-k``).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from astropy.io import fits

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.protocol.commands import CommandClient
from indisync.protocol.topics import Topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.indi import get_numbers
from indisync.sim.rig import FOCUSER_START, SimRig
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

NODE = "slave1"
FILTERS = ["Red", "Green", "Blue"]
SLAVE_EXPOSURE = 30.0  # simulated seconds per slave frame (0.3 s real at time factor 0.01)
INDISYNC = [sys.executable, "-m", "indisync.cli"]
REPO = Path(__file__).resolve().parents[2]
HA_ENTITIES = {
    ("sensor", "phase"), ("sensor", "filter"), ("sensor", "focuser_position"), ("sensor", "hfr"),
    ("sensor", "frames"), ("sensor", "exposure_progress"), ("binary_sensor", "online"),
}


@dataclass
class Up:
    rig: SimRig
    cfg: MqttConfig
    topics: Topics
    wire: MqttCollector  # everything under indisync/# and homeassistant/# since before the node started
    stale_id: str  # a valid expose left retained on the cmd topic before the node started

    @property
    def images(self) -> Path:
        return self.rig.images / NODE

    def events(self, type_: str | None = None, since: float = 0.0) -> list[messages.Envelope]:
        out = []
        for t, msg in list(self.wire.received):
            if t >= since and msg.topic == self.topics.event(NODE):
                env = messages.decode(msg.payload, "event")
                if type_ is None or env.type == type_:
                    out.append(env)
        return out

    def replies(self, since: float = 0.0) -> list[dict]:
        return [messages.decode(m.payload, "reply").payload for t, m in list(self.wire.received)
                if t >= since and m.topic == self.topics.reply(NODE)]

    def states(self) -> list[dict]:
        return [messages.decode(m.payload, "state").payload for m in self.wire.messages(self.topics.state(NODE))]

    def focuser_position(self) -> int:
        indi = self.rig.nodes[NODE].indi
        return int(get_numbers(indi.host, indi.port, "Focuser Simulator", "ABS_FOCUS_POSITION")["FOCUS_ABSOLUTE_POSITION"])


def publish(cfg: MqttConfig, items: list[tuple[str, bytes, bool]]) -> None:
    """Publish raw (topic, payload, retain) messages from a throwaway client and wait until all are sent."""
    sender = MqttTransport(cfg, f"test-raw-{uuid.uuid4().hex[:8]}")
    sender.start()
    try:
        assert sender.wait_connected(10)
        infos = [sender.publish(topic, payload, retain) for topic, payload, retain in items]
        for info in infos:
            info.wait_for_publish(20)
    finally:
        sender.stop()


def indisync_status(cfg: MqttConfig) -> dict[str, dict]:
    result = subprocess.run([*INDISYNC, "status", "--broker", f"{cfg.host}:{cfg.port}", "--once", "--json"],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["nodes"]}


@pytest.fixture(scope="module")
def up(request, tmp_path_factory):
    rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path_factory.mktemp("rig"),
                 slave_section={"filters": FILTERS, "exposure": SLAVE_EXPOSURE})
    rig.start()
    failures = request.session.testsfailed
    wire = None
    try:
        cfg = MqttConfig(host=rig.broker.host, port=rig.broker.port)
        topic_tree = Topics(cfg.topic_prefix, cfg.discovery_prefix)
        wire = MqttCollector(cfg, f"{cfg.topic_prefix}/#", f"{cfg.discovery_prefix}/#")
        # A command someone left retained: a node coming up must refuse it, not take the frame.
        stale = messages.make("expose", "master", {"duration": 60, "target": "Stale"})
        publish(cfg, [(topic_tree.cmd(NODE), stale.encode(), True)])
        rig.start_node(NODE)
        rig.wait_up(NODE, timeout=60)
        yield Up(rig, cfg, topic_tree, wire, stale.id)
    finally:
        if request.session.testsfailed > failures:
            print(rig.logs())
        if wire is not None:
            wire.close()
        rig.stop()


@pytest.fixture(scope="module")
def master(up):
    """A stand-in master: the protocol's own CommandClient on its own connection."""
    transport = MqttTransport(up.cfg, f"test-master-{uuid.uuid4().hex[:8]}")
    client = CommandClient(transport, up.topics, "master", resend_every=1.0)
    transport.start()
    assert transport.wait_connected(10)
    time.sleep(0.2)  # the reply subscription's SUBACK
    yield client
    client.close()
    transport.stop()


# ---- 1. up, retained, in `indisync status` ------------------------------------------------------
def test_node_comes_up_online_retained_and_listed_by_status(up):
    t = up.topics
    # the wheel is on the rotation's first filter before the node says it is up
    assert up.wire.wait_for(lambda: any(s.get("filter") == "Red" for s in up.states()), 10), up.states()
    focuser = up.focuser_position()
    assert focuser == FOCUSER_START

    late = MqttCollector(up.cfg, t.status(NODE), t.state(NODE))  # subscribes now: sees only what is retained
    try:
        assert late.wait_for(lambda: late.messages(t.status(NODE)) and late.messages(t.state(NODE)), 5)
        status = late.messages(t.status(NODE))[0]
        assert (status.payload, status.retain) == (b"online", True)
        state_msg = late.messages(t.state(NODE))[0]
        assert state_msg.retain
        env = messages.decode(state_msg.payload, "state")
    finally:
        late.close()
    assert env.sender == NODE
    state = env.payload
    assert (state["role"], state["phase"], state["filter"]) == ("slave", "idle", "Red")
    assert state["focuser_position"] == focuser
    assert state["frames"] == 0 and state["error"] is None

    rows = indisync_status(up.cfg)
    assert NODE in rows, rows
    row = rows[NODE]
    assert row["online"] is True and row["status"] == "online"
    assert (row["role"], row["phase"], row["filter"]) == ("slave", "idle", "Red")
    assert row["focuser_position"] == focuser and row["frames"] == 0
    assert row["seconds_since_heartbeat"] is not None and row["seconds_since_heartbeat"] < 3.0  # heartbeat: 1 s
    assert "master" not in rows  # its process was never started: nothing may claim it is there


def test_stale_retained_command_is_refused_at_startup(up):
    t = up.topics
    assert up.wire.wait_for(lambda: any("retained" in e.payload["message"] for e in up.events("error")), 5)
    refusal = next(e for e in up.events("error") if "retained" in e.payload["message"])
    assert refusal.payload["topic"] == t.cmd(NODE)
    assert not any(r["command_id"] == up.stale_id for r in up.replies())
    assert not list(up.images.glob("*Stale*")) and not up.events("exposure_started")
    # clear it (an empty retained publish); the empty message the node then hears is refused too
    before = len(up.events("error"))
    publish(up.cfg, [(t.cmd(NODE), b"", True)])
    assert up.wire.wait_for(lambda: len(up.events("error")) > before, 5)


def test_a_valid_expose_published_retained_while_the_node_is_connected_writes_no_frame(up):
    """Issue 9.1: under MQTT 3.1.1 the broker stripped the flag on live delivery and this took a frame."""
    t = up.topics
    files_before = sorted(p.name for p in up.images.glob("*.fits"))
    since = time.monotonic()
    live = messages.make("expose", "master", {"duration": 1, "target": "Retained"})
    publish(up.cfg, [(t.cmd(NODE), live.encode(), True)])
    try:
        assert up.wire.wait_for(lambda: any("retained" in e.payload["message"] for e in up.events("error", since)), 5)
        time.sleep(1.0)  # a frame of 1 s (0.01 s simulated) would have been written by now
        assert not any(r["command_id"] == live.id for r in up.replies(since))
        assert up.events("exposure_started", since) == []
        assert sorted(p.name for p in up.images.glob("*.fits")) == files_before
    finally:
        publish(up.cfg, [(t.cmd(NODE), b"", True)])


# ---- 2. commands served with the node's devices -------------------------------------------------
def test_ping_expose_rotation_and_autofocus(up, master):
    since = time.monotonic()
    pong = master.call(NODE, "ping", timeout=5)
    assert re.match(r"^\d{4}-\d\d-\d\dT", pong["pong"])

    frames_before = up.states()[-1]["frames"]
    shots = []
    for expected_filter in ("Red", "Green"):
        result = master.call(NODE, "expose", {"duration": 60, "target": "M42"}, timeout=60)
        assert result["filters"] == [expected_filter], result
        assert len(result["files"]) == 1
        path = up.images / result["files"][0]
        assert path.is_file() and path.resolve().parent == up.images.resolve()
        header = fits.getheader(path)
        assert header["FILTER"] == expected_filter and header["OBJECT"] == "M42"
        assert header["EXPTIME"] == SLAVE_EXPOSURE and header["NODE"] == NODE
        shots.append(path.name)
    assert shots[0] != shots[1]
    done = up.events("exposure_done", since)
    assert [(e.payload["status"], e.payload["file"]) for e in done] == [("ok", shots[0]), ("ok", shots[1])]
    assert [e.payload["filter"] for e in up.events("exposure_started", since)] == ["Red", "Green"]
    assert up.wire.wait_for(lambda: up.states()[-1]["frames"] == frames_before + 2, 3)

    # autofocus: the V-curve through the node's own camera and focuser
    start_position = up.focuser_position()
    af_since = time.monotonic()
    summary = master.call(NODE, "autofocus", {"reason": "acceptance test"}, timeout=180)
    seconds = time.monotonic() - af_since
    true_focus = up.rig.nodes[NODE].true_focus
    print(f"\nautofocus on {NODE}: {summary['status']} at {summary['position']} (true focus {true_focus}, "
          f"start {start_position}, HFR {summary['hfr']}, {summary['frames']} frames) in {seconds:.1f} s")
    assert summary["status"] in ("ok", "failed")
    assert summary["start_position"] == start_position
    focuser = up.focuser_position()
    assert focuser == summary["position"]  # the reply says where the focuser really is
    if summary["status"] == "ok":
        assert abs(focuser - true_focus) <= 400, "autofocus ok but more than one sweep step from the true focus"
    else:
        assert focuser == start_position, "a failed autofocus must put the focuser back where it started"

    started = up.events("autofocus_started", af_since)
    assert len(started) == 1
    run_id = started[0].payload["run_id"]
    assert started[0].payload["position"] == start_position
    points = [e for e in up.events("autofocus_point", af_since) if e.payload["run_id"] == run_id]
    assert len(points) >= 9  # the configured sweep (focus.points default 9), plus extensions and the check
    assert {p.payload["position"] for p in points} >= {p[0] for p in summary["points"]}
    finished = [e for e in up.events("autofocus_done", af_since) if e.payload["run_id"] == run_id]
    assert len(finished) == 1
    assert (finished[0].payload["status"], finished[0].payload["position"]) == (summary["status"], focuser)
    assert up.wire.wait_for(lambda: up.states()[-1]["phase"] == "idle"
                            and up.states()[-1]["focuser_position"] == focuser, 3)

    # the rotation went on across the focus run, and the next frame was taken at the new focus
    third = master.call(NODE, "expose", {"duration": 60, "target": "M42"}, timeout=60)
    assert third["filters"] == ["Blue"]
    header = fits.getheader(up.images / third["files"][0])
    assert header["FILTER"] == "Blue" and header["FOCUSPOS"] == focuser


# ---- 3. garbage on the cmd topic ---------------------------------------------------------------
def _envelope(**over) -> dict:
    env = {"v": 1, "type": "expose", "id": messages.new_id(), "from": "master", "ts": messages.now_iso(),
           "payload": {"duration": 60, "target": "M42"}}
    env.update(over)
    return env


def _raw(env: dict) -> bytes:
    return json.dumps(env).encode()


def _expose(**fields) -> bytes:
    return _raw(_envelope(payload={"duration": 60, **fields}))


def garbage() -> list[tuple[bytes, bool]]:
    """300 (payload, retain) messages every one of which must be refused with an error event."""
    rng = random.Random(4)
    items: list[bytes] = [
        b"", b"{", b"}", b"not json", b"\xff\xfe\x00\x01", b"[]", b"null", b"42", b'"expose"', b"true",
        b"{'v': 1, 'type': 'expose'}", b'{"v":1,"v":1}', b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        _raw(_envelope()).replace(b'"duration": 60', b'"duration": NaN'),
        _raw(_envelope()).replace(b'"duration": 60', b'"duration": Infinity'),
        _raw(_envelope()).replace(b'"v": 1', b'"v": 1, "v": 1'),
        _raw(_envelope()).replace(b"M42", "M42\u00e9".encode("latin-1")),  # not UTF-8
        # huge
        b"x" * 100_000, bytes(rng.getrandbits(8) for _ in range(1_000_000)),
        _expose(target="A" * 70_000), b'{"v":1' + b" " * 200_000 + b"}",
        # the envelope
        _raw(_envelope(v=2)), _raw(_envelope(v="1")), _raw(_envelope(v=True)), _raw(_envelope(v=None)),
        _raw(_envelope(id="")), _raw(_envelope(id="../x")), _raw(_envelope(id=5)), _raw(_envelope(id="a" * 65)),
        _raw(_envelope(**{"from": "Master!"})), _raw(_envelope(**{"from": "../master"})),
        _raw(_envelope(id="abc\n")), _raw(_envelope(**{"from": "master\n"})), _raw(_envelope(ts=messages.now_iso() + "\n")),
        _raw(_envelope(ts="yesterday")), _raw(_envelope(ts="2024-13-45T99:99:99Z")), _raw(_envelope(ts=0)),
        _raw(_envelope(payload=[])), _raw(_envelope(payload="duration=60")), _raw(_envelope(payload=None)),
        _raw(_envelope(extra=1)), _raw({k: v for k, v in _envelope().items() if k != "payload"}),
        _raw({k: v for k, v in _envelope().items() if k != "id"}),
        # not a command
        _raw(_envelope(type="selfdestruct")), _raw(_envelope(type="shutdown", payload={})),
        _raw(_envelope(type="EXPOSE")), _raw(_envelope(type=None)), _raw(_envelope(type=["expose"])),
        _raw(_envelope(type="reply", payload={"command_id": "x", "command": "expose", "status": "done"})),
        _raw(_envelope(type="state", payload={"role": "slave", "phase": "idle", "version": "1"})),
        _raw(_envelope(type="exposure_done", payload={"exposure_id": "1", "status": "ok"})),
        _raw(_envelope(type="ping", payload={"now": True})),
        _expose(command="rm -rf /"),
        # wrong types and ranges
        _raw(_envelope(payload={})), _raw(_envelope(payload={"target": "M42"})),
    ]
    # path traversal and other names that must never become part of a file name
    for name in ("../../etc", "..", "../", "/etc/passwd", "a/b", "..\\..\\windows", "~/.ssh", ".hidden",
                 "-rf", "M42\x00", "M42\n", "x" * 65, "%2e%2e%2f", "M42/../../etc", "M42 ", "con..txt"):
        for key in ("target", "suffix", "filter"):
            items.append(_expose(**{key: name}))
    bad_values = ([], {}, "", -1, 1e12, True, "../x", "a" * 100, "\x00")
    for key in ("duration", "frame_type", "filter", "binning", "target", "suffix", "batch", "exposure_id"):
        for value in bad_values:
            items.append(_expose(**{key: value}))
    while len(items) < 300:  # random bytes: never a whole valid envelope
        items.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000))))
    # Every tenth one retained. (Only malformed ones: under MQTT 3.1.1 a subscriber that is connected
    # gets a retained publish with the retain flag cleared, so a *valid* retained command runs once;
    # the node can only refuse the stale copy it finds on (re)subscribing, tested at start-up above.)
    return [(payload, i % 10 == 0) for i, payload in enumerate(items)]


def test_garbage_on_cmd_topic_is_refused_and_nothing_runs(up, master):
    t = up.topics
    flood = garbage()
    assert len(flood) == 300
    files_before = sorted(p.name for p in up.images.glob("*.fits"))
    frames_before = up.states()[-1]["frames"]
    errors_before = len(up.events("error"))
    since = time.monotonic()

    publish(up.cfg, [(t.cmd(NODE), payload, retain) for payload, retain in flood]
            + [(t.cmd(NODE), b"", True)])  # and clear the last retained one (refused too)
    expected = len(flood) + 1
    assert up.wire.wait_for(lambda: len(up.events("error")) - errors_before >= expected, 30), (
        f"{len(up.events('error')) - errors_before} error events for {expected} bad commands")
    time.sleep(0.5)  # nothing more may come
    errors = up.events("error", since)
    assert len(errors) == expected
    assert all(e.payload["topic"] == t.cmd(NODE) and e.payload["message"].startswith("rejected command")
               for e in errors)

    # nothing ran: no 'accepted', no exposure, no new file, frames unchanged
    assert [r for r in up.replies(since) if r["status"] != "failed"] == []
    assert up.events("exposure_started", since) == [] and up.events("autofocus_started", since) == []
    assert sorted(p.name for p in up.images.glob("*.fits")) == files_before
    assert not [p for p in up.rig.workdir.rglob("*") if "etc" in p.name or "passwd" in p.name]
    assert up.rig.nodes[NODE].process.poll() is None
    assert master.call(NODE, "ping", timeout=5)["pong"]
    assert up.states()[-1]["frames"] == frames_before and up.states()[-1]["phase"] == "idle"

    # and a valid sync_wait on the idle node is answered done at once
    barrier = master.send(NODE, "sync_wait", {"barrier": "b1", "timeout": 5})
    reply = barrier.wait(10)
    assert reply["status"] == "done" and reply["result"]["barrier"] == "b1", reply
    master.forget(barrier)


# ---- 5. Home Assistant discovery ----------------------------------------------------------------
def _ha_configs(up: Up, since: float = 0.0) -> dict[tuple[str, str], dict]:
    pattern = re.compile(rf"^{re.escape(up.topics.discovery_prefix)}/(\w+)/{NODE}/(\w+)/config$")
    out = {}
    for t, msg in list(up.wire.received):
        match = pattern.match(msg.topic)
        if match and t >= since:
            out[(match.group(1), match.group(2))] = json.loads(msg.payload)
    return out


def test_home_assistant_discovery_and_rediscovery(up):
    t = up.topics
    configs = _ha_configs(up)  # from the node's connect, seen by the collector started before it
    assert set(configs) == HA_ENTITIES
    state = up.states()[-1]
    devices = {json.dumps(c["device"], sort_keys=True) for c in configs.values()}
    assert len(devices) == 1 and NODE in configs[("sensor", "phase")]["device"]["name"]
    assert len({c["unique_id"] for c in configs.values()}) == len(HA_ENTITIES)
    for (component, entity), config in configs.items():
        if component == "sensor":
            assert config["availability_topic"] == t.status(NODE)
            assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
            assert config["state_topic"] == t.state(NODE)
            # the template reads fields the node's state really has
            for key in re.findall(r"value_json\.payload\.(\w+)", config["value_template"]):
                assert key in state, f"{entity}: template reads payload.{key}, not in the state {sorted(state)}"
    online = configs[("binary_sensor", "online")]
    assert (online["state_topic"], online["payload_on"], online["payload_off"]) == (t.status(NODE), "online", "offline")

    mark = time.monotonic()
    publish(up.cfg, [(t.ha_status, b"offline", False)])  # HA going away asks for nothing
    time.sleep(1.0)
    assert _ha_configs(up, mark) == {}
    mark = time.monotonic()
    publish(up.cfg, [(t.ha_status, b"online", False)])  # HA's birth message after a restart
    assert up.wire.wait_for(lambda: set(_ha_configs(up, mark)) == HA_ENTITIES, 5), set(_ha_configs(up, mark))
    assert _ha_configs(up, mark) == configs


# ---- 4. kill -9 ---------------------------------------------------------------------------------
def test_kill_9_goes_offline_within_15s(up):
    t = up.topics
    watcher = MqttCollector(up.cfg, t.status(NODE))
    try:
        assert watcher.wait_for(lambda: [m for m in watcher.messages() if m.payload == b"online"], 5)
        killed = time.monotonic()
        up.rig.kill_node(NODE)
        assert up.rig.nodes[NODE].process.returncode == -9
        assert watcher.wait_for(lambda: watcher.messages()[-1].payload == b"offline", 20), \
            "no 'offline' within 20 s of kill -9"
        arrived = next(at for at, m in reversed(watcher.received) if m.payload == b"offline")
    finally:
        watcher.close()
    seconds = arrived - killed
    print(f"\n{NODE} offline {seconds:.2f} s after kill -9 (keepalive 5 s)")
    assert seconds <= 15.0

    late = MqttCollector(up.cfg, t.status(NODE))
    try:
        assert late.wait_for(lambda: late.messages(), 5)
        status = late.messages()[0]
        assert (status.payload, status.retain) == (b"offline", True)
    finally:
        late.close()
    row = indisync_status(up.cfg)[NODE]
    assert row["online"] is False and row["status"] == "offline"
