"""The delay proxy itself, against a TCP echo server in this process (the broker-side test is in
tests/integration/test_network_rig.py): it delays by what it is told, keeps order, stalls, cuts
without a reset, restores, refuses non-loopback targets and closes itself."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest

from indisync.sim.netproxy import DelayProxy, NetProfile


@pytest.fixture
def echo():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn):
        conn.settimeout(0.2)
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[:2]
    stop.set()
    server.close()


def round_trip(sock: socket.socket, payload: bytes = b"ping\n", timeout: float = 5.0) -> float:
    started = time.monotonic()
    sock.sendall(payload)
    got = b""
    sock.settimeout(timeout)
    while len(got) < len(payload):
        got += sock.recv(65536)
    assert got == payload
    return time.monotonic() - started


def test_round_trip_is_twice_the_latency_within_the_jitter(echo):
    with DelayProxy(*echo, NetProfile(latency=0.030, jitter=0.010, seed=1)) as proxy:
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
            rtts = [round_trip(sock) for _ in range(20)]
    # two one-way delays of 20..40 ms each
    assert min(rtts) >= 0.040
    assert 0.050 <= statistics.median(rtts) <= 0.100, rtts


def test_no_profile_forwards_at_once_and_in_order(echo):
    with DelayProxy(*echo) as proxy, socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        assert round_trip(sock) < 0.05
        blob = bytes(range(256)) * 4096  # 1 MB in many chunks
        sender = threading.Thread(target=sock.sendall, args=(blob,))
        sender.start()
        got = bytearray()
        sock.settimeout(10)
        while len(got) < len(blob):
            got += sock.recv(65536)
        sender.join(10)
        assert bytes(got) == blob


def test_stalls_delay_some_chunks_by_the_stall(echo):
    profile = NetProfile(latency=0.0, loss=0.3, stall=0.15, seed=7)
    with DelayProxy(*echo, profile) as proxy, socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        rtts = [round_trip(sock) for _ in range(20)]
        assert proxy.stalls > 0
    assert max(rtts) >= 0.15 and min(rtts) < 0.05


def test_cut_holds_the_bytes_without_a_reset_and_restore_delivers_them(echo):
    with DelayProxy(*echo) as proxy, socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        round_trip(sock)
        proxy.cut()
        sock.sendall(b"during the cut\n")
        sock.settimeout(0.6)
        with pytest.raises(socket.timeout):  # dark: no data, and no reset either
            sock.recv(100)
        with socket.create_connection((proxy.host, proxy.port), timeout=1) as other:  # a new one gets nowhere
            other.settimeout(2)
            try:
                assert other.recv(10) == b""  # closed by the proxy at once
            except ConnectionResetError:
                pass
        proxy.restore()
        sock.settimeout(5)
        got = b""
        while len(got) < len(b"during the cut\n"):
            got += sock.recv(100)
        assert got == b"during the cut\n"
        assert round_trip(sock) < 0.05
    assert proxy.refused >= 1


def test_lifetime_closes_the_proxy_by_itself(echo):
    proxy = DelayProxy(*echo, lifetime=0.5).start()
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5)
    round_trip(sock)
    deadline = time.monotonic() + 5
    while proxy.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.connections == 0
    sock.settimeout(2)
    assert sock.recv(10) == b""  # the proxy closed the connection
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection((proxy.host, proxy.port), timeout=1).close()


def test_only_loopback():
    with pytest.raises(ValueError, match="loopback"):
        DelayProxy("192.0.2.1", 1883)
    with pytest.raises(ValueError, match="probability"):
        NetProfile(loss=1.5)
