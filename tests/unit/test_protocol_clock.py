"""The clock offset estimate (protocol/clock.py) on synthetic round trips: NTP algebra, min-RTT filter."""

from __future__ import annotations

import random

from indisync.protocol.clock import ClockEstimator, ClockSample, NodeClock
from indisync.sequence.headers import frame_header_cards


def exchange(offset, out_s, back_s, master_busy_s=0.001, t=1000.0):
    """One round trip from a slave whose clock is ``offset`` ahead of the master's."""
    t0 = t + offset
    t1 = t + out_s
    t2 = t1 + master_busy_s
    t3 = t2 + back_s + offset
    return ClockSample(t0, t1, t2, t3)


def test_symmetric_delay_gives_the_exact_offset_and_rtt():
    s = exchange(0.25, 0.02, 0.02)
    assert abs(s.offset - 0.25) < 1e-9
    assert abs(s.rtt - 0.04) < 1e-9


def test_the_min_rtt_sample_wins_over_asymmetric_slow_ones():
    rng = random.Random(3)
    est = ClockEstimator(window=16)
    for _ in range(15):  # Wi-Fi: one direction stalls up to 200 ms, which biases those samples
        est.add(exchange(-0.8, 0.02 + rng.uniform(0, 0.2), 0.02))
    est.add(exchange(-0.8, 0.003, 0.003))
    e = est.estimate()
    assert abs(e.offset_s + 0.8) < 1e-6 and abs(e.rtt_s - 0.006) < 1e-6 and e.samples == 16


def test_the_window_follows_a_clock_that_changed():
    est = ClockEstimator(window=4)
    est.add(exchange(0.5, 0.001, 0.001))  # the best sample, but chrony has stepped the clock since
    for _ in range(4):
        est.add(exchange(0.0, 0.01, 0.01))
    assert abs(est.estimate().offset_s) < 1e-9


def test_impossible_samples_are_refused():
    est = ClockEstimator()
    assert not est.add(ClockSample(10.0, 5.0, 4.0, 11.0))  # master time ran backwards
    assert not est.add(ClockSample(10.0, 5.0, 5.0, 9.0))  # answer before the question
    assert not est.add(ClockSample(float("nan"), 5.0, 5.0, 11.0))
    assert est.estimate() is None


def test_node_clock_skew_shifts_every_stamp():
    clock = NodeClock(0.25)
    assert abs(clock.from_system(100.0) - 100.25) < 1e-9
    assert clock.iso().endswith("Z")


def test_clkoffs_header_card_only_once_measured():
    base = dict(node="slave1", target="M31", frame_type="light", filter_name="R", batch=1, seq_index=1, exposure_id=3)
    assert "CLKOFFS" not in {k for k, _, _ in frame_header_cards(**base)}
    cards = {k: v for k, v, _ in frame_header_cards(**base, clock_offset=0.25012)}
    assert cards["CLKOFFS"] == 0.2501


class LoopbackTransport:
    """Delivers every publish to the matching subscribers at once (a broker with zero delay)."""

    def __init__(self):
        import threading

        self.subs = []
        self.connected = threading.Event()
        self.connected.set()
        self.published = []

    def subscribe(self, topic_filter, handler, retain_as_published=False):
        self.subs.append((topic_filter, handler))

    def publish(self, topic, payload, retain=False, expiry=None):
        import time as _time

        from indisync.protocol.transport import Incoming

        self.published.append((topic, expiry))
        msg = Incoming(topic, payload, retain, _time.time())
        for topic_filter, handler in list(self.subs):
            head, _, tail = topic_filter.partition("+")
            if topic == topic_filter or (tail and topic.startswith(head) and topic.endswith(tail)):
                handler(msg)


def test_slave_and_master_find_an_injected_offset_over_their_own_clock_topics():
    from indisync.protocol import messages
    from indisync.protocol.clock import ClockResponder, ClockSync
    from indisync.protocol.topics import Topics

    wire, tree = LoopbackTransport(), Topics("indisync")
    responder = ClockResponder(wire, tree, "ota1", NodeClock(0.0))
    responder.MIN_INTERVAL_S = 0.0  # the rate limit is for floods; here three asks in a row
    estimates = []
    sync = ClockSync(wire, tree, "ota2", NodeClock(-3.5), lambda e, m: estimates.append((e, m)))
    assert sync.ask() is None  # no master seen yet
    master_state = messages.make("state", "ota1", {"role": "master", "phase": "idle", "version": "0"})
    wire.publish(tree.state("ota1"), master_state.encode())
    assert sync.master == "ota1"
    for _ in range(3):
        sync.ask()
    assert len(estimates) == 3 and estimates[-1][1] == "ota1"
    assert abs(estimates[-1][0].offset_s + 3.5) < 0.005 and estimates[-1][0].rtt_s < 0.05
    # each node wrote only its own clock topic (the shipped ACL allows nothing else)
    assert {t for t, _ in wire.published if t.endswith("/clock")} == {tree.clock("ota1"), tree.clock("ota2")}
    assert all(expiry for t, expiry in wire.published if t.endswith("/clock"))


def test_a_retained_state_does_not_name_the_master():
    from indisync.protocol import messages
    from indisync.protocol.clock import ClockSync
    from indisync.protocol.topics import Topics
    from indisync.protocol.transport import Incoming

    wire, tree = LoopbackTransport(), Topics("indisync")
    sync = ClockSync(wire, tree, "ota2", NodeClock(), lambda e, m: None)
    old = messages.make("state", "ota9", {"role": "master", "phase": "idle", "version": "0"})
    sync._on_state(Incoming(tree.state("ota9"), old.encode(), True))
    assert sync.master is None


def test_the_warning_comes_once_per_crossing_and_never_from_a_slow_uncertain_sample():
    from indisync.config import MqttConfig
    from indisync.protocol.clock import ClockEstimate
    from indisync.protocol.node_link import NodeLink

    link = NodeLink(MqttConfig(), "ota2", "slave")  # never started: nothing goes on a wire
    warnings = []
    link._publish_error = lambda message, topic, about: warnings.append(message)
    link._on_clock_estimate(ClockEstimate(0.3, 0.5, 1), "ota1")  # 0.3 ± 0.25: maybe fine, no alarm
    assert warnings == [] and link.state["clock_offset_s"] == 0.3
    for offset in (0.25, 0.26, 0.24):
        link._on_clock_estimate(ClockEstimate(offset, 0.002, 5), "ota1")
    assert len(warnings) == 1 and "chrony against the master" in warnings[0] and "+0.250 s" in warnings[0]
    link._on_clock_estimate(ClockEstimate(0.01, 0.002, 16), "ota1")  # chrony fixed it
    link._on_clock_estimate(ClockEstimate(-0.4, 0.002, 16), "ota1")  # and it went off again
    assert len(warnings) == 2 and "-0.400 s" in warnings[1]
    assert link.clock_offset == -0.4
