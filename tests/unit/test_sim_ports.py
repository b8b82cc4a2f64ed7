"""free_port under pytest-xdist: each worker hands out ports from a block of its own."""

from __future__ import annotations

import socket
from contextlib import closing

from indisync.sim import indi


def test_each_worker_draws_from_its_own_block_below_the_ephemeral_range(monkeypatch):
    seen = {}
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        n = int(worker[2:])
        lo = indi._WORKER_PORT_BASE + n * indi._WORKER_PORT_BLOCK
        ports = [indi.free_port() for _ in range(5)]
        assert all(lo <= p < lo + indi._WORKER_PORT_BLOCK for p in ports), ports
        assert len(set(ports)) == 5, f"a port handed out twice before anyone bound it: {ports}"
        seen[worker] = set(ports)
    assert not (seen["gw0"] & seen["gw1"]) and not (seen["gw1"] & seen["gw2"])
    assert max(max(p) for p in seen.values()) < 32768  # below Linux's ephemeral ports


def test_a_port_in_use_is_skipped(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    first = indi.free_port()
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        indi._next_port.clear()
        monkeypatch.setattr(indi.os, "getpid", lambda: first - indi._WORKER_PORT_BASE)  # start at `first`
        assert indi.free_port() != first


def test_outside_xdist_any_free_port(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    port = indi.free_port()
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", port))
