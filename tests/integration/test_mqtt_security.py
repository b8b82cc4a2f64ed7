"""The shipped configs/mosquitto.acl on a real mosquitto with passwords: only the master's user
can command a slave; a node cannot speak for another; anonymous clients are refused."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from indisync.config import MqttConfig
from indisync.errors import CommandTimeout
from indisync.protocol import messages
from indisync.protocol.commands import CommandClient
from indisync.protocol.node_link import NodeLink
from indisync.protocol.topics import Topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.broker import Mosquitto
from tests.conftest import MqttCollector, attach_log_on_failure

pytestmark = pytest.mark.integration
T = Topics("indisync")
ACL = Path(__file__).resolve().parents[2] / "configs" / "mosquitto.acl"
PASSWORDS = {"ota1": "master-secret", "ota2": "slave2-secret", "ota3": "slave3-secret", "homeassistant": "ha-secret"}


@pytest.fixture
def secured(request, tmp_path):
    broker = Mosquitto(acl=ACL.read_text(), passwords=PASSWORDS)
    broker.start()

    def config(user: str | None) -> MqttConfig:
        cfg = MqttConfig(host=broker.host, port=broker.port, keepalive=2, heartbeat=0.5, dead_after=2.0)
        if user is None:
            return cfg
        secret = tmp_path / f"{user}.pass"
        secret.write_text(PASSWORDS[user] + "\n")
        return dataclasses.replace(cfg, username=user, password_file=str(secret))

    try:
        yield config
    finally:
        attach_log_on_failure(request, "mosquitto", broker.log_text)
        broker.close()


def test_only_the_master_user_can_command_a_slave(secured):
    runs = []
    slave = NodeLink(secured("ota2"), "ota2", "slave", handlers={"expose": lambda c, p: runs.append(c.sender) or {}})
    master = NodeLink(secured("ota1"), "ota1", "master")
    intruder = MqttTransport(secured("ota3"), "indisync-ota3")  # a real slave's credentials, misused
    try:
        for link in (slave, master):
            assert link.start(wait=10)
        intruder.start()
        assert intruder.wait_connected(10)

        # the intruder even forges 'from: ota1' in the envelope: the broker refuses the publish itself
        forged = CommandClient(intruder, T, "ota1", resend_every=0.3)
        attempt = forged.send("ota2", "expose", {"duration": 1})
        with pytest.raises(CommandTimeout):
            attempt.wait_accepted(2.0)
        forged.close()
        assert runs == []

        client = master.command_client()
        assert client.call("ota2", "expose", {"duration": 1}, timeout=5) == {}
        assert runs == ["ota1"]
        client.close()
    finally:
        intruder.stop()
        master.close()
        slave.close()


def test_a_node_cannot_publish_for_another_and_anonymous_is_refused(secured):
    viewer = MqttCollector(secured("homeassistant"), "indisync/#", "homeassistant/#")
    slave = NodeLink(secured("ota2"), "ota2", "slave")
    impostor = MqttTransport(secured("ota3"), "indisync-ota3")
    anonymous = MqttTransport(secured(None), "anonymous-viewer")
    try:
        assert slave.start(wait=10)
        impostor.start()
        assert impostor.wait_connected(10)
        fake = messages.make("state", "ota2", {"role": "slave", "phase": "error", "version": "0", "error": "fake"})
        impostor.publish(T.state("ota2"), fake.encode(), retain=True).wait_for_publish(5)
        impostor.publish(T.status("ota2"), "offline", retain=True).wait_for_publish(5)
        impostor.publish(T.ha_config("sensor", "ota2", "phase"), "{}").wait_for_publish(5)
        time.sleep(1.0)
        states = [messages.decode(m.payload, "state") for m in viewer.messages(T.state("ota2"))]
        assert states and all(s.payload["phase"] == "idle" for s in states)  # the forged 'error' never arrived
        assert [m.payload for m in viewer.messages(T.status("ota2"))] == [b"online"]
        assert all(m.payload != b"{}" for m in viewer.messages(T.ha_config("sensor", "ota2", "phase")))
        assert viewer.messages(T.ha_config("sensor", "ota2", "phase"))  # the real discovery got through

        anonymous.start()
        assert not anonymous.wait_connected(2.0)
    finally:
        anonymous.stop()
        impostor.stop()
        slave.close()
        viewer.close()


def test_a_slave_measures_its_clock_offset_under_the_shipped_acl(secured):
    """The round trips travel on each node's own ``clock`` topic, which the ACL lets it write."""
    from indisync.protocol.clock import NodeClock

    master = NodeLink(secured("ota1"), "ota1", "master")
    slave = NodeLink(secured("ota2"), "ota2", "slave", clock=NodeClock(0.4))
    try:
        for link in (master, slave):
            assert link.start(wait=10)
        deadline = time.monotonic() + 15
        while slave.state.get("clock_offset_s") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slave.state.get("clock_offset_s") is not None, "no clock offset measured through the ACL"
        assert abs(slave.state["clock_offset_s"] - 0.4) < 0.010
    finally:
        slave.close()
        master.close()
