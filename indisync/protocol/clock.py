"""Each slave's clock offset to the master's clock, measured over MQTT (NTP-style).

A Raspberry Pi often has no real-time clock and chrony may not have synced at dusk, so DATE-OBS
is only as good as each node's clock. Every ``SAMPLE_EVERY_S`` a slave asks the master's time and
stamps four times:

    t0  slave clock, just before the request is published
    t1  master clock, when the request reached the master (paho's network thread)
    t2  master clock, just before the master publishes its answer
    t3  slave clock, when the answer reached the slave

    rtt          = (t3 - t0) - (t2 - t1)         time on the wire, both ways
    clock_offset = ((t0 - t1) + (t3 - t2)) / 2   this node's clock minus the master's

The offset is exact when both directions take as long; a sample delayed one way (a Wi-Fi retry,
a busy broker) is off by half its extra delay. So the estimate is the offset of the sample with
the smallest RTT among the last ``WINDOW`` samples (as NTP's clock filter does): one quick round
trip in the window is enough, and a drifting clock is followed as old samples leave it.

Sign: ``clock_offset_s`` > 0 means this node's clock is ahead of the master's; the master's
time of an event stamped ``t`` here is ``t - clock_offset_s``. The master's own offset is 0.

``NodeClock`` is the node's wall clock. Its ``skew_s`` is for tests only (config
``testing.clock_skew_s``): it shifts every time this node stamps (envelopes, the samples above,
DATE-OBS) so a test can check that the estimate finds a known offset.

The exchange travels on each sender's own ``clock`` topic (``time_request`` from the slave,
``time_reply`` from the master, naming the slave), so the shipped ACL, where a node writes only
its own topics, allows it. Pure except ``ClockSync`` and ``ClockResponder``, which drive the
exchange on a transport they are given.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from ..errors import ProtocolError
from . import messages, topics

log = logging.getLogger(__name__)

WINDOW = 16  # samples kept; the estimate is the min-RTT one among them
SAMPLE_EVERY_S = 5.0  # one round trip per this many seconds once the window has a few samples
FIRST_SAMPLES = 5  # ... after (re)finding the master, this many at QUICK_SAMPLE_S
QUICK_SAMPLE_S = 0.3
ANSWER_WITHIN_S = 5.0  # an answer later than this is dropped (its RTT would be useless anyway)


class NodeClock:
    """This node's wall clock in POSIX seconds; ``skew_s`` (tests only) shifts it."""

    def __init__(self, skew_s: float = 0.0):
        self.skew_s = float(skew_s)

    def time(self) -> float:
        return time.time() + self.skew_s

    def from_system(self, t: float) -> float:
        """A ``time.time()`` reading (e.g. paho's receive stamp) on this node's clock."""
        return t + self.skew_s

    def iso(self) -> str:
        return messages.now_iso(datetime.fromtimestamp(self.time(), timezone.utc))


@dataclass(frozen=True)
class ClockSample:
    t0: float
    t1: float
    t2: float
    t3: float

    @property
    def rtt(self) -> float:
        return (self.t3 - self.t0) - (self.t2 - self.t1)

    @property
    def offset(self) -> float:
        return ((self.t0 - self.t1) + (self.t3 - self.t2)) / 2


@dataclass(frozen=True)
class ClockEstimate:
    offset_s: float  # this node's clock minus the reference's
    rtt_s: float  # round trip of the sample it came from
    samples: int  # samples in the window


class ClockEstimator:
    """Min-RTT filter over a sliding window of samples."""

    def __init__(self, window: int = WINDOW):
        self._samples: deque[ClockSample] = deque(maxlen=window)

    def add(self, sample: ClockSample) -> bool:
        """Keep ``sample`` unless it is impossible (non-finite, negative RTT, master time running backwards)."""
        values = (sample.t0, sample.t1, sample.t2, sample.t3)
        if not all(math.isfinite(v) for v in values) or sample.t3 < sample.t0 or sample.t2 < sample.t1 or sample.rtt < 0:
            return False
        self._samples.append(sample)
        return True

    def clear(self) -> None:
        self._samples.clear()

    def estimate(self) -> ClockEstimate | None:
        if not self._samples:
            return None
        best = min(self._samples, key=lambda s: s.rtt)
        return ClockEstimate(best.offset, best.rtt, len(self._samples))


class ClockSync:
    """A slave's side of the exchange: finds the master from the live states on the broker,
    publishes a ``time_request`` on its own ``clock`` topic every ``SAMPLE_EVERY_S`` and calls
    ``on_estimate(estimate, master)`` after every ``time_reply`` addressed to it. Runs on its own
    thread; every failure is logged, never fatal."""

    def __init__(self, transport, topic_tree: topics.Topics, node: str, clock: NodeClock,
                 on_estimate: Callable[[ClockEstimate, str], None], every: float = SAMPLE_EVERY_S):
        self.transport = transport
        self.topics = topic_tree
        self.node = node
        self.clock = clock
        self.every = every
        self.estimator = ClockEstimator()
        self.master: str | None = None
        self._on_estimate = on_estimate
        self._outstanding: dict[str, float] = {}  # request id -> t0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._quick_left = FIRST_SAMPLES
        transport.subscribe(topic_tree.every(topics.STATE), self._on_state)
        transport.subscribe(topic_tree.every(topics.CLOCK), self._on_reply)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"clock-{self.node}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # -- the exchange ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(QUICK_SAMPLE_S if self._quick_left > 0 else self.every):
            try:
                self.ask()
            except Exception:
                log.exception("clock sample failed")

    def ask(self) -> str | None:
        """Publish one ``time_request`` (if a master is known and we are connected); its id."""
        if self.master is None or not self.transport.connected.is_set():
            return None
        env = messages.make("time_request", self.node, {}, ts=self.clock.iso())
        payload = env.encode()
        with self._lock:
            now = self.clock.time()
            for old in [i for i, t0 in self._outstanding.items() if now - t0 > ANSWER_WITHIN_S]:
                del self._outstanding[old]
            self._outstanding[env.id] = self.clock.time()  # t0: last thing before the publish
        self.transport.publish(self.topics.clock(self.node), payload, expiry=ANSWER_WITHIN_S)
        self._quick_left = max(0, self._quick_left - 1)
        return env.id

    def _on_state(self, msg) -> None:
        ref = self.topics.parse(msg.topic)
        if ref is None or msg.retain or not msg.payload or ref.node == self.node:
            return  # a retained state may be an old master's; only a live heartbeat says who is master now
        try:
            env = messages.decode(msg.payload, kind=topics.STATE)
        except ProtocolError:
            return  # the registry of whoever cares reports malformed states
        if env.sender != ref.node or env.payload.get("role") != "master" or ref.node == self.master:
            return
        log.info("clock: measuring this node's offset to master %s", ref.node)
        self.master = ref.node
        self.estimator.clear()
        self._quick_left = FIRST_SAMPLES

    def _on_reply(self, msg) -> None:
        ref = self.topics.parse(msg.topic)
        if ref is None or ref.node != self.master or msg.retain:
            return
        try:
            env = messages.decode(msg.payload, kind=topics.CLOCK)
        except ProtocolError:
            return
        if env.type != "time_reply" or env.sender != ref.node or env.payload["to"] != self.node:
            return
        with self._lock:
            t0 = self._outstanding.pop(env.payload["request_id"], None)
        if t0 is None:
            return  # not ours, answered twice, or too late
        t3 = self.clock.from_system(msg.received) if msg.received else self.clock.time()
        sample = ClockSample(t0, env.payload["t1"], env.payload["t2"], t3)
        if not self.estimator.add(sample):
            log.warning("clock: impossible sample from %s ignored: %s", ref.node, sample)
            return
        estimate = self.estimator.estimate()
        if estimate is not None:
            self._on_estimate(estimate, ref.node)


class ClockResponder:
    """The master's side: answers every live ``time_request`` on its own ``clock`` topic with the
    arrival time (t1, stamped by paho's network thread) and the answer time (t2). At most one
    answer per node per ``MIN_INTERVAL_S``, so a flood of requests costs a flood of nothing."""

    MIN_INTERVAL_S = 0.1

    def __init__(self, transport, topic_tree: topics.Topics, node: str, clock: NodeClock):
        self.transport = transport
        self.topics = topic_tree
        self.node = node
        self.clock = clock
        self.answered = 0
        self._last: dict[str, float] = {}  # requester -> monotonic time of its last answer
        transport.subscribe(topic_tree.every(topics.CLOCK), self._on_request)

    def _on_request(self, msg) -> None:
        t1 = self.clock.from_system(msg.received) if msg.received else self.clock.time()
        ref = self.topics.parse(msg.topic)
        if ref is None or ref.node == self.node or msg.retain or not msg.payload:
            return
        try:
            env = messages.decode(msg.payload, kind=topics.CLOCK)
        except ProtocolError as exc:
            log.debug("ignored a malformed clock message from %s: %s", ref.node, exc)
            return
        if env.type != "time_request" or env.sender != ref.node:
            return
        now = time.monotonic()
        if now - self._last.get(ref.node, -1e9) < self.MIN_INTERVAL_S:
            return
        self._last[ref.node] = now
        reply = messages.make("time_reply", self.node, {"request_id": env.id, "to": ref.node, "t1": t1,
                                                        "t2": self.clock.time()}, ts=self.clock.iso())
        self.transport.publish(self.topics.clock(self.node), reply.encode(), expiry=ANSWER_WITHIN_S)
        self.answered += 1
