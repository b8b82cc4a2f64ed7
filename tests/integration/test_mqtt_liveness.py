"""Liveness on a real mosquitto: Last Will after kill -9, registry drops within 10 s (Will and
missed heartbeats), the barrier names the node that did not answer, HA rediscovery."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from indisync.config import MqttConfig
from indisync.protocol.discovery import discovery_messages
from indisync.protocol.node_link import NodeLink
from indisync.protocol.registry import gather
from indisync.protocol.topics import Topics
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration
T = Topics("indisync")
# mosquitto up to 2.0.1x (Debian 12 ships 2.0.11) scans for expired keepalives every 5 s, on
# whole seconds; newer ones keep a per-second ring. So the Will of a silent node comes within
# 1.5 x keepalive + 5 s + 1 s of rounding, and the registry's own heartbeat check (dead_after)
# is what keeps "a dead node is noticed within 10 s" true.
BROKER_KEEPALIVE_SCAN_S = 5.0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill-9", "frozen"])
def test_last_will_offline_within_keepalive_bound(mosquitto, demo_nodes, sig):
    """kill -9: the kernel closes the socket and the Will comes at once. SIGSTOP: the socket stays
    open, like a node whose network or power went, and only the keepalive timeout reveals it."""
    keepalive = 2
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port)
    watcher = MqttCollector(cfg, T.status("ota2"))
    try:
        node = demo_nodes("ota2", "--keepalive", str(keepalive))
        assert watcher.wait_for(lambda: [m for m in watcher.messages() if m.payload == b"online"], 5)
        killed = time.monotonic()
        os.kill(node.pid, sig)
        # MQTT: the broker gives up after 1.5 x keepalive of silence, then publishes the Will.
        bound = 1.5 * keepalive + BROKER_KEEPALIVE_SCAN_S + 1.5
        assert watcher.wait_for(lambda: watcher.messages()[-1].payload == b"offline", bound + 5)
        arrived = next(t for t, m in reversed(watcher.received) if m.payload == b"offline")
        print(f"offline {arrived - killed:.2f} s after {sig.name} (keepalive {keepalive} s)")
        assert arrived - killed <= bound
        if sig == signal.SIGSTOP:
            assert arrived - killed >= keepalive * 0.5  # it really was the keepalive, not a closed socket
    finally:
        os.kill(node.pid, signal.SIGKILL)
        watcher.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill-9", "frozen"])
def test_registry_drops_a_dead_node_within_10s_with_default_timings(mosquitto, demo_nodes, sig):
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port)  # keepalive 5, heartbeat 2, dead_after 8
    master = NodeLink(cfg, "ota1", "master")
    assert master.start(wait=10)
    registry = master.registry()
    dropped = {}
    registry.add_listener(lambda node, what: what != "joined" and dropped.setdefault(node, (time.monotonic(), what)))
    node = None
    try:
        node = demo_nodes("ota2")  # default keepalive 5, heartbeat 2
        deadline = time.monotonic() + 10
        while "ota2" not in registry.live("slave"):
            assert time.monotonic() < deadline, "ota2 never joined"
            time.sleep(0.1)
        killed = time.monotonic()
        os.kill(node.pid, sig)
        while "ota2" not in dropped and time.monotonic() < killed + 15:
            time.sleep(0.1)
        assert "ota2" in dropped, "the registry never noticed the dead node"
        noticed, why = dropped["ota2"]
        print(f"dead node noticed after {noticed - killed:.2f} s ({why}, {sig.name})")
        assert noticed - killed <= 10.0
        assert registry.live("slave") == []
    finally:
        if node is not None:
            os.kill(node.pid, signal.SIGKILL)
        master.close()
        registry.stop()


def test_registry_drops_a_frozen_node_on_missed_heartbeats(mosquitto, demo_nodes):
    """SIGSTOP with a long keepalive: no Will comes, only the heartbeats stop."""
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port, heartbeat=1.0, dead_after=4.0)
    observer = NodeLink(cfg, "ota1", "master")
    assert observer.start(wait=10)
    registry = observer.registry()
    whats = []
    registry.add_listener(lambda node, what: node == "ota2" and whats.append((time.monotonic(), what)))
    node = demo_nodes("ota2", "--keepalive", "60", "--heartbeat", "1")
    try:
        deadline = time.monotonic() + 10
        while "ota2" not in registry.live():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        stopped = time.monotonic()
        os.kill(node.pid, signal.SIGSTOP)
        while not any(w == "missed heartbeats" for _, w in whats) and time.monotonic() < stopped + 10:
            time.sleep(0.1)
        drops = [(t, w) for t, w in whats if w != "joined"]
        assert drops and drops[0][1] == "missed heartbeats", whats
        assert drops[0][0] - stopped <= cfg.dead_after + 1.0
        os.kill(node.pid, signal.SIGCONT)  # it comes back: the next heartbeat re-joins it
        deadline = time.monotonic() + 5
        while "ota2" not in registry.live():
            assert time.monotonic() < deadline, "the thawed node did not re-join"
            time.sleep(0.1)
    finally:
        os.kill(node.pid, signal.SIGCONT)
        observer.close()
        registry.stop()


def test_barrier_names_the_node_that_did_not_answer(mqtt_config):
    stuck = threading.Event()

    def hang(command, progress):
        stuck.wait(10)
        return None

    slaves = [
        NodeLink(mqtt_config, "ota2", "slave", handlers={"sync_wait": lambda c, p: {"ready": True}}),
        NodeLink(mqtt_config, "ota3", "slave", handlers={"sync_wait": lambda c, p: {"ready": True}}),
        NodeLink(mqtt_config, "ota4", "slave", handlers={"sync_wait": hang}),
    ]
    master = NodeLink(mqtt_config, "ota1", "master")
    try:
        for link in [*slaves, master]:
            assert link.start(wait=10)
        registry = master.registry()
        client = master.command_client()
        deadline = time.monotonic() + 5
        while registry.live("slave") != ["ota2", "ota3", "ota4"]:
            assert time.monotonic() < deadline, registry.live()
            time.sleep(0.05)
        result = gather(client, registry, "sync_wait", {"barrier": "batch-1"}, timeout=1.5)
        assert sorted(result.answered) == ["ota2", "ota3"]
        assert all(r["status"] == "done" for r in result.answered.values())
        assert result.missing == ["ota4"] and result.dead == []
        assert 1.4 <= result.seconds < 3.0

        stuck.set()
        slaves[2].close()  # a clean goodbye: 'offline' drops it at once, so the barrier does not wait for it
        time.sleep(0.3)
        assert registry.live("slave") == ["ota2", "ota3"]
        result = gather(client, registry, "sync_wait", {"barrier": "batch-2"}, timeout=5)
        assert result.complete and sorted(result.answered) == ["ota2", "ota3"] and result.seconds < 1.0
        registry.stop()
        client.close()
    finally:
        stuck.set()
        for link in [*slaves, master]:
            link.close()


def test_home_assistant_rediscovery_on_birth_message(mqtt_config):
    observer = MqttCollector(mqtt_config, "homeassistant/#")
    node = NodeLink(mqtt_config, "ota2", "slave")
    entities = len(discovery_messages(node.topics, "ota2", "slave", node.version))  # 8 for a slave today
    try:
        assert node.start(wait=10)
        configs = lambda: [m for m in observer.messages() if m.topic.endswith("/config")]  # noqa: E731
        assert observer.wait_for(lambda: len(configs()) == entities, 5), [m.topic for m in configs()]
        time.sleep(0.5)
        assert len(configs()) == entities  # once per connect, not repeatedly
        observer.transport.publish("homeassistant/status", "offline")
        time.sleep(0.5)
        assert len(configs()) == entities  # HA going away asks for nothing
        observer.transport.publish("homeassistant/status", "online")
        assert observer.wait_for(lambda: len(configs()) == 2 * entities, 5)
        topics = {m.topic for m in configs()}
        assert "homeassistant/binary_sensor/ota2/online/config" in topics
        assert "homeassistant/sensor/ota2/exposure_progress/config" in topics
        assert "homeassistant/image/ota2/vcurve/config" in topics
    finally:
        node.close()
        observer.close()
