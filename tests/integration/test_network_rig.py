"""Issue 13 on the real stack: a slave node (`indisync run`, INDI simulators) that reaches mosquitto
through the delay proxy, as over Wi-Fi; a stand-in master on loopback drives it.

- the proxy really delays MQTT traffic (measured against the same broker directly);
- the frame path: each frame's FOCUSPOS is the focuser position of its exposure although the
  pre-move drives the focuser to the next filter's offset right after the shutter closes; HFR is
  not in the header but follows the reply in a ``frame_measured`` event and the state;
- a 10 s cut of the node's link (the broker gives up on it and publishes its will) is survived:
  the same node process comes back online by itself after restore and takes the next frame.
"""

from __future__ import annotations

import time
import uuid

import pytest
from astropy.io import fits

from indisync.config import MqttConfig
from indisync.protocol import messages
from indisync.sim.indi import get_numbers
from indisync.sim.netproxy import DelayProxy, NetProfile
from indisync.sim.rig import FOCUSER_START, SimRig
from tests.conftest import MqttCollector, master_command_client, stopped_at_the_end

pytestmark = pytest.mark.integration

NODE = "slave1"
OFFSETS = {"Red": 0, "Green": 300, "Blue": 600}
LINK = NetProfile(latency=0.030, jitter=0.010, seed=5)


@pytest.fixture(scope="module")
def rig(request, tmp_path_factory):
    rig = SimRig(slaves=1, time_factor=0.01, workdir=tmp_path_factory.mktemp("netrig"), network=LINK,
                 slave_section={"filters": list(OFFSETS), "exposure": 30.0},
                 focus_section={"default_position": FOCUSER_START, "offsets": OFFSETS, "min_offset_move": 1})
    rig.start()
    with stopped_at_the_end(request, rig):
        rig.start_node(NODE)
        rig.wait_up(NODE, timeout=60)
        yield rig


@pytest.fixture(scope="module")
def direct(rig):
    return MqttConfig(host=rig.broker.host, port=rig.broker.port)


@pytest.fixture(scope="module")
def wire(direct):
    collector = MqttCollector(direct, f"{direct.topic_prefix}/#")
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def master(direct):
    with master_command_client(direct) as client:
        yield client


def self_round_trip(cfg: MqttConfig, n: int = 10) -> list[float]:
    """Seconds from publish to receiving our own message back, through ``cfg``'s address."""
    topic = f"{cfg.topic_prefix}/probe-{uuid.uuid4().hex[:6]}/event"
    collector = MqttCollector(cfg, topic)
    try:
        out = []
        for i in range(n):
            sent = time.monotonic()
            collector.transport.publish(topic, f"p{i}".encode())
            assert collector.wait_for(lambda: any(m.payload == f"p{i}".encode() for m in collector.messages()), 5)
            out.append(time.monotonic() - sent)
        return out
    finally:
        collector.close()


def test_the_proxy_delays_mqtt_by_its_latency(rig, direct):
    with DelayProxy(direct.host, direct.port, NetProfile(latency=0.050, jitter=0.0)) as proxy:
        slow = self_round_trip(MqttConfig(host=proxy.host, port=proxy.port))
    fast = self_round_trip(direct)
    print(f"\nMQTT self round trip: direct median {sorted(fast)[5] * 1000:.1f} ms, "
          f"through 50 ms proxy {sorted(slow)[5] * 1000:.1f} ms")
    # up to the broker and back down: two one-way delays of 50 ms
    assert min(slow) >= 0.100
    assert sorted(slow)[5] - sorted(fast)[5] >= 0.090
    assert rig.proxies[NODE].accepted >= 1  # and the node itself talks through its own proxy


def events(wire: MqttCollector, type_: str, since: float) -> list[tuple[float, dict]]:
    out = []
    for t, msg in list(wire.received):
        if t >= since and msg.topic.endswith(f"/{NODE}/event"):
            env = messages.decode(msg.payload, "event")
            if env.type == type_:
                out.append((t, env.payload))
    return out


def focuser(rig) -> int:
    indi = rig.nodes[NODE].indi
    return int(get_numbers(indi.host, indi.port, "Focuser Simulator", "ABS_FOCUS_POSITION")["FOCUS_ABSOLUTE_POSITION"])


def test_header_keeps_the_exposures_focuser_and_hfr_follows_the_reply(rig, wire, master):
    since = time.monotonic()
    images = rig.images / NODE
    for expected in ("Red", "Green"):
        result = master.call(NODE, "expose", {"duration": 60, "target": "M42"}, timeout=60)
        replied = time.monotonic()
        assert result["filters"] == [expected]
        header = fits.getheader(images / result["files"][0])
        # the pre-move has already driven the focuser to the next filter's offset ...
        next_filter = {"Red": "Green", "Green": "Blue"}[expected]
        assert focuser(rig) == FOCUSER_START + OFFSETS[next_filter]
        # ... but the frame says where it was while the shutter was open
        assert header["FILTER"] == expected
        assert header["FOCUSPOS"] == FOCUSER_START + OFFSETS[expected], (expected, header["FOCUSPOS"])
        assert "HFR" not in header and "NSTARS" not in header
        assert wire.wait_for(lambda: any(p["file"] == result["files"][0]
                                         for _, p in events(wire, "frame_measured", since)), 30)
        (t, measured), = [(t, p) for t, p in events(wire, "frame_measured", since) if p["file"] == result["files"][0]]
        assert measured["filter"] == expected and measured["when"] == "after_reply"
        assert measured["stars"] is not None and measured["stars"] > 0 and measured["hfr"] > 0
        assert t >= replied - 0.05  # published after the reply (the collector sees both on loopback)
    state = [messages.decode(m.payload, "state").payload for m in wire.messages(f"indisync/{NODE}/state")][-1]
    assert state["hfr"] is not None and state["stars"] > 0


@pytest.mark.timeout(180)
def test_a_cut_link_is_survived(rig, wire, master):
    status_topic = f"indisync/{NODE}/status"
    proc = rig.nodes[NODE].process
    since = time.monotonic()
    rig.proxies[NODE].cut()
    try:
        # keepalive 5 s: the broker publishes the node's will within ~1.5 keepalives of silence
        assert wire.wait_for(lambda: any(t >= since and m.topic == status_topic and m.payload == b"offline"
                                         for t, m in list(wire.received)), 20), "the broker never gave up on the node"
    finally:
        rig.proxies[NODE].restore()
    restored = time.monotonic()
    assert wire.wait_for(lambda: any(t >= restored and m.topic == status_topic and m.payload == b"online"
                                     for t, m in list(wire.received)), 40), "the node did not come back online"
    print(f"\nback online {time.monotonic() - restored:.1f} s after the link was restored")
    assert proc.poll() is None and rig.nodes[NODE].starts == 1  # the same process, no restart
    result = master.call(NODE, "expose", {"duration": 60, "target": "M42"}, timeout=60)
    assert len(result["files"]) == 1 and (rig.images / NODE / result["files"][0]).is_file()
