"""The transport's hand-off from paho's network thread to its worker, without a broker: a full
queue sheds only state heartbeats at once, waits (bounded) for room for anything else, and never
drops without saying so."""

from __future__ import annotations

import threading
import time

from indisync.config import MqttConfig
from indisync.protocol.transport import Incoming, MqttTransport


def transport(size=1):
    t = MqttTransport(MqttConfig(keepalive=2), "unit-transport", queue_size=size)
    reports = []
    t.on_problem = reports.append
    return t, reports


def test_a_state_heartbeat_is_shed_at_once_and_reported():
    t, reports = transport()
    t._enqueue(Incoming("indisync/ota2/cmd", b"1", False))
    started = time.monotonic()
    t._enqueue(Incoming("indisync/ota3/state", b"{}", False), sheddable=True)
    assert time.monotonic() - started < 0.1
    assert (t.dropped, t.shed) == (1, 1)
    assert len(reports) == 1 and "indisync/ota3/state" in reports[0] and "queue full" in reports[0]


def test_a_command_waits_for_room_instead_of_being_dropped():
    t, reports = transport()
    t._enqueue(Incoming("indisync/ota2/cmd", b"1", False))
    threading.Timer(0.3, t._queue.get).start()  # the worker takes one
    t._enqueue(Incoming("indisync/ota2/cmd", b"2", False))
    assert t.dropped == 0 and t.waited == 1 and reports == []
    assert t._queue.get_nowait().payload == b"2"


def test_a_command_is_dropped_only_after_the_bounded_wait_and_never_silently():
    t, reports = transport()
    t._enqueue(Incoming("indisync/ota2/cmd", b"1", False))
    started = time.monotonic()
    t._enqueue(Incoming("indisync/ota2/cmd", b"2", False))
    waited = time.monotonic() - started
    assert 0.9 < waited < 3.0  # half the keepalive (at least 1 s): the broker connection survives it
    assert t.dropped == 1 and t.shed == 0 and len(reports) == 1


def test_closing_releases_a_network_thread_waiting_for_room():
    t, _ = transport()
    t._enqueue(Incoming("indisync/ota2/cmd", b"1", False))
    t._closing = True
    started = time.monotonic()
    t._enqueue(Incoming("indisync/ota2/cmd", b"2", False))
    assert time.monotonic() - started < 0.5
