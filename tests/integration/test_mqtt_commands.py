"""Commands on a real mosquitto: exactly-once across broker restarts, 1,000 hostile messages,
retained commands refused."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter

import pytest

from indisync.protocol import messages
from indisync.protocol.node_link import NodeLink
from indisync.protocol.topics import Topics
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration
T = Topics("indisync")


class CountingNode:
    """A slave NodeLink whose expose handler counts executions per command id."""

    def __init__(self, cfg, name="ota2", expose_seconds=0.0):
        self.runs = Counter()
        self.lock = threading.Lock()

        def expose(command, progress):
            with self.lock:
                self.runs[command.id] += 1
            time.sleep(expose_seconds)
            return {"n": self.runs[command.id]}

        self.link = NodeLink(cfg, name, "slave", handlers={"expose": expose, "abort": expose, "autofocus": expose})
        assert self.link.start(wait=10)


def test_broker_restart_commands_run_exactly_once_and_subscriptions_return(mosquitto, mqtt_config):
    slave = CountingNode(mqtt_config, expose_seconds=1.0)
    master = NodeLink(mqtt_config, "ota1", "master")
    assert master.start(wait=10)
    client = master.command_client(resend_every=0.5, poll_every=1.0)
    try:
        before = client.send("ota2", "expose", {"duration": 1})
        before.wait_accepted(5)
        # 1. the broker goes down while the command runs: its 'done' is published into the outage
        mosquitto.restart(down_for=1.5)
        assert before.wait(20)["status"] == "done"

        # 2. a command sent while the broker is down
        mosquitto.stop()
        time.sleep(0.5)
        during = client.send("ota2", "expose", {"duration": 1})
        time.sleep(1.0)
        mosquitto.start()
        assert during.wait(20)["status"] == "done"

        # 3. a command sent just before a restart, then the broker restarted again at once
        around = client.send("ota2", "expose", {"duration": 1})
        time.sleep(0.05)
        mosquitto.restart(down_for=0.5)
        assert around.wait(20)["status"] == "done"

        # 4. after the restarts the slave's cmd subscription is back: a fresh command is fast
        assert slave.link.transport.wait_connected(10)
        after = client.send("ota2", "expose", {"duration": 0})
        assert after.wait_accepted(5)["status"] == "accepted"
        assert after.wait(10)["status"] == "done"

        assert slave.link.transport.connections >= 4 and master.transport.connections >= 4
        ids = [p.id for p in (before, during, around, after)]
        assert {i: slave.runs[i] for i in ids} == {i: 1 for i in ids}, slave.runs
        assert sum(slave.runs.values()) == 4
        print(f"redeliveries answered without running: {slave.link.commands.redelivered}")
    finally:
        client.close()
        master.close()
        slave.link.close()


def _valid(mtype="expose", payload=None, **changes):
    data = messages.make(mtype, "ota1", payload if payload is not None else {"duration": 1}).to_dict()
    data.update(changes)
    return data


def _replaced(old: bytes, new: bytes) -> bytes:
    text = json.dumps(_valid()).encode()
    assert old in text, "the hostile edit must apply, or the message would be a valid command"
    return text.replace(old, new)


def hostile_messages(n: int, seed: int = 7) -> list[bytes]:
    """``n`` messages, each malformed or hostile by construction (none is a valid command)."""
    rng = random.Random(seed)
    makers = [
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))),
        lambda: b"",
        lambda: b"{" * rng.randrange(1, 50),
        lambda: b"[" * 20000 + b"]" * 20000,
        lambda: b"x" * (messages.MAX_MESSAGE_BYTES + rng.randrange(1, 5000)),
        lambda: json.dumps(rng.choice([1, "expose", None, [1, 2], True])).encode(),
        lambda: json.dumps(_valid(v=rng.choice([0, 2, "1", None, True]))).encode(),
        lambda: json.dumps(_valid(type=rng.choice(["rm -rf", "exec", "state", "error", "reply", ""]))).encode(),
        lambda: json.dumps(_valid(id=rng.choice(["", "../../etc", "a/b", "x" * 65, 7, None]))).encode(),
        lambda: json.dumps(_valid(**{"from": rng.choice(["", "OTA1", "a/b", 3, "ota1/#"])})).encode(),
        lambda: json.dumps(_valid(ts=rng.choice(["yesterday", "2024-01-01T00:00:00", 0, "2024-02-30T00:00:00Z"]))).encode(),
        lambda: json.dumps({**_valid(), "payload": {"duration": rng.choice([-1, 1e12, "5", None, [], True])}}).encode(),
        lambda: json.dumps({**_valid(), "payload": {"duration": 1, rng.choice(["filter", "target", "suffix"]): rng.choice(
            ["../../etc/passwd", "/root", "..", ".ssh", "a\\b", "-rf", "a\x00b", "x" * 80, "~/.bashrc", "a/b"])}}).encode(),
        lambda: json.dumps({**_valid(), "payload": {"duration": 1, "rogue": "field"}}).encode(),
        lambda: json.dumps({**_valid(), "extra": "field"}).encode(),
        lambda: json.dumps({**_valid("sync_wait", {"barrier": "b"}), "payload": {"barrier": "b", "timeout": -5}}).encode(),
        lambda: json.dumps({**_valid("abort", {}), "payload": {"reason": "\x1b[2Jgotcha"}}).encode(),
        lambda: _replaced(b'"duration": 1.0', b'"duration": NaN'),
        lambda: json.dumps(_valid()).encode()[:-rng.randrange(1, 20)],
        lambda: _replaced(b'"v": 1,', b'"v": 1, "v": 1,'),
        lambda: json.dumps(_valid()).encode().decode().encode("utf-16"),
    ]
    return [makers[i % len(makers)]() for i in range(n)]


def test_a_thousand_hostile_messages_leave_the_node_alive_with_nothing_executed(mqtt_config):
    slave = CountingNode(mqtt_config)
    errors = MqttCollector(mqtt_config, T.event("ota2"))
    attacker = MqttCollector(mqtt_config)
    master = NodeLink(mqtt_config, "ota1", "master")
    assert master.start(wait=10)
    client = master.command_client()
    try:
        hostile = hostile_messages(1000)
        for i, payload in enumerate(hostile):
            info = attacker.transport.publish(T.cmd("ota2"), payload)
            if i % 50 == 49:
                info.wait_for_publish(5)  # pace the flood so no broker queue drops anything
        assert errors.wait_for(lambda: len(errors.messages()) >= 1000, 30), len(errors.messages())
        time.sleep(0.5)
        events = [messages.decode(m.payload, "event") for m in errors.messages()]
        assert len(events) == 1000 and {e.type for e in events} == {"error"}, [
            e.payload["message"] for e in events if not e.payload["message"].startswith("rejected command:")]
        assert all(e.payload["message"].startswith("rejected command:") for e in events)
        # problems are named, e.g. the path-traversal filter
        assert any("expose.filter" in e.payload["message"] and "not a safe name" in e.payload["message"] for e in events)
        assert sum(slave.runs.values()) == 0 and slave.link.commands.executed == 0
        assert slave.link.commands.rejected == 1000
        # still alive and serving
        assert client.call("ota2", "ping", timeout=5)["pong"]
        assert client.call("ota2", "expose", {"duration": 0}, timeout=5) == {"n": 1}
    finally:
        client.close()
        master.close()
        for c in (errors, attacker):
            c.close()
        slave.link.close()


def test_a_retained_command_is_not_executed_on_subscribe(mqtt_config):
    attacker = MqttCollector(mqtt_config)
    try:
        stale = messages.make("expose", "ota1", {"duration": 1}).encode()
        attacker.transport.publish(T.cmd("ota2"), stale, retain=True).wait_for_publish(5)
        errors = MqttCollector(mqtt_config, T.event("ota2"))
        slave = CountingNode(mqtt_config)
        try:
            assert errors.wait_for(lambda: errors.messages(), 5)
            event = messages.decode(errors.messages()[0].payload, "event")
            assert "retained command" in event.payload["message"]
            time.sleep(0.3)
            assert sum(slave.runs.values()) == 0
        finally:
            slave.link.close()
            errors.close()
    finally:
        attacker.transport.publish(T.cmd("ota2"), b"", retain=True).wait_for_publish(5)
        attacker.close()


# ---- issue 9 item 1: a retained command never runs, an id never runs twice across restarts --------
def test_a_valid_command_published_retained_while_the_node_is_connected_is_refused(mqtt_config):
    """MQTT 3.1.1 strips the retain flag on live delivery, so this expose used to run; the node now
    subscribes with Retain-As-Published (MQTT 5) and sees the flag."""
    slave = CountingNode(mqtt_config)
    errors = MqttCollector(mqtt_config, T.event("ota2"))
    replies = MqttCollector(mqtt_config, T.reply("ota2"))
    attacker = MqttCollector(mqtt_config)
    try:
        live = messages.make("expose", "ota1", {"duration": 1})
        attacker.transport.publish(T.cmd("ota2"), live.encode(), retain=True).wait_for_publish(5)
        assert errors.wait_for(lambda: errors.messages(), 5), "no error event for a retained command"
        event = messages.decode(errors.messages()[0].payload, "event")
        assert "retained command is never executed" in event.payload["message"]
        time.sleep(0.5)
        assert sum(slave.runs.values()) == 0 and slave.link.commands.executed == 0
        assert replies.messages() == []  # not even 'accepted'
        # a live, non-retained command still runs
        attacker.transport.publish(T.cmd("ota2"), messages.make("expose", "ota1", {"duration": 0}).encode())
        assert replies.wait_for(lambda: any(b'"done"' in m.payload for m in replies.messages()), 5)
        assert sum(slave.runs.values()) == 1
    finally:
        attacker.transport.publish(T.cmd("ota2"), b"", retain=True).wait_for_publish(5)
        for c in (errors, replies, attacker):
            c.close()
        slave.link.close()


def test_a_restarted_node_does_not_rerun_an_id_it_ran_and_answers_its_remembered_reply(mqtt_config, demo_nodes, tmp_path):
    record = tmp_path / "runs.txt"
    state = tmp_path / "state"
    node = demo_nodes("ota2", "--record", str(record), "--state-dir", str(state))
    master = NodeLink(mqtt_config, "ota1", "master")
    assert master.start(wait=10)
    client = master.command_client(resend_every=0.5)
    try:
        first = client.send("ota2", "expose", {"duration": 1})
        assert first.wait(10)["status"] == "done"
        node.kill()  # kill -9: only the journal on disk remembers
        node.wait(5)
        demo_nodes("ota2", "--record", str(record), "--state-dir", str(state))
        again = client.send("ota2", "expose", {"duration": 1}, id=first.id)  # the same id, a fresh ts
        final = again.wait(10)
        assert final["status"] == "done" and final["result"] == first.last["result"]
        assert record.read_text().split() == ["expose", first.id], "the id ran twice"
        fresh = client.send("ota2", "expose", {"duration": 1})
        assert fresh.wait(10)["status"] == "done"
        assert record.read_text().split() == ["expose", first.id, "expose", fresh.id]
    finally:
        client.close()
        master.close()


# ---- issue 9 item 8: a full worker queue never drops what the broker has acknowledged -------------
def test_a_full_worker_queue_delivers_every_command_instead_of_dropping_it(mqtt_config, monkeypatch):
    from indisync.protocol import transport as transport_module
    from indisync.protocol.transport import MqttTransport

    monkeypatch.setattr(transport_module, "QUEUE_SIZE", 5)
    got, release = [], threading.Event()

    def slow(msg):
        release.wait(5)  # the worker is stuck on the first message while the rest arrive
        got.append(msg.payload)

    receiver = MqttTransport(mqtt_config, "queue-test-receiver")
    receiver.subscribe(T.cmd("ota2"), slow)
    receiver.start()
    sender = MqttCollector(mqtt_config)
    try:
        assert receiver.wait_connected(10)
        time.sleep(0.3)
        infos = [sender.transport.publish(T.cmd("ota2"), f"m{i}".encode()) for i in range(40)]
        for info in infos:
            info.wait_for_publish(5)  # the broker has acknowledged all 40
        threading.Timer(0.5, release.set).start()
        deadline = time.monotonic() + 10
        while len(got) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(got) == sorted(f"m{i}".encode() for i in range(40)), f"{40 - len(got)} lost, dropped={receiver.dropped}"
        assert receiver.dropped == 0 and receiver.waited > 0
    finally:
        release.set()
        sender.close()
        receiver.stop()
