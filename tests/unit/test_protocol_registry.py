"""NodeRegistry liveness on a fake clock, the Barrier, and the Home Assistant discovery payloads."""

from __future__ import annotations

import json
import threading
import time

from indisync.protocol import messages
from indisync.protocol.discovery import discovery_messages
from indisync.protocol.registry import Barrier, NodeRegistry
from indisync.protocol.topics import Topics

T = Topics("indisync")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def state(node, role="slave", **fields):
    payload = {"role": role, "phase": "idle", "version": "0.1.0", **fields}
    return messages.make("state", node, payload).encode()


def test_joins_on_live_state_and_drops_after_dead_after():
    clock = Clock()
    reg = NodeRegistry(dead_after=8.0, clock=clock)
    events = []
    reg.add_listener(lambda node, what: events.append((node, what)))
    reg.feed(T, "indisync/ota2/state", state("ota2"), retained=False)
    reg.feed(T, "indisync/ota1/state", state("ota1", role="master"), retained=False)
    assert reg.live("slave") == ["ota2"] and reg.live() == ["ota1", "ota2"]
    clock.now += 7.9
    reg.feed(T, "indisync/ota1/state", state("ota1", role="master"), retained=False)
    assert reg.live("slave") == ["ota2"]
    clock.now += 0.2  # ota2 silent for 8.1 s
    assert reg.live() == ["ota1"]
    assert events == [("ota2", "joined"), ("ota1", "joined"), ("ota2", "missed heartbeats")]
    reg.feed(T, "indisync/ota2/state", state("ota2"), retained=False)
    assert reg.live("slave") == ["ota2"]  # a heartbeat brings it back


def test_offline_status_drops_at_once_and_retained_state_does_not_join():
    reg = NodeRegistry(dead_after=8.0, clock=Clock())
    reg.feed(T, "indisync/ota3/state", state("ota3", filter="Ha"), retained=True)
    assert reg.live() == [] and reg.get("ota3").state["filter"] == "Ha"
    reg.feed(T, "indisync/ota2/state", state("ota2"), retained=False)
    reg.feed(T, "indisync/ota2/status", b"offline", retained=False)
    assert reg.live() == [] and reg.get("ota2").status == "offline"


def test_malformed_or_spoofed_states_are_ignored():
    reg = NodeRegistry(dead_after=8.0, clock=Clock())
    reg.feed(T, "indisync/ota2/state", b"{garbage", retained=False)
    reg.feed(T, "indisync/ota2/state", state("ota9"), retained=False)  # ota9 speaking for ota2
    reg.feed(T, "indisync/ota2/status", b"maybe", retained=False)
    reg.feed(T, "indisync/ota2/state", b"", retained=True)  # a cleared retained state
    assert reg.live() == [] and reg.get("ota2") is None


def test_barrier_names_who_did_not_answer():
    barrier = Barrier(["ota2", "ota3", "ota4"])
    barrier.arrive("ota2", "ok")
    threading.Timer(0.05, barrier.arrive, args=("ota4", "late")).start()
    barrier.arrive("ota9", "stranger")  # not expected: ignored
    result = barrier.wait(0.5)
    assert result.answered == {"ota2": "ok", "ota4": "late"}
    assert result.missing == ["ota3"] and not result.complete
    assert 0.45 <= result.seconds < 2.0


def test_barrier_returns_early_when_all_answered_and_stops_waiting_for_the_dead():
    clock = Clock()
    reg = NodeRegistry(dead_after=8.0, clock=clock)
    for node in ("ota2", "ota3"):
        reg.feed(T, f"indisync/{node}/state", state(node), retained=False)
    barrier = Barrier(["ota2", "ota3"], reg)
    barrier.arrive("ota2")
    reg.feed(T, "indisync/ota3/status", b"offline", retained=False)
    start = time.monotonic()
    result = barrier.wait(30)
    assert time.monotonic() - start < 2.0
    assert result.missing == ["ota3"] and result.dead == ["ota3"]


def test_discovery_uses_state_and_status_topics_as_they_are():
    pairs = discovery_messages(Topics("indisync", "homeassistant"), "ota2", "slave", "0.1.0")
    by_topic = {topic: json.loads(text) for topic, text in pairs}
    wanted = {"phase", "filter", "focuser_position", "hfr", "frames", "exposure_progress", "clock_offset"}
    sensors = {t.split("/")[3] for t in by_topic if t.startswith("homeassistant/sensor/ota2/")}
    assert sensors == wanted
    master = {t.split("/")[3] for t, _ in discovery_messages(Topics("indisync", "homeassistant"), "ota1", "master", "0")
              if t.startswith("homeassistant/sensor/")}
    assert master == wanted - {"clock_offset"}  # the master's clock is the reference
    online = by_topic["homeassistant/binary_sensor/ota2/online/config"]
    assert online["state_topic"] == "indisync/ota2/status" and online["device_class"] == "connectivity"
    phase = by_topic["homeassistant/sensor/ota2/phase/config"]
    assert phase["state_topic"] == "indisync/ota2/state"
    assert phase["availability_topic"] == "indisync/ota2/status"
    assert phase["value_template"] == "{{ value_json.payload.phase }}"
    assert len({c["unique_id"] for c in by_topic.values()}) == len(by_topic)
    assert {c["device"]["identifiers"][0] for c in by_topic.values()} == {"indisync_ota2"}


def test_a_guard_state_on_a_node_state_topic_is_not_a_node():
    """guard_state shares the state kind (it travels on {prefix}/guard/{name}/state); posted on a
    node's own state topic it must not make that node 'live' with the guard's payload as its state."""
    reg = NodeRegistry(dead_after=8.0, clock=Clock())
    guard = messages.make("guard_state", "ota2", {"state": "armed", "since": messages.now_iso(), "unsafe": False})
    reg.feed(T, "indisync/ota2/state", guard.encode(), retained=False)
    assert reg.live() == [] and reg.get("ota2") is None
