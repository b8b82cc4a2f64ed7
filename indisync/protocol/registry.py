"""Who is out there: the master's registry of nodes, and a barrier over the live ones.

A node joins on its first *live* state (a retained state is old news: it is shown, but does not
make a node live), and is dropped on an ``offline`` status (its Last Will or a clean goodbye) or
when no heartbeat came for ``dead_after`` seconds. Liveness uses this machine's monotonic clock
on receipt, never the sender's timestamp: a Raspberry Pi without a real-time clock may be hours
off at night.

``Barrier`` waits until every expected node answered, a node dies, or a timeout passes, and
says who did not answer. ``gather()`` sends a command to every live slave through a barrier.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from ..errors import ProtocolError
from . import messages, topics

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.5  # how often dead nodes are looked for; adds at most this to dead_after


@dataclass
class NodeInfo:
    name: str
    status: str | None = None  # last 'online' / 'offline' seen on the status topic
    state: dict | None = None  # last state payload (retained or live)
    state_ts: str | None = None  # the sender's time of that state
    last_heartbeat: float | None = None  # our monotonic time of the last live state
    alive: bool = False  # joined and not dropped

    @property
    def role(self) -> str | None:
        return (self.state or {}).get("role")

    def seconds_since_heartbeat(self, now_mono: float) -> float | None:
        """Age of the last state: from our clock if we saw it live, else from its (sender's) time."""
        if self.last_heartbeat is not None:
            return now_mono - self.last_heartbeat
        if self.state_ts is not None:
            sent = datetime.fromisoformat(self.state_ts.replace("Z", "+00:00"))
            return max(0.0, (datetime.now(timezone.utc) - sent).total_seconds())
        return None


class NodeRegistry:
    def __init__(self, dead_after: float, clock: Callable[[], float] = time.monotonic):
        self.dead_after = dead_after
        self._clock = clock
        self._nodes: dict[str, NodeInfo] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, str], None]] = []  # fn(node, "joined" | reason dropped)
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    # -- feeding -----------------------------------------------------------------------------
    def on_status(self, node: str, text: str) -> None:
        if text not in (topics.ONLINE, topics.OFFLINE):
            log.warning("ignored status %r from %s", text[:40], node)
            return
        with self._lock:
            info = self._nodes.setdefault(node, NodeInfo(node))
            info.status = text
            dropped = text == topics.OFFLINE and info.alive
            if dropped:
                info.alive = False
        if dropped:
            self._notify(node, "offline")

    def on_state(self, node: str, env: messages.Envelope, retained: bool) -> None:
        with self._lock:
            info = self._nodes.setdefault(node, NodeInfo(node))
            info.state = env.payload
            info.state_ts = env.ts
            joined = False
            if not retained:
                info.last_heartbeat = self._clock()
                info.status = topics.ONLINE  # a live state proves it, whatever an old Will said
                joined = not info.alive
                info.alive = True
        if joined:
            self._notify(node, "joined")

    def feed(self, topic_tree: topics.Topics, topic: str, payload: bytes, retained: bool) -> None:
        """Route one raw message from a status or state topic; malformed ones are logged and ignored."""
        ref = topic_tree.parse(topic)
        if ref is None:
            return
        if ref.kind == topics.STATUS:
            self.on_status(ref.node, payload.decode("utf-8", "replace").strip())
        elif ref.kind == topics.STATE:
            if not payload:
                return  # a cleared retained state
            try:
                env = messages.decode(payload, kind=topics.STATE)
            except ProtocolError as exc:
                log.warning("ignored a malformed state from %s: %s", ref.node, exc)
                return
            if env.type != "state":  # a guard_state travels on a state-kind topic too, never a node's
                log.warning("ignored a %r message on %s's state topic", env.type, ref.node)
                return
            if env.sender != ref.node:
                log.warning("ignored a state for %s sent by %s", ref.node, env.sender)
                return
            self.on_state(ref.node, env, retained)

    def attach(self, transport, topic_tree: topics.Topics) -> None:
        """Subscribe ``transport`` to every node's status and state, and start the sweeper."""
        for kind in (topics.STATUS, topics.STATE):
            transport.subscribe(
                topic_tree.every(kind), lambda msg: self.feed(topic_tree, msg.topic, msg.payload, msg.retain)
            )
        self.start_sweeper()

    # -- liveness ----------------------------------------------------------------------------
    def sweep(self) -> list[str]:
        """Drop nodes whose last heartbeat is older than ``dead_after``; returns the dropped names."""
        now = self._clock()
        dropped = []
        with self._lock:
            for info in self._nodes.values():
                if info.alive and info.last_heartbeat is not None and now - info.last_heartbeat > self.dead_after:
                    info.alive = False
                    dropped.append(info.name)
        for name in dropped:
            self._notify(name, "missed heartbeats")
        return dropped

    def start_sweeper(self, interval: float = SWEEP_INTERVAL_S) -> None:
        if self._sweeper is not None:
            return
        self._sweeper = threading.Thread(target=self._sweep_loop, args=(interval,), name="registry-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(2.0)

    def _sweep_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:
                log.exception("registry sweep failed")

    def add_listener(self, fn: Callable[[str, str], None]) -> None:
        """``fn(node, what)`` with what = 'joined', 'offline' or 'missed heartbeats'."""
        self._listeners.append(fn)

    def _notify(self, node: str, what: str) -> None:
        log.info("node %s: %s", node, what)
        for fn in list(self._listeners):
            try:
                fn(node, what)
            except Exception:
                log.exception("registry listener failed")

    # -- queries -----------------------------------------------------------------------------
    def live(self, role: str | None = None) -> list[str]:
        self.sweep()
        with self._lock:
            return sorted(n.name for n in self._nodes.values() if n.alive and (role is None or n.role == role))

    def is_alive(self, node: str) -> bool:
        with self._lock:
            info = self._nodes.get(node)
            return bool(info and info.alive and self._clock() - (info.last_heartbeat or 0) <= self.dead_after)

    def nodes(self) -> list[NodeInfo]:
        """A copy of every node ever seen, sorted by name."""
        with self._lock:
            return [NodeInfo(**vars(info)) for _, info in sorted(self._nodes.items())]

    def get(self, node: str) -> NodeInfo | None:
        with self._lock:
            info = self._nodes.get(node)
            return NodeInfo(**vars(info)) if info else None


@dataclass
class BarrierResult:
    answered: dict[str, Any]  # node -> what it answered
    missing: list[str]  # expected nodes that did not answer: timed out or died
    dead: list[str] = field(default_factory=list)  # those of ``missing`` dropped from the registry meanwhile
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.missing


class Barrier:
    """Wait until each of ``expected`` has ``arrive()``d, or a timeout; a node the registry drops
    meanwhile stops being waited for and is reported as missing and dead."""

    def __init__(self, expected: Iterable[str], registry: NodeRegistry | None = None):
        self.expected = sorted(set(expected))
        self.registry = registry
        self._answers: dict[str, Any] = {}
        self._cond = threading.Condition()

    def arrive(self, node: str, value: Any = None) -> None:
        with self._cond:
            if node in self.expected and node not in self._answers:
                self._answers[node] = value
                self._cond.notify_all()

    def wait(self, timeout: float) -> BarrierResult:
        start = time.monotonic()
        deadline = start + timeout
        dead: list[str] = []
        with self._cond:
            while True:
                waiting = [n for n in self.expected if n not in self._answers and n not in dead]
                if self.registry is not None:
                    dead += [n for n in waiting if not self.registry.is_alive(n)]
                    waiting = [n for n in waiting if n not in dead]
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    break
                self._cond.wait(min(left, SWEEP_INTERVAL_S))
            answered = dict(self._answers)
        missing = [n for n in self.expected if n not in answered]
        return BarrierResult(answered, missing, sorted(set(dead) & set(missing)), time.monotonic() - start)


def gather(client, registry: NodeRegistry, command: str, args: dict | None = None, timeout: float = 60.0, role: str = "slave") -> BarrierResult:
    """Send ``command`` to every live node of ``role`` and wait for their final replies.

    ``answered`` maps node -> final reply payload (status done or failed); ``missing`` names
    the nodes that did not answer within ``timeout`` or died meanwhile.
    """
    barrier = Barrier(registry.live(role), registry)
    pendings = []
    for node in barrier.expected:
        pending = client.send(node, command, args)
        pending.add_done_callback(lambda p: barrier.arrive(p.node, p.last))
        pendings.append(pending)
    try:
        return barrier.wait(timeout)
    finally:
        for pending in pendings:
            client.forget(pending)
