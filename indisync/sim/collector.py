"""A real MQTT client that records what arrives on some topic filters, with arrival times: for tests
(``tests.conftest`` re-exports it) and benchmarks that watch a simulated rig from outside."""

from __future__ import annotations

import threading
import time
import uuid


class MqttCollector:
    """A real MQTT client recording what arrives on ``filters`` (with arrival times) for assertions."""

    def __init__(self, cfg, *filters, client_id=None):
        from ..protocol.transport import MqttTransport  # paho only when a collector is made

        self._time = time.monotonic
        self.received = []  # (monotonic time, Incoming)
        self._cond = threading.Condition()
        self.transport = MqttTransport(cfg, client_id or f"collector-{uuid.uuid4().hex[:8]}")
        for topic_filter in filters:
            self.transport.subscribe(topic_filter, self._add)
        self.transport.start()
        if not self.transport.wait_connected(10):
            self.transport.stop()
            raise AssertionError(f"collector could not connect to the broker at {cfg.host}:{cfg.port} within 10 s")
        time.sleep(0.2)  # let the SUBACK come back before the test starts publishing

    def _add(self, msg):
        with self._cond:
            self.received.append((self._time(), msg))
            self._cond.notify_all()

    def messages(self, topic=None):
        with self._cond:
            return [m for _, m in self.received if topic is None or m.topic == topic]

    def timed(self, topic=None):
        """(arrival time, Incoming) of every message received (on ``topic`` if given)."""
        with self._cond:
            return [(t, m) for t, m in self.received if topic is None or m.topic == topic]

    def envelopes(self, kind=None, node=None):
        """(time, envelope) of every event received, of one type and from one node if given."""
        from ..protocol import messages

        out = []
        for t, msg in list(self.received):
            if not msg.topic.endswith("/event"):
                continue
            env = messages.decode(msg.payload)
            if (kind is None or env.type == kind) and (node is None or env.sender == node):
                out.append((t, env))
        return out

    def wait_for(self, predicate, timeout):
        deadline = self._time() + timeout
        with self._cond:
            while not predicate():
                left = deadline - self._time()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self):
        self.transport.stop()
