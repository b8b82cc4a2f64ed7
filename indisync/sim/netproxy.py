"""A TCP delay proxy for tests and benchmarks: a Wi-Fi link between a node and the broker, on loopback.

This kernel has no netem, so faults go through a proxy of our own (the brief). Put it between a
node and the broker (``SimRig(network=NetProfile(...))`` does so for every node) and it forwards
each chunk of bytes, in order, after

- ``latency`` ± ``jitter`` seconds (uniform), one way, in each direction;
- now and then (probability ``loss`` per chunk) a ``stall`` more: a lost segment that TCP
  retransmits. TCP never loses bytes, it delays them, and the bytes behind the lost one wait too
  (head-of-line blocking), which is what a node sees;
- ``cut()``: the link goes dark. Nothing is forwarded and nothing is answered, no reset is sent
  (as when a Wi-Fi access point drops out); bytes wait up to ``max_buffer`` per direction, beyond
  which the connection is reset. New connections are refused while cut. ``restore()`` brings the
  link back and what waited is delivered, unless an end gave up on its keepalive meanwhile.

Bounded by construction: it listens on loopback only and forwards to loopback only, holds at most
``max_connections`` connections and ``max_buffer`` bytes per direction, every wait has a timeout,
and it closes itself ``lifetime`` seconds after start (a test that forgets it leaks nothing for
long). All threads are daemons and end when the proxy closes.

    with DelayProxy(broker.host, broker.port, NetProfile(latency=0.02, jitter=0.01)) as proxy:
        connect_to(proxy.host, proxy.port)
        proxy.cut(); ...; proxy.restore()
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

CHUNK = 65536
POLL_S = 0.2  # the longest any thread waits before looking at the proxy's state again


@dataclass(frozen=True)
class NetProfile:
    latency: float = 0.0  # s, one way
    jitter: float = 0.0  # s, uniform +-, never making a delay negative
    loss: float = 0.0  # probability per forwarded chunk of a retransmission stall
    stall: float = 0.2  # s added by one such stall
    seed: int | None = None

    def __post_init__(self):
        if self.latency < 0 or self.jitter < 0 or self.stall < 0:
            raise ValueError("latency, jitter and stall are seconds >= 0")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss is a probability 0 <= p < 1, got {self.loss}")

    @classmethod
    def wifi(cls, seed: int | None = None) -> "NetProfile":
        """The issue's reference link: 20 +- 10 ms one way, with occasional 200 ms stalls."""
        return cls(latency=0.020, jitter=0.010, loss=0.01, stall=0.200, seed=seed)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


class _Direction:
    """One direction of one connection: a reader that stamps chunks with their due time, a writer
    that sends them when due (and not cut)."""

    def __init__(self, proxy: "DelayProxy", conn: "_Connection", src: socket.socket, dst: socket.socket, name: str):
        self.proxy, self.conn, self.src, self.dst, self.name = proxy, conn, src, dst, name
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()  # (due, data); b"" = EOF
        self.queued_bytes = 0
        self.cond = threading.Condition()
        self.last_due = 0.0

    def start(self) -> None:
        for target, role in ((self._read, "read"), (self._write, "write")):
            threading.Thread(target=target, name=f"netproxy-{self.name}-{role}", daemon=True).start()

    def _read(self) -> None:
        try:
            while not self.conn.closed:
                try:
                    data = self.src.recv(CHUNK)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                self._enqueue(data)
                if not data:
                    return
        except Exception:  # noqa: BLE001 - a proxy thread never dies in silence
            log.exception("netproxy %s reader failed", self.name)
            self.conn.close()

    def _enqueue(self, data: bytes) -> None:
        due = time.monotonic() + self.proxy.sample_delay()
        with self.cond:
            due = max(due, self.last_due)  # TCP keeps order: nothing overtakes a delayed chunk
            self.last_due = due
            while data and self.queued_bytes + len(data) > self.proxy.max_buffer and not self.conn.closed:
                if self.proxy.is_cut:  # a dark link filled up: the connection is reset, as TCP would
                    log.info("netproxy %s: %d bytes waiting while cut; resetting", self.name, self.queued_bytes)
                    self.conn.close()
                    return
                self.cond.wait(POLL_S)  # back-pressure: stop reading until the writer catches up
            self.queue.append((due, data))
            self.queued_bytes += len(data)
            self.cond.notify_all()

    def _write(self) -> None:
        try:
            while not self.conn.closed:
                with self.cond:
                    if not self.queue or self.proxy.is_cut:
                        self.cond.wait(POLL_S)
                        continue
                    due, data = self.queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        self.cond.wait(min(wait, POLL_S))
                        continue
                    self.queue.popleft()
                    self.queued_bytes -= len(data)
                    self.cond.notify_all()
                if not data:  # the source closed its side: pass the EOF on, in order
                    try:
                        self.dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    self.conn.half_closed()
                    return
                try:
                    self.dst.sendall(data)
                    self.proxy.forwarded_bytes += len(data)
                except OSError:
                    self.conn.close()
                    return
        except Exception:  # noqa: BLE001
            log.exception("netproxy %s writer failed", self.name)
            self.conn.close()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class _Connection:
    def __init__(self, proxy: "DelayProxy", client: socket.socket, upstream: socket.socket, n: int):
        self.proxy = proxy
        self.sockets = (client, upstream)
        self.closed = False
        self._halves = 0
        self._lock = threading.Lock()
        for s in self.sockets:
            s.settimeout(POLL_S)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.directions = (_Direction(proxy, self, client, upstream, f"{n}-up"),
                           _Direction(proxy, self, upstream, client, f"{n}-down"))

    def start(self) -> None:
        for d in self.directions:
            d.start()

    def half_closed(self) -> None:
        with self._lock:
            self._halves += 1
            done = self._halves == 2
        if done:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        for d in self.directions:
            d.wake()
        self.proxy._forget(self)


class DelayProxy:
    def __init__(self, target_host: str, target_port: int, profile: NetProfile | None = None,
                 listen_host: str = "127.0.0.1", listen_port: int = 0, max_connections: int = 32,
                 max_buffer: int = 4 << 20, lifetime: float = 3600.0):
        if not _loopback(target_host) or not _loopback(listen_host):
            raise ValueError(f"DelayProxy is for tests on one machine: {listen_host} -> {target_host} must be loopback")
        self.target = (target_host, target_port)
        self.profile = profile or NetProfile()
        self.max_connections = max_connections
        self.max_buffer = max_buffer
        self.lifetime = lifetime
        self._rng = random.Random(self.profile.seed)
        self._rng_lock = threading.Lock()
        self._listener = socket.create_server((listen_host, listen_port))
        self._listener.settimeout(POLL_S)
        self.host, self.port = self._listener.getsockname()[:2]
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self.accepted = 0
        self.refused = 0
        self.stalls = 0
        self.forwarded_bytes = 0
        self._deadline = 0.0

    # ---- control -------------------------------------------------------------------------------
    def start(self) -> "DelayProxy":
        self._deadline = time.monotonic() + self.lifetime
        threading.Thread(target=self._accept, name=f"netproxy-accept-{self.port}", daemon=True).start()
        return self

    def set_profile(self, profile: NetProfile) -> None:
        """Change latency, jitter and stalls from now on (chunks already waiting keep their time)."""
        with self._rng_lock:
            self.profile = profile
            self._rng = random.Random(profile.seed)

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self._cut.clear()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            for d in conn.directions:
                d.wake()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.close()

    def __enter__(self) -> "DelayProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- inside --------------------------------------------------------------------------------
    def sample_delay(self) -> float:
        with self._rng_lock:
            p = self.profile
            delay = p.latency + (self._rng.uniform(-p.jitter, p.jitter) if p.jitter else 0.0)
            if p.loss and self._rng.random() < p.loss:
                delay += p.stall
                self.stalls += 1
        return max(delay, 0.0)

    def _accept(self) -> None:
        try:
            while not self._closed.is_set():
                if time.monotonic() > self._deadline:
                    log.warning("netproxy on port %s: lifetime of %g s over; closing", self.port, self.lifetime)
                    self.close()
                    return
                try:
                    client, _ = self._listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                if self.is_cut or self.connections >= self.max_connections:
                    self.refused += 1
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5.0)
                except OSError as exc:
                    log.info("netproxy: cannot reach %s:%s: %s", *self.target, exc)
                    self.refused += 1
                    client.close()
                    continue
                with self._lock:
                    self.accepted += 1
                    conn = _Connection(self, client, upstream, self.accepted)
                    self._connections.add(conn)
                conn.start()
        except Exception:  # noqa: BLE001
            log.exception("netproxy accept loop failed; closing")
            self.close()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
