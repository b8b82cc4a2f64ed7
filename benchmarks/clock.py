"""Clock offset estimate vs a known injected offset (issue 13.4), over a private mosquitto.

A stand-in master and one stand-in slave per injected offset run as separate processes
(``indisync.protocol.demo_node``, the same NodeLink and clock code a real node runs); each slave's
clock is shifted by ``--clock-skew-s`` (tests only). After ``--settle`` seconds the benchmark reads
each slave's retained state and compares ``clock_offset_s`` with what was injected. Prints JSON.

    .venv/bin/python benchmarks/clock.py [--inject 0.25 -1.5 0 0.003] [--settle 8]

``measure_clock_offsets(injected, settle_s)`` returns the same dict, for benchmarks/footprint.py.
Target: every estimate within 10 ms of the injected offset.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid

from indisync.config import MqttConfig
from indisync.protocol import messages, topics
from indisync.protocol.transport import MqttTransport
from indisync.sim.broker import Mosquitto

TARGET_MS = 10.0
DEFAULT_INJECTED = (0.25, -1.5, 0.0, 0.003)


def _start(broker: Mosquitto, name: str, role: str, skew: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "indisync.protocol.demo_node", "--port", str(broker.port), "--name", name,
         "--role", role, "--heartbeat", "1", "--clock-skew-s", repr(skew)],
        stdout=subprocess.PIPE, text=True,
    )


def measure_clock_offsets(injected: tuple[float, ...] = DEFAULT_INJECTED, settle_s: float = 8.0) -> dict:
    broker = Mosquitto()
    broker.start()
    procs: list[subprocess.Popen] = []
    listener = None
    try:
        procs.append(_start(broker, "master", "master", 0.0))
        names = [f"slave{i + 1}" for i in range(len(injected))]
        procs += [_start(broker, name, "slave", skew) for name, skew in zip(names, injected)]
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a demo node did not start")
        cfg = MqttConfig(host=broker.host, port=broker.port)
        tree = topics.Topics(cfg.topic_prefix)
        latest: dict[str, dict] = {}
        listener = MqttTransport(cfg, f"bench-clock-{uuid.uuid4().hex[:6]}")

        def on_state(msg) -> None:
            ref = tree.parse(msg.topic)
            if ref is not None and msg.payload:
                latest[ref.node] = messages.decode(msg.payload, topics.STATE).payload

        listener.subscribe(tree.every(topics.STATE), on_state)
        listener.start()
        if not listener.wait_connected(10):
            raise RuntimeError("the benchmark's listener could not connect")
        time.sleep(settle_s)
        rows = []
        for name, skew in zip(names, injected):
            state = latest.get(name) or {}
            estimate = state.get("clock_offset_s")
            rows.append({
                "node": name,
                "injected_s": skew,
                "estimated_s": estimate,
                "error_ms": None if estimate is None else round((estimate - skew) * 1000, 2),
                "rtt_ms": None if state.get("clock_rtt_s") is None else round(state["clock_rtt_s"] * 1000, 2),
            })
        errors = [abs(r["error_ms"]) for r in rows if r["error_ms"] is not None]
        return {
            "figure": "clock offset estimate vs injected offset",
            "network": "loopback (no delay proxy)",
            "settle_s": settle_s,
            "nodes": rows,
            "max_error_ms": max(errors) if errors else None,
            "target_ms": TARGET_MS,
            "meets_target": len(errors) == len(rows) and max(errors) <= TARGET_MS,
        }
    finally:
        if listener is not None:
            listener.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inject", type=float, nargs="+", default=list(DEFAULT_INJECTED),
                        help="clock offsets to inject, one stand-in slave each (s)")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds of round trips before reading")
    args = parser.parse_args(argv)
    print(json.dumps(measure_clock_offsets(tuple(args.inject), args.settle), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
